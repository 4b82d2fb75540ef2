/* strata-run: the inside of a RUN sandbox.
 *
 * Started as `setpriv --pdeathsig KILL unshare --mount --pid --ipc --uts --fork --kill-child
 * --propagation private strata-run ...`, so it is PID 1 of a fresh pid namespace in a private mount
 * namespace: every mount made here vanishes with the namespace when the last process dies, even if the
 * builder is SIGKILLed. It mounts the overlay and the pseudo filesystems, pivots into the merged view,
 * detaches the host root, switches to the image's user and execs the command (which becomes PID 1).
 *
 * Options (all paths of mount sources are taken relative to the current directory, the store root,
 * so that lowerdirs can be short links like l/ABC and 150 layers fit into one page of mount options):
 *   --rootfs DIR      the (empty) mountpoint for the merged view
 *   --overlay OPTS    overlay mount options (lowerdir=...,upperdir=...,workdir=...,...)
 *   --bind SRC:DST    read-only bind of a host file onto DST inside the root
 *   --mkdir PATH      directory created inside the root before the command runs (mode 0755)
 *   --lock FD MODE    flock() the inherited FD before mounting: sh (shared), ex (exclusive, waits) or
 *                     try (exclusive if free). The builder keeps its own descriptor of the same open
 *                     file, so the lock outlives this process and is released when the builder closes
 *                     it (or dies); FD itself is closed here so the command never inherits it.
 *   --stage-overlay DIR OPTS   overlay mounted on the host directory DIR (a source for later binds)
 *   --mount-bind ROOT SUB DST FLAGS
 *                     bind ROOT/SUB (SUB resolved inside ROOT, symlinks kept inside it) onto DST
 *                     inside the root; FLAGS: ro|rw[,busy=FD:ALT] (ALT replaces ROOT when the try
 *                     lock FD was taken by someone else)
 *   --mount-tmpfs DST SIZE     tmpfs on DST (SIZE in bytes, 0 for the kernel's default)
 *   --secrets-dir DIR          host directory for a private tmpfs holding secret files
 *   --mount-secret FD DST MODE:UID:GID
 *                     the bytes read from the inherited FD become a file on that tmpfs, bound
 *                     read-only onto DST
 *   --loopback-up     bring up `lo` (in the empty network namespace of RUN --network=none)
 * Mount targets (DST) are resolved inside the root with RESOLVE_IN_ROOT; missing ones are created
 * (the builder puts those under the image into the init layer first, so only targets inside another
 * RUN mount are created here).
 *   --user SPEC       user[:group], names resolved through the image's /etc/passwd and /etc/group
 *   --cwd DIR         working directory inside the root
 *   --hostname NAME
 *   -- ARGV...        the command, looked up with the environment's PATH
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_LIST 256
#define MAX_GROUPS 64

static void die(const char *what, const char *arg) {
  fprintf(stderr, "strata-run: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(errno));
  exit(125);
}

static void fail(const char *message, const char *arg) {
  fprintf(stderr, "strata-run: %s%s\n", message, arg ? arg : "");
  exit(125);
}

static void mount_or_die(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
  if (mount(src, dst, type, flags, data) != 0) die("mount", dst);
}

static char *join(const char *a, const char *b) {
  char *out;
  if (asprintf(&out, "%s/%s", a, b) < 0) die("asprintf", NULL);
  return out;
}

/* A path inside the root exists as a directory: a mountpoint for a pseudo filesystem. */
static int is_dir(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void make_dev(const char *dev) {
  static const struct { const char *name; unsigned major, minor; } nodes[] = {
    {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
  };
  mount_or_die("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
  for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
    char *p = join(dev, nodes[i].name);
    if (mknod(p, S_IFCHR | 0666, makedev(nodes[i].major, nodes[i].minor)) != 0) die("mknod", p);
    chmod(p, 0666);
    free(p);
  }
  static const struct { const char *name, *target; } links[] = {
    {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
    {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},
  };
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
    char *p = join(dev, links[i].name);
    if (symlink(links[i].target, p) != 0) die("symlink", p);
    free(p);
  }
  char *pts = join(dev, "pts"), *shm = join(dev, "shm");
  if (mkdir(pts, 0755) != 0 || mkdir(shm, 01777) != 0) die("mkdir", dev);
  mount_or_die("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
  mount_or_die("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
  free(pts);
  free(shm);
}

static void mkdir_p(const char *path) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) fail("path too long: ", path);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST) die("mkdir", buf);
      *p = c;
      if (c == '\0') break;
    }
  }
}

/* One line of /etc/passwd or /etc/group split on ':' into at most max fields. */
static int split_fields(char *line, char **fields, int max) {
  int n = 0;
  fields[n++] = line;
  for (char *p = line; *p && n < max; p++) {
    if (*p == ':') {
      *p = '\0';
      fields[n++] = p + 1;
    }
  }
  char *nl = strchr(fields[n - 1], '\n');
  if (nl) *nl = '\0';
  return n;
}

static int parse_id(const char *s, unsigned *out) {
  char *end;
  if (!*s) return 0;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (*end || errno || v > 0xffffffffUL) return 0;
  *out = (unsigned)v;
  return 1;
}

struct user {
  unsigned uid, gid;
  char name[256];
  char home[PATH_MAX];
  gid_t groups[MAX_GROUPS];
  int ngroups;
};

/* Resolve user[:group] the way Docker does: names through the image's files (read directly, never
 * through the host's NSS), numbers taken as they are, the primary group from passwd when not given. */
static void resolve_user(const char *spec, struct user *u) {
  char user[256], *group = NULL;
  if (snprintf(user, sizeof user, "%s", spec) >= (int)sizeof user) fail("user too long: ", spec);
  char *colon = strchr(user, ':');
  if (colon) {
    *colon = '\0';
    group = colon + 1;
  }
  int numeric_user = parse_id(user, &u->uid);
  int found = 0;
  u->gid = 0;
  snprintf(u->home, sizeof u->home, "/");
  FILE *f = fopen("/etc/passwd", "r");
  char line[4096];
  while (f && fgets(line, sizeof line, f)) {
    char *fld[7];
    if (split_fields(line, fld, 7) < 7) continue;
    unsigned id;
    if (numeric_user ? (parse_id(fld[2], &id) && id == u->uid) : strcmp(fld[0], user) == 0) {
      parse_id(fld[2], &u->uid);
      parse_id(fld[3], &u->gid);
      snprintf(u->name, sizeof u->name, "%s", fld[0]);
      snprintf(u->home, sizeof u->home, "%s", fld[5]);
      found = 1;
      break;
    }
  }
  if (f) fclose(f);
  if (!found && !numeric_user) fail("unable to find user ", user);
  if (group && *group) {
    unsigned gid;
    if (parse_id(group, &gid)) {
      u->gid = gid;
    } else {
      int gfound = 0;
      f = fopen("/etc/group", "r");
      while (f && fgets(line, sizeof line, f)) {
        char *fld[4];
        if (split_fields(line, fld, 4) < 3) continue;
        if (strcmp(fld[0], group) == 0 && parse_id(fld[2], &gid)) {
          u->gid = gid;
          gfound = 1;
          break;
        }
      }
      if (f) fclose(f);
      if (!gfound) fail("unable to find group ", group);
    }
  }
  u->groups[0] = u->gid;
  u->ngroups = 1;
  /* Supplementary groups: those that list the user by name (only when no group was forced). */
  if (!group && found && (f = fopen("/etc/group", "r"))) {
    while (fgets(line, sizeof line, f) && u->ngroups < MAX_GROUPS) {
      char *fld[4];
      unsigned gid;
      if (split_fields(line, fld, 4) < 4 || !parse_id(fld[2], &gid) || gid == u->gid) continue;
      for (char *m = strtok(fld[3], ","); m; m = strtok(NULL, ","))
        if (strcmp(m, u->name) == 0) {
          u->groups[u->ngroups++] = gid;
          break;
        }
    }
    fclose(f);
  }
}


/* A RUN mount (or a lock) in the order the builder gave them. */
enum op_kind { OP_LOCK, OP_STAGE_OVERLAY, OP_BIND, OP_TMPFS, OP_SECRET };
struct op {
  enum op_kind kind;
  const char *v[4];
};

static int open_in(int dirfd, const char *path, int flags, unsigned long long resolve) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (unsigned long long)(flags | O_CLOEXEC);
  how.resolve = resolve;
  return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

static int parse_fd(const char *s) {
  unsigned v;
  if (!parse_id(s, &v) || v < 3 || v > 1024) fail("bad descriptor ", s);
  return (int)v;
}

/* Descriptors whose try-lock found the cache in use (sharing=private). */
static unsigned char lock_busy[1025];

static void take_lock(const char *fd_text, const char *mode) {
  int fd = parse_fd(fd_text);
  int how = strcmp(mode, "sh") == 0 ? LOCK_SH : strcmp(mode, "ex") == 0 ? LOCK_EX : strcmp(mode, "try") == 0 ? LOCK_EX | LOCK_NB : -1;
  if (how < 0) fail("bad lock mode ", mode);
  int rc;
  while ((rc = flock(fd, how)) != 0 && errno == EINTR) {}
  if (rc != 0) {
    if (errno != EWOULDBLOCK) die("flock", fd_text);
    lock_busy[fd] = 1;
  }
  close(fd);
}

/* Opens DST inside the root as an O_PATH descriptor, creating what is missing (a directory, or a
 * file at the end when want_file): only inside other RUN mounts, see the header. */
static int open_target(int rootfd, const char *dst, int want_file) {
  int fd = open_in(rootfd, dst, O_PATH, RESOLVE_IN_ROOT);
  if (fd >= 0 || errno != ENOENT) {
    if (fd < 0) die("open mount target", dst);
    return fd;
  }
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", dst) >= (int)sizeof buf) fail("path too long: ", dst);
  int parent = dup(rootfd);
  for (char *name = buf; *name;) {
    while (*name == '/') name++;
    if (!*name) break;
    char *end = strchr(name, '/');
    int last = !end || !end[strspn(end, "/")];
    if (end) *end = '\0';
    int next = open_in(parent, name, O_PATH, RESOLVE_IN_ROOT);
    if (next < 0 && errno == ENOENT) {
      if (last && want_file) {
        int created = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
        if (created < 0) die("create mountpoint", dst);
        close(created);
      } else if (mkdirat(parent, name, 0755) != 0) {
        die("create mountpoint", dst);
      }
      next = open_in(parent, name, O_PATH, RESOLVE_IN_ROOT);
    }
    if (next < 0) die("open mount target", dst);
    close(parent);
    parent = next;
    if (!end) break;
    name = end + 1;
  }
  return parent;
}

/* Attaches the detached mount tree onto the target, which must be of the same kind (file or dir). */
static void attach(int tree, int source_is_dir, int rootfd, const char *dst) {
  int target = open_target(rootfd, dst, !source_is_dir);
  struct stat st;
  if (fstat(target, &st) != 0) die("stat", dst);
  if (S_ISDIR(st.st_mode) != source_is_dir) {
    errno = source_is_dir ? ENOTDIR : EISDIR;
    die("mount target", dst);
  }
  if (move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0) die("mount", dst);
  close(target);
  close(tree);
}

static void bind_mount(int rootfd, const char *root, const char *sub, const char *dst, const char *flags) {
  char opts[PATH_MAX];
  if (snprintf(opts, sizeof opts, "%s", flags) >= (int)sizeof opts) fail("mount flags too long: ", flags);
  int readonly = 0;
  for (char *f = strtok(opts, ","); f; f = strtok(NULL, ",")) {
    if (strcmp(f, "ro") == 0) readonly = 1;
    else if (strcmp(f, "rw") == 0) readonly = 0;
    else if (strncmp(f, "busy=", 5) == 0) {
      char *colon = strchr(f + 5, ':');
      if (!colon) fail("bad busy= flag ", flags);
      *colon = '\0';
      if (lock_busy[parse_fd(f + 5)]) root = colon + 1;
    } else fail("unknown mount flag ", f);
  }
  int rootdir = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootdir < 0) die("open mount source", root);
  int src = open_in(rootdir, *sub ? sub : ".", O_PATH, RESOLVE_IN_ROOT);
  if (src < 0) die("open mount source", sub);
  struct stat st;
  if (fstat(src, &st) != 0) die("stat", sub);
  int tree = open_tree(src, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) die("open_tree", sub);
  if (readonly) {
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) die("mount_setattr", dst);
  }
  attach(tree, S_ISDIR(st.st_mode), rootfd, dst);
  close(src);
  close(rootdir);
}

static void tmpfs_mount(int rootfd, const char *dst, const char *size) {
  unsigned long long bytes = strtoull(size, NULL, 10);
  int target = open_target(rootfd, dst, 0);
  char path[64], data[64] = "mode=1777";
  snprintf(path, sizeof path, "/proc/self/fd/%d", target);
  if (bytes) snprintf(data, sizeof data, "mode=1777,size=%llu", bytes);
  mount_or_die("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, data);
  close(target);
}

/* The secret's bytes (read from the builder's pipe) as a file on the private tmpfs, bound read-only. */
static void secret_mount(int rootfd, const char *secrets_dir, int index, const char *fd_text, const char *dst, const char *owner) {
  int in = parse_fd(fd_text);
  unsigned mode, uid, gid;
  if (sscanf(owner, "%o:%u:%u", &mode, &uid, &gid) != 3) fail("bad secret owner ", owner);
  char name[32];
  snprintf(name, sizeof name, "%d", index);
  int dir = open(secrets_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) die("open", secrets_dir);
  int out = openat(dir, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (out < 0) die("create secret file", dst);
  char buf[65536];
  for (;;) {
    ssize_t n = read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("read secret for", dst);
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(out, buf + done, (size_t)(n - done));
      if (w < 0) die("write secret for", dst);
      done += w;
    }
  }
  close(in);
  if (fchown(out, uid, gid) != 0 || fchmod(out, mode & 07777) != 0) die("set owner of secret", dst);
  close(out);
  bind_mount(rootfd, secrets_dir, name, dst, "ro");
  close(dir);
}

/* A new network namespace has `lo` down: RUN --network=none still gets a working loopback. */
static void loopback_up(void) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
  if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) die("loopback", NULL);
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) die("loopback up", NULL);
  close(sock);
}

int main(int argc, char **argv) {
  const char *rootfs = NULL, *overlay = NULL, *user = "0", *cwd = "/", *hostname = "strata", *secrets_dir = NULL;
  const char *binds[MAX_LIST], *dirs[MAX_LIST];
  static struct op ops[MAX_LIST];
  int nbinds = 0, ndirs = 0, nops = 0, nsecrets = 0, lo_up = 0, i;
  static const struct { const char *name; enum op_kind kind; int values; } op_options[] = {
    {"--lock", OP_LOCK, 2}, {"--stage-overlay", OP_STAGE_OVERLAY, 2}, {"--mount-bind", OP_BIND, 4},
    {"--mount-tmpfs", OP_TMPFS, 2}, {"--mount-secret", OP_SECRET, 3},
  };
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { i++; break; }
    if (strcmp(a, "--loopback-up") == 0) { lo_up = 1; continue; }
    int matched = 0;
    for (size_t o = 0; o < sizeof op_options / sizeof op_options[0]; o++) {
      if (strcmp(a, op_options[o].name) != 0) continue;
      if (i + op_options[o].values >= argc) fail("missing values for ", a);
      if (nops >= MAX_LIST) fail("too many mounts at ", a);
      ops[nops].kind = op_options[o].kind;
      for (int k = 0; k < op_options[o].values; k++) ops[nops].v[k] = argv[++i];
      if (ops[nops].kind == OP_SECRET) nsecrets++;
      nops++;
      matched = 1;
    }
    if (matched) continue;
    if (i + 1 >= argc) fail("missing value for ", a);
    const char *v = argv[++i];
    if (strcmp(a, "--rootfs") == 0) rootfs = v;
    else if (strcmp(a, "--overlay") == 0) overlay = v;
    else if (strcmp(a, "--bind") == 0 && nbinds < MAX_LIST) binds[nbinds++] = v;
    else if (strcmp(a, "--mkdir") == 0 && ndirs < MAX_LIST) dirs[ndirs++] = v;
    else if (strcmp(a, "--user") == 0) user = v;
    else if (strcmp(a, "--cwd") == 0) cwd = v;
    else if (strcmp(a, "--hostname") == 0) hostname = v;
    else if (strcmp(a, "--secrets-dir") == 0) secrets_dir = v;
    else fail("unknown option ", a);
  }
  if (!rootfs || !overlay || i >= argc) fail("usage: strata-run --rootfs DIR --overlay OPTS [...] -- CMD...", NULL);
  if (nsecrets && !secrets_dir) fail("--mount-secret needs --secrets-dir", NULL);
  char **command = argv + i;

  /* Nothing mounted here may propagate back to the host, whatever unshare was told. */
  mount_or_die(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
  if (lo_up) loopback_up();
  /* Locks first (in the builder's order, so that two builds never wait on each other crosswise). */
  for (int o = 0; o < nops; o++)
    if (ops[o].kind == OP_LOCK) take_lock(ops[o].v[0], ops[o].v[1]);
  mount_or_die("overlay", rootfs, "overlay", 0, overlay);

  char *proc = join(rootfs, "proc"), *sys = join(rootfs, "sys"), *dev = join(rootfs, "dev");
  if (is_dir(proc)) mount_or_die("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  if (is_dir(dev)) make_dev(dev);
  if (is_dir(sys)) mount_or_die("sysfs", sys, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  for (int b = 0; b < nbinds; b++) {
    char src[PATH_MAX];
    snprintf(src, sizeof src, "%s", binds[b]);
    char *sep = strchr(src, ':');
    if (!sep) fail("--bind wants SRC:DST, got ", binds[b]);
    *sep = '\0';
    char *dst = join(rootfs, sep + 1);
    struct stat st;
    /* Only onto a plain file of the root: never through a symlink the image may have planted. */
    if (lstat(dst, &st) != 0 || !S_ISREG(st.st_mode)) { free(dst); continue; }
    mount_or_die(src, dst, NULL, MS_BIND, NULL);
    mount_or_die(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
    free(dst);
  }

  if (nsecrets) mount_or_die("tmpfs", secrets_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=65536k");
  int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) die("open", rootfs);
  for (int o = 0, secret = 0; o < nops; o++) {
    const char **v = ops[o].v;
    switch (ops[o].kind) {
    case OP_LOCK: break;
    case OP_STAGE_OVERLAY: mount_or_die("overlay", v[0], "overlay", 0, v[1]); break;
    case OP_BIND: bind_mount(rootfd, v[0], v[1], v[2], v[3]); break;
    case OP_TMPFS: tmpfs_mount(rootfd, v[0], v[1]); break;
    case OP_SECRET: secret_mount(rootfd, secrets_dir, secret++, v[0], v[1], v[2]); break;
    }
  }
  close(rootfd);

  /* pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the image. */
  if (chdir(rootfs) != 0) die("chdir", rootfs);
  if (syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root", rootfs);
  if (umount2(".", MNT_DETACH) != 0) die("umount", "old root");
  if (chdir("/") != 0) die("chdir", "/");
  sethostname(hostname, strlen(hostname));

  umask(022);
  for (int d = 0; d < ndirs; d++) mkdir_p(dirs[d]);

  struct user u;
  memset(&u, 0, sizeof u);
  resolve_user(user, &u);
  if (chdir(cwd) != 0) die("chdir", cwd);
  if (setgroups(u.ngroups, u.groups) != 0) die("setgroups", NULL);
  if (setgid(u.gid) != 0) die("setgid", NULL);
  if (setuid(u.uid) != 0) die("setuid", NULL);
  /* A credential change clears the parent-death signal that unshare --kill-child set: re-arm it so
   * the sandbox still dies with the builder. */
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die("prctl", NULL);
  if (!getenv("HOME")) setenv("HOME", u.home[0] ? u.home : "/", 1);

  execvp(command[0], command);
  fprintf(stderr, "strata-run: exec %s: %s\n", command[0], strerror(errno));
  return errno == ENOENT ? 127 : 126;
}
