/* Filesystem calls Node does not have: extended attributes (never following symlinks) and mknod.
 * Layers need trusted.overlay.* and security.capability byte-exact, and overlay whiteouts are
 * character devices 0/0. Errors are thrown as Node-style errors (code, syscall, path). */
#include <node_api.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#define MAX_PATH 4096
#define MAX_NAME 256

static const char *errno_code(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOTSUP: return "ENOTSUP";
    case ENODATA: return "ENODATA";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ENOTDIR: return "ENOTDIR";
    case E2BIG: return "E2BIG";
    case ERANGE: return "ERANGE";
    default: return "EIO";
  }
}

static napi_value throw_errno(napi_env env, int e, const char *syscall, const char *path) {
  char msg[MAX_PATH + 128];
  snprintf(msg, sizeof msg, "%s: %s, %s '%s'", errno_code(e), strerror(e), syscall, path);
  napi_value code, message, error, value;
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "syscall", value);
  napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &value);
  napi_set_named_property(env, error, "path", value);
  napi_create_int32(env, -e, &value);
  napi_set_named_property(env, error, "errno", value);
  napi_throw(env, error);
  return NULL;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string");
    return -1;
  }
  if (len >= size - 1) {
    napi_throw_range_error(env, NULL, "string too long");
    return -1;
  }
  return 0;
}

/* listxattr(path): string[] */
static napi_value js_listxattr(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[MAX_PATH];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || get_string(env, argv[0], path, sizeof path)) return NULL;
  char stack[1024];
  char *buf = stack;
  ssize_t n = llistxattr(path, buf, sizeof stack);
  if (n < 0 && errno == ERANGE) {
    n = llistxattr(path, NULL, 0);
    if (n < 0) return throw_errno(env, errno, "llistxattr", path);
    buf = malloc(n);
    n = llistxattr(path, buf, n);
  }
  if (n < 0) {
    int e = errno;
    if (buf != stack) free(buf);
    if (e == ENOTSUP) n = 0; /* a filesystem without xattrs has none to list */
    else return throw_errno(env, e, "llistxattr", path);
  }
  napi_value result;
  napi_create_array(env, &result);
  uint32_t index = 0;
  for (ssize_t off = 0; off < n;) {
    size_t len = strlen(buf + off);
    napi_value name;
    napi_create_string_utf8(env, buf + off, len, &name);
    napi_set_element(env, result, index++, name);
    off += len + 1;
  }
  if (buf != stack) free(buf);
  return result;
}

/* getxattr(path, name): Buffer | null */
static napi_value js_getxattr(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[MAX_PATH], name[MAX_NAME];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || get_string(env, argv[0], path, sizeof path) || get_string(env, argv[1], name, sizeof name)) return NULL;
  ssize_t n = lgetxattr(path, name, NULL, 0);
  if (n < 0) {
    if (errno == ENODATA || errno == ENOTSUP) {
      napi_value nul;
      napi_get_null(env, &nul);
      return nul;
    }
    return throw_errno(env, errno, "lgetxattr", path);
  }
  void *data;
  napi_value result;
  napi_create_buffer(env, n, &data, &result);
  if (n > 0 && lgetxattr(path, name, data, n) != n) return throw_errno(env, errno, "lgetxattr", path);
  return result;
}

/* setxattr(path, name, value: Buffer) */
static napi_value js_setxattr(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char path[MAX_PATH], name[MAX_NAME];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || get_string(env, argv[0], path, sizeof path) || get_string(env, argv[1], name, sizeof name)) return NULL;
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "value must be a Buffer");
    return NULL;
  }
  if (lsetxattr(path, name, data, len, 0) != 0) return throw_errno(env, errno, "lsetxattr", path);
  return NULL;
}

/* removexattr(path, name) */
static napi_value js_removexattr(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[MAX_PATH], name[MAX_NAME];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || get_string(env, argv[0], path, sizeof path) || get_string(env, argv[1], name, sizeof name)) return NULL;
  if (lremovexattr(path, name) != 0 && errno != ENODATA) return throw_errno(env, errno, "lremovexattr", path);
  return NULL;
}

/* mknod(path, mode, major, minor): mode includes the file type bits (S_IFCHR, S_IFBLK, S_IFIFO) */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  char path[MAX_PATH];
  uint32_t mode, major, minor;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4 || get_string(env, argv[0], path, sizeof path)) return NULL;
  napi_get_value_uint32(env, argv[1], &mode);
  napi_get_value_uint32(env, argv[2], &major);
  napi_get_value_uint32(env, argv[3], &minor);
  if (mknod(path, mode, makedev(major, minor)) != 0) return throw_errno(env, errno, "mknod", path);
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"listxattr", NULL, js_listxattr, NULL, NULL, NULL, napi_default, NULL},
    {"getxattr", NULL, js_getxattr, NULL, NULL, NULL, napi_default, NULL},
    {"setxattr", NULL, js_setxattr, NULL, NULL, NULL, napi_default, NULL},
    {"removexattr", NULL, js_removexattr, NULL, NULL, NULL, napi_default, NULL},
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
