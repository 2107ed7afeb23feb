#include "export_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX ".wl-export-"
#define TMP_SUFFIX ".tmp"

/* ---- names ----------------------------------------------------------------- */

static int is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int wl_export_cursor_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > WL_EXPORT_CURSOR_MAX || !is_letter(s[0]))
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (!is_letter(s[i]) && !is_digit(s[i]) && s[i] != '_')
            return 0;
    }
    return 1;
}

void wl_export_name_format(const struct wl_export_name *n, char *out)
{
    char cur[WL_EXPORT_CURSOR_MAX + 2] = "";
    char part[16] = "";
    if (n->cursor[0] != '\0')
        snprintf(cur, sizeof cur, "-%s", n->cursor);
    if (n->manifest) {
        snprintf(out, WL_EXPORT_NAME_MAX, "manifest-%s%s-%012llu-%012llu.json", n->table, cur,
                 (unsigned long long)n->first, (unsigned long long)n->last);
        return;
    }
    if (n->part > 0)
        snprintf(part, sizeof part, "-%04u", n->part);
    snprintf(out, WL_EXPORT_NAME_MAX, "%s%s-%012llu-%012llu%s.%s.gz", n->table, cur,
             (unsigned long long)n->first, (unsigned long long)n->last, part, n->format);
}

/* Splits s (modified) at '-' into at most max tokens; returns how many, or
 * -1 when there are more. */
static int split(char *s, char **tok, int max)
{
    int n = 0;
    for (char *p = s;;) {
        if (n == max)
            return -1;
        tok[n++] = p;
        char *dash = strchr(p, '-');
        if (dash == NULL)
            return n;
        *dash = '\0';
        p = dash + 1;
    }
}

static int parse_num(const char *s, uint64_t *out)
{
    if (*s == '\0')
        return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (!is_digit(*p) || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return 0;
}

static int strip_suffix(char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    if (n <= m || strcmp(s + n - m, suffix) != 0)
        return 0;
    s[n - m] = '\0';
    return 1;
}

int wl_export_name_parse(const char *name, struct wl_export_name *out)
{
    char buf[WL_EXPORT_NAME_MAX], *tok[6], again[WL_EXPORT_NAME_MAX];
    struct wl_export_name n;
    int k = 0;

    if (strlen(name) >= sizeof buf)
        return -1;
    memset(&n, 0, sizeof n);
    strcpy(buf, name);
    if (strncmp(buf, "manifest-", 9) == 0) {
        if (!strip_suffix(buf, ".json"))
            return -1;
        n.manifest = 1;
        memmove(buf, buf + 9, strlen(buf + 9) + 1);
    } else {
        if (!strip_suffix(buf, ".gz"))
            return -1;
        if (strip_suffix(buf, ".ndjson"))
            strcpy(n.format, "ndjson");
        else if (strip_suffix(buf, ".csv"))
            strcpy(n.format, "csv");
        else
            return -1;
    }
    int nt = split(buf, tok, 6);
    if (nt < 3)
        return -1;
    if (strlen(tok[0]) >= sizeof n.table)
        return -1;
    for (const char *p = tok[0]; *p; p++) {
        if (*p < 'a' || *p > 'z')
            return -1;
    }
    strcpy(n.table, tok[0]);
    k = 1;
    if (is_letter(tok[1][0])) {
        if (!wl_export_cursor_valid(tok[1]))
            return -1;
        strcpy(n.cursor, tok[1]);
        k = 2;
    }
    int nums = nt - k;
    if (nums != 2 && !(nums == 3 && !n.manifest))
        return -1;
    uint64_t part = 0;
    if (parse_num(tok[k], &n.first) != 0 || parse_num(tok[k + 1], &n.last) != 0 ||
        (nums == 3 && (parse_num(tok[k + 2], &part) != 0 || part == 0 || part > 999999)))
        return -1;
    n.part = (unsigned)part;
    if (n.first > n.last)
        return -1;
    /* Only the canonical spelling (padding and all) is ours. */
    wl_export_name_format(&n, again);
    if (strcmp(again, name) != 0)
        return -1;
    *out = n;
    return 0;
}

/* ---- the directory ---------------------------------------------------------- */

/* The data directory's modes: nothing an export writes is readable by others.
 * Explicit here, not left to the umask (a stricter umask still applies). */
#define DIR_MODE 0750
#define FILE_MODE 0640

static int make_dirs(const char *dir, int *created)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return -ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    for (size_t i = 1; i <= n; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            char c = path[i];
            path[i] = '\0';
            if (mkdir(path, DIR_MODE) == 0) {
                if (c == '\0')
                    *created = 1;
            } else if (errno != EEXIST) {
                return -errno;
            }
            path[i] = c;
        }
    }
    return 0;
}

/* fsync of the directory holding path (after creating path in it). */
static void sync_parent(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    char *slash = strrchr(buf, '/');
    const char *parent = slash == NULL ? "." : slash == buf ? "/" : (*slash = '\0', buf);
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int wl_outdir_open(struct wl_outdir *d, const char *dir, int readonly, char *err,
                   size_t errlen)
{
    struct stat st;
    int rc;

    memset(d, 0, sizeof *d);
    d->fd = -1;
    if (strlen(dir) == 0 || strlen(dir) >= sizeof d->path) {
        snprintf(err, errlen, "--out: '%s' is not a usable directory name", dir);
        return -EINVAL;
    }
    strcpy(d->path, dir);
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "--out %s: not a directory", dir);
        return -ENOTDIR;
    }
    if (readonly) {
        d->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d->fd < 0 && errno != ENOENT) {
            rc = -errno;
            snprintf(err, errlen, "--out %s: %s", dir, strerror(errno));
            return rc;
        }
        return 0;
    }
    if ((rc = make_dirs(dir, &d->created)) != 0) {
        snprintf(err, errlen, "--out %s: cannot create it: %s", dir, strerror(-rc));
        return rc;
    }
    if (d->created)
        sync_parent(dir);
    d->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "--out %s: %s", dir, strerror(errno));
        return rc;
    }
    if (flock(d->fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        snprintf(err, errlen, "--out %s: %s", dir,
                 rc == -EBUSY ? "another export is writing into it" : strerror(-rc));
        return rc;
    }
    /* Can a file be created here? (Permissions alone do not say: root, ro mounts.) */
    char tmp[64];
    int fd = wl_outdir_tmp(d, tmp);
    if (fd < 0) {
        snprintf(err, errlen, "--out %s: cannot create a file in it: %s", dir, strerror(-fd));
        return fd;
    }
    close(fd);
    unlinkat(d->fd, tmp, 0);
    return 0;
}

void wl_outdir_close(struct wl_outdir *d, int remove_if_created)
{
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    if (remove_if_created && d->created && rmdir(d->path) == 0)
        sync_parent(d->path);
}

int wl_outdir_scan(const struct wl_outdir *d, const char *table, const char *cursor,
                   struct wl_export_scan *out, char *err, size_t errlen)
{
    struct wl_export_name *names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;

    memset(out, 0, sizeof *out);
    if (d->fd < 0 || cursor[0] == '\0')
        return 0;
    int fd = dup(d->fd);
    DIR *dir = fd < 0 ? NULL : fdopendir(fd);
    if (dir == NULL) {
        int rc = -errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "--out %s: cannot list it: %s", d->path, strerror(-rc));
        return rc;
    }
    rewinddir(dir);
    while ((e = readdir(dir)) != NULL) {
        struct wl_export_name nm;
        if (wl_export_name_parse(e->d_name, &nm) != 0 || strcmp(nm.table, table) != 0 ||
            strcmp(nm.cursor, cursor) != 0)
            continue;
        if (nm.manifest) {
            if (!out->have_cursor || nm.last > out->cursor)
                out->cursor = nm.last;
            out->have_cursor = 1;
            out->manifests++;
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            struct wl_export_name *p = realloc(names, cap * sizeof *names);
            if (p == NULL) {
                free(names);
                closedir(dir);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
            }
            names = p;
        }
        names[n++] = nm;
    }
    closedir(dir);
    /* Keep the data files past the cursor: nothing lists them. */
    for (size_t i = 0; i < n; i++) {
        if (out->have_cursor && names[i].first <= out->cursor)
            continue;
        if (out->n_orphans == 0 || names[i].last > out->orphan_last)
            out->orphan_last = names[i].last;
        names[out->n_orphans++] = names[i];
    }
    out->orphans = names;
    return 0;
}

void wl_export_scan_free(struct wl_export_scan *s)
{
    free(s->orphans);
    memset(s, 0, sizeof *s);
}

int wl_outdir_remove_temps(struct wl_outdir *d)
{
    int fd = dup(d->fd), removed = 0;
    DIR *dir = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *e;
    if (dir == NULL) {
        int rc = -errno;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    rewinddir(dir);
    while ((e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0 && len > strlen(TMP_SUFFIX) &&
            strcmp(e->d_name + len - strlen(TMP_SUFFIX), TMP_SUFFIX) == 0 &&
            unlinkat(d->fd, e->d_name, 0) == 0)
            removed++;
    }
    closedir(dir);
    return removed;
}

int wl_outdir_tmp(struct wl_outdir *d, char tmp[64])
{
    for (int tries = 0; tries < 1000; tries++) {
        snprintf(tmp, 64, TMP_PREFIX "%u" TMP_SUFFIX, ++d->tmp_seq);
        int fd = openat(d->fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FILE_MODE);
        if (fd >= 0 || errno != EEXIST)
            return fd >= 0 ? fd : -errno;
    }
    return -EEXIST;
}

int wl_outdir_sync(struct wl_outdir *d)
{
    return fsync(d->fd) == 0 ? 0 : -errno;
}

int wl_outdir_publish(struct wl_outdir *d, int fd, const char *tmp, const char *name)
{
    int rc = 0;
    if (fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(d->fd, tmp, d->fd, name) != 0)
        rc = -errno;
    if (rc == 0)
        rc = wl_outdir_sync(d);
    return rc;
}

int wl_outdir_exists(const struct wl_outdir *d, const char *name)
{
    struct stat st;
    return d->fd >= 0 && fstatat(d->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int wl_outdir_unlink(struct wl_outdir *d, const char *name)
{
    return unlinkat(d->fd, name, 0) == 0 ? 0 : -errno;
}
