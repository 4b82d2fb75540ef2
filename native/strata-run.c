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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
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

int main(int argc, char **argv) {
  const char *rootfs = NULL, *overlay = NULL, *user = "0", *cwd = "/", *hostname = "strata";
  const char *binds[MAX_LIST], *dirs[MAX_LIST];
  int nbinds = 0, ndirs = 0, i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { i++; break; }
    if (i + 1 >= argc) fail("missing value for ", a);
    const char *v = argv[++i];
    if (strcmp(a, "--rootfs") == 0) rootfs = v;
    else if (strcmp(a, "--overlay") == 0) overlay = v;
    else if (strcmp(a, "--bind") == 0 && nbinds < MAX_LIST) binds[nbinds++] = v;
    else if (strcmp(a, "--mkdir") == 0 && ndirs < MAX_LIST) dirs[ndirs++] = v;
    else if (strcmp(a, "--user") == 0) user = v;
    else if (strcmp(a, "--cwd") == 0) cwd = v;
    else if (strcmp(a, "--hostname") == 0) hostname = v;
    else fail("unknown option ", a);
  }
  if (!rootfs || !overlay || i >= argc) fail("usage: strata-run --rootfs DIR --overlay OPTS [...] -- CMD...", NULL);
  char **command = argv + i;

  /* Nothing mounted here may propagate back to the host, whatever unshare was told. */
  mount_or_die(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
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
