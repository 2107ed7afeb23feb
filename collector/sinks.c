/* Sinks: one thread, two independent deliveries from the signal log.
 *
 * The thread loops: append what the file has not seen; post to the webhook
 * when its retry time has come; wait for a nudge, the next retry time, or a
 * one-second tick (signals may have been written while no collector ran, by
 * an import for instance). Each sink keeps its own cursor, the id of the
 * last signal it delivered, in the meta column family, so a dead webhook
 * holds neither the file nor ingest: it only falls behind.
 *
 * File, exactly once across crashes. A batch of lines is written, fsynced,
 * and only then is the cursor saved. A crash between the fsync and the
 * cursor leaves the file ahead of the cursor: at start, the id of the
 * file's last complete line moves the cursor forward (when that signal is
 * in the log: a file from another database moves nothing). A crash during
 * the write can leave part of a line at the end: at start it is cut off, and
 * the signal is written again whole. Because of this check the file belongs
 * to the sink: a last line without a newline is removed. Rotate it with
 * copytruncate (the descriptor stays open, O_APPEND), or restart.
 *
 * Webhook, at least once, in order. One POST per signal with an
 * Idempotency-Key header (the signal id), so a receiver can drop the
 * repeat that follows a crash between its 2xx and our cursor. Anything but
 * a 2xx is retried, the same signal, after 500 ms doubling up to
 * webhook_max_backoff_ms, less up to a quarter of jitter. Logs name the
 * host only: webhook URLs often carry their token in the path. */
#include "sinks.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "signal_json.h"
#include "storage/keys.h"

#define TICK_MS 1000               /* re-read the log this often without a nudge */
#define FILE_BATCH 64              /* lines per write, fsync and cursor save */
#define WEBHOOK_BURST 16           /* posts per turn before the file's next turn */
#define BACKOFF_START_MS 500
#define FILE_MAX_BACKOFF_MS 30000  /* a full disk is retried at least this often */
#define TAIL_LINE_MAX (16u << 20)  /* longest last line read back at start */
#define SUMMARY_MAX 1000

static const char FILE_CURSOR_KEY[] = "sink.file.cursor";
static const char WEBHOOK_CURSOR_KEY[] = "sink.webhook.cursor";

struct file_sink {
    int on;
    int fd;
    char path[sizeof(((struct wl_config *)0)->signal_file)];
    uint64_t cursor;      /* last id written and fsynced */
    unsigned failures;    /* consecutive failed batches */
    int64_t retry_at;     /* monotonic ms */
};

struct webhook_sink {
    int on;
    CURL *curl;
    int format;           /* enum wl_webhook_format */
    char host[256];       /* for logs, never the URL */
    uint64_t max_backoff_ms;
    uint64_t cursor;      /* last id answered 2xx */
    unsigned attempt;     /* failed attempts of the next signal */
    int64_t retry_at;     /* monotonic ms */
};

struct wl_sinks {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* on CLOCK_MONOTONIC */
    uint64_t notified;    /* highest durable id announced */
    int stopping;
    int64_t stop_at;        /* mono_ms() when stopping was asked */

    /* the sink thread's (and start's, before the thread runs) */
    struct wl_store *store;
    struct wl_batch *batch;
    struct file_sink file;
    struct webhook_sink hook;
    int curl_inited;
    uint64_t rng;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int is_stopping(struct wl_sinks *s)
{
    pthread_mutex_lock(&s->mu);
    int stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* 500 ms doubling up to max, less up to a quarter (xorshift64: jitter
 * needs no quality, only that collectors do not retry in step). */
static uint64_t backoff_ms(struct wl_sinks *s, unsigned attempt, uint64_t max)
{
    uint64_t d = BACKOFF_START_MS;
    for (unsigned i = 1; i < attempt && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return d - s->rng % (d / 4 + 1);
}

/* ---- cursors and the log ---- */

static int cursor_load(struct wl_store *store, const char *key, uint64_t *out, char *err,
                       size_t errlen)
{
    char *val = NULL;
    size_t vlen = 0;
    int rc = wl_store_get(store, WL_CF_META, key, strlen(key), &val, &vlen, err, errlen);

    *out = 0;
    if (rc == -ENOENT)
        return 0;
    if (rc != 0)
        return rc;
    if (vlen != 8) {
        snprintf(err, errlen, "meta %s: %zu bytes, expected an 8-byte id", key, vlen);
        free(val);
        return -EINVAL;
    }
    *out = wl_be64_get(val);
    free(val);
    return 0;
}

static int cursor_save(struct wl_sinks *s, const char *key, uint64_t id, char *err,
                       size_t errlen)
{
    uint8_t v[8];

    wl_be64_put(v, id);
    wl_batch_clear(s->batch);
    wl_batch_put(s->batch, WL_CF_META, key, strlen(key), v, sizeof v);
    return wl_store_write(s->store, s->batch, 1, err, errlen);
}

static struct wl_iter *log_from(struct wl_sinks *s, uint64_t after)
{
    uint8_t k[8];
    struct wl_iter *it = wl_iter_new(s->store, WL_CF_SIGNALS);

    if (it != NULL) {
        wl_be64_put(k, after + 1);
        wl_iter_seek(it, k, sizeof k);
    }
    return it;
}

/* The next signal of the log: 1 with its id and record (NULL when the record
 * does not decode: the caller skips it, it can never be delivered), 0 at the
 * end, or -EIO with the reason. */
static int log_next(struct wl_iter *it, uint64_t *id, wl_signal **sig, char *err, size_t errlen)
{
    size_t klen, vlen;

    for (; wl_iter_valid(it); wl_iter_next(it)) {
        const char *k = wl_iter_key(it, &klen);
        if (klen != 8)
            continue; /* not a signal key */
        const char *v = wl_iter_value(it, &vlen);
        *id = wl_be64_get(k);
        *sig = warmline__store__v1__signal__unpack(NULL, vlen, (const uint8_t *)v);
        if (*sig != NULL)
            (*sig)->id = *id; /* the key is the authority: JSON id = Idempotency-Key */
        wl_iter_next(it);
        return 1;
    }
    return wl_iter_status(it, err, errlen) == 0 ? 0 : -EIO;
}

static void signal_free(wl_signal *sig)
{
    if (sig != NULL)
        warmline__store__v1__signal__free_unpacked(sig, NULL);
}

static void log_unreadable(const char *sink, uint64_t id)
{
    wl_error("signal_unreadable", "sink=%s id=%" PRIu64 " action=skipped", sink, id);
}

/* ---- file ---- */

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Offset of the last '\n' before end, -1 when there is none, or -errno. */
static off_t last_newline(int fd, off_t end)
{
    char buf[4096];

    while (end > 0) {
        size_t n = end < (off_t)sizeof buf ? (size_t)end : sizeof buf;
        ssize_t r = pread(fd, buf, n, end - (off_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t)n)
            return r < 0 ? -errno : -EIO;
        for (size_t i = n; i > 0; i--)
            if (buf[i - 1] == '\n')
                return end - (off_t)n + (off_t)(i - 1);
        end -= (off_t)n;
    }
    return -1;
}

/* The "id" of the line [start, end), or 0 when it has none. */
static uint64_t line_id(int fd, off_t start, off_t end)
{
    size_t n = (size_t)(end - start);
    char *line = malloc(n ? n : 1);
    uint64_t id = 0;

    if (line == NULL)
        return 0;
    if (pread(fd, line, n, start) == (ssize_t)n) {
        json_t *o = json_loadb(line, n, 0, NULL);
        json_t *j = json_object_get(o, "id");
        if (json_is_integer(j) && json_integer_value(j) > 0)
            id = (uint64_t)json_integer_value(j);
        json_decref(o);
    }
    free(line);
    return id;
}

/* See the top of the file: cut a partial last line, and move the cursor to
 * the last complete line's id when the file got further than it. */
static int file_recover(struct wl_sinks *s, char *err, size_t errlen)
{
    struct file_sink *f = &s->file;
    struct stat st;

    if (fstat(f->fd, &st) != 0)
        goto io_fail;
    off_t size = st.st_size;
    if (size == 0)
        return 0;
    off_t nl = last_newline(f->fd, size);
    if (nl < -1) {
        errno = (int)-nl;
        goto io_fail;
    }
    if (nl != size - 1) {
        if (ftruncate(f->fd, nl + 1) != 0 || fsync(f->fd) != 0)
            goto io_fail;
        wl_warn("signal_file_partial_line_removed", "file=%s bytes=%lld", f->path,
                (long long)(size - (nl + 1)));
        size = nl + 1;
        if (size == 0)
            return 0;
    }
    off_t prev = last_newline(f->fd, size - 1);
    if (prev < -1) {
        errno = (int)-prev;
        goto io_fail;
    }
    if (size - 1 - (prev + 1) > (off_t)TAIL_LINE_MAX) {
        wl_warn("signal_file_tail_unreadable", "file=%s reason=line_too_long", f->path);
        return 0;
    }
    uint64_t id = line_id(f->fd, prev + 1, size - 1);
    if (id == 0) {
        wl_warn("signal_file_tail_unreadable", "file=%s reason=no_id", f->path);
        return 0;
    }
    if (id <= f->cursor)
        return 0;
    uint8_t k[8];
    char *val = NULL;
    size_t vlen;
    wl_be64_put(k, id);
    int rc = wl_store_get(s->store, WL_CF_SIGNALS, k, sizeof k, &val, &vlen, err, errlen);
    free(val);
    if (rc == -ENOENT) {
        wl_warn("signal_file_ahead_of_log", "file=%s file_id=%" PRIu64 " cursor=%" PRIu64
                " action=kept_cursor", f->path, id, f->cursor);
        return 0;
    }
    if (rc != 0)
        return rc;
    if ((rc = cursor_save(s, FILE_CURSOR_KEY, id, err, errlen)) != 0)
        return rc;
    wl_info("sink_cursor_recovered", "sink=file from=%" PRIu64 " to=%" PRIu64, f->cursor, id);
    f->cursor = id;
    return 0;

io_fail:
    rc = -errno;
    snprintf(err, errlen, "signal file %s: %s", f->path, strerror(errno));
    return rc;
}

static int file_open(struct wl_sinks *s, const char *path, char *err, size_t errlen)
{
    struct file_sink *f = &s->file;
    int rc;

    f->on = 1;
    snprintf(f->path, sizeof f->path, "%s", path);
    if ((rc = cursor_load(s->store, FILE_CURSOR_KEY, &f->cursor, err, errlen)) != 0)
        return rc;
    f->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (f->fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "signal file %s: %s", path, strerror(errno));
        return rc;
    }
    return file_recover(s, err, errlen);
}

static void file_failed(struct wl_sinks *s, const char *what, const char *reason)
{
    struct file_sink *f = &s->file;
    uint64_t delay = backoff_ms(s, ++f->failures, FILE_MAX_BACKOFF_MS);

    f->retry_at = mono_ms() + (int64_t)delay;
    wl_count_sink_failure(WL_SINK_FILE);
    wl_warn("sink_failed", "sink=file id=%" PRIu64 " attempt=%u error=\"%s: %s\" retry_in_ms=%"
            PRIu64, f->cursor + 1, f->failures, what, reason, delay);
}

/* Appends up to FILE_BATCH signals after the cursor, fsyncs, saves the
 * cursor. Sets *more when the batch was full. */
static void file_turn(struct wl_sinks *s, int *more)
{
    struct file_sink *f = &s->file;
    char err[512] = "";
    uint64_t ids[FILE_BATCH], last = f->cursor, id;
    size_t n_ids = 0, len = 0, cap = 0;
    char *buf = NULL;
    wl_signal *sig;
    int rc = 0, read_rc = 0;

    if (!f->on || mono_ms() < f->retry_at)
        return;
    struct wl_iter *it = log_from(s, f->cursor);
    if (it == NULL) {
        file_failed(s, "reading the log", strerror(ENOMEM));
        return;
    }
    while (n_ids < FILE_BATCH && (read_rc = log_next(it, &id, &sig, err, sizeof err)) == 1) {
        if (sig == NULL) {
            log_unreadable("file", id);
            last = id;
            continue;
        }
        char *line = wl_signal_json_text(sig);
        signal_free(sig);
        size_t n = line ? strlen(line) : 0;
        if (line != NULL && len + n + 1 > cap) {
            size_t ncap = cap ? cap : 4096;
            while (len + n + 1 > ncap)
                ncap *= 2;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                free(line);
                line = NULL;
            } else {
                buf = nb;
                cap = ncap;
            }
        }
        if (line == NULL) {
            read_rc = -ENOMEM;
            snprintf(err, sizeof err, "%s", strerror(ENOMEM));
            break;
        }
        memcpy(buf + len, line, n);
        buf[len + n] = '\n';
        len += n + 1;
        free(line);
        ids[n_ids++] = last = id;
    }
    wl_iter_free(it);
    if (read_rc < 0 && last == f->cursor) {
        /* nothing gathered before the error: nothing to write */
        file_failed(s, "reading the log", err);
        goto out;
    }
    if (last == f->cursor) /* nothing new */
        goto out;
    if (len > 0) {
        struct stat st;
        if (fstat(f->fd, &st) != 0) {
            file_failed(s, "stat", strerror(errno));
            goto out;
        }
        if ((rc = write_all(f->fd, buf, len)) != 0 || fsync(f->fd) != 0) {
            int e = rc ? -rc : errno;
            /* no partial line may stay: the next attempt appends after it */
            if (ftruncate(f->fd, st.st_size) != 0)
                wl_error("signal_file_rollback_failed", "file=%s error=\"%s\"", f->path,
                         strerror(errno));
            file_failed(s, rc ? "write" : "fsync", strerror(e));
            goto out;
        }
    }
    /* Written and fsynced: from here on the file counts as delivered, even
     * if the cursor cannot be saved (the file's last line corrects it at
     * the next start). */
    f->cursor = last;
    f->failures = 0;
    f->retry_at = 0;
    wl_count_sink_delivered(WL_SINK_FILE, n_ids);
    if (cursor_save(s, FILE_CURSOR_KEY, last, err, sizeof err) != 0)
        wl_error("sink_cursor_not_saved", "sink=file id=%" PRIu64 " error=\"%s\"", last, err);
    for (size_t i = 0; i < n_ids; i++)
        wl_debug("signal_delivered", "sink=file id=%" PRIu64, ids[i]);
    *more |= n_ids == FILE_BATCH || read_rc < 0; /* an error: retried, then backed off */

out:
    free(buf);
}

/* ---- webhook ---- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

#define STOP_GRACE_MS 1000 /* a request in flight at stop gets this long to finish */

/* Called by libcurl on progress and at least once a second: a non-zero
 * return aborts the transfer. A request in flight when the collector stops
 * gets STOP_GRACE_MS to finish (so a delivery that is done is recorded as
 * such), then is aborted: stopping never waits out a request that hangs
 * (webhook_timeout_ms may be minutes). */
static int abort_if_stopping(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                             curl_off_t ulnow)
{
    struct wl_sinks *s = arg;
    (void)dltotal; (void)dlnow; (void)ultotal; (void)ulnow;
    pthread_mutex_lock(&s->mu);
    int late = s->stopping && mono_ms() - s->stop_at >= STOP_GRACE_MS;
    pthread_mutex_unlock(&s->mu);
    return late;
}

static int webhook_open(struct wl_sinks *s, const struct wl_config *cfg, char *err,
                        size_t errlen)
{
    struct webhook_sink *h = &s->hook;
    char *scheme = NULL, *host = NULL;
    CURLU *u = NULL;
    int rc = -EINVAL;

    h->on = 1;
    h->format = cfg->webhook_format;
    h->max_backoff_ms = cfg->webhook_max_backoff_ms ? cfg->webhook_max_backoff_ms : 1;
    if ((rc = cursor_load(s->store, WEBHOOK_CURSOR_KEY, &h->cursor, err, errlen)) != 0)
        return rc;
    rc = -EINVAL;
    /* Errors name no part of the URL: it may hold the token. */
    if ((u = curl_url()) == NULL) {
        rc = -ENOMEM;
        snprintf(err, errlen, "webhook_url: %s", strerror(ENOMEM));
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, cfg->webhook_url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(err, errlen, "webhook_url: not a valid URL");
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        snprintf(err, errlen, "webhook_url: expected an http:// or https:// URL");
        goto out;
    }
    snprintf(h->host, sizeof h->host, "%s", host);
    if ((h->curl = curl_easy_init()) == NULL) {
        snprintf(err, errlen, "webhook: cannot create a curl handle");
        goto out;
    }
    long timeout = (long)cfg->webhook_timeout_ms;
    if (curl_easy_setopt(h->curl, CURLOPT_URL, cfg->webhook_url) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, timeout) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "warmline") != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, discard) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_XFERINFOFUNCTION, abort_if_stopping) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_XFERINFODATA, s) != CURLE_OK ||
        curl_easy_setopt(h->curl, CURLOPT_NOPROGRESS, 0L) != CURLE_OK) {
        snprintf(err, errlen, "webhook: curl rejected an option");
        goto out;
    }
    rc = 0;

out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* Slack reads &, < and > in text as markup: they must be escaped. */
static void slack_escape(const char *in, char *out, size_t outlen)
{
    size_t n = 0;

    for (; *in != '\0'; in++) {
        const char *rep = *in == '&' ? "&amp;" : *in == '<' ? "&lt;" : *in == '>' ? "&gt;" : NULL;
        size_t m = rep ? strlen(rep) : 1;
        if (n + m >= outlen)
            break;
        memcpy(out + n, rep ? rep : in, m);
        n += m;
    }
    out[n] = '\0';
}

static char *webhook_body(const struct webhook_sink *h, const wl_signal *sig)
{
    char summary[SUMMARY_MAX], text[5 * SUMMARY_MAX + 1];

    if (h->format != WL_WEBHOOK_SLACK)
        return wl_signal_json_text(sig);
    wl_signal_summary(sig, summary, sizeof summary);
    slack_escape(summary, text, sizeof text);
    json_t *o = json_pack("{s:s}", "text", text);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return body;
}

/* One POST. Returns 1 on a 2xx, else 0 with the status (0 when there was
 * no response) and the reason. */
static int webhook_post(struct webhook_sink *h, const wl_signal *sig, long *status,
                        char *why, size_t whylen)
{
    char key[64];
    struct curl_slist *headers = NULL, *l;
    char *body = webhook_body(h, sig);
    int ok = 0;

    *status = 0;
    snprintf(key, sizeof key, "Idempotency-Key: %" PRIu64, sig->id);
    if (body == NULL ||
        (l = curl_slist_append(headers, "Content-Type: application/json")) == NULL ||
        (headers = l, l = curl_slist_append(headers, key)) == NULL ||
        (headers = l, l = curl_slist_append(headers, "Expect:")) == NULL) {
        snprintf(why, whylen, "%s", strerror(ENOMEM));
        goto out;
    }
    headers = l;
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    CURLcode c = curl_easy_perform(h->curl);
    if (c != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(c));
        goto out;
    }
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, status);
    ok = *status >= 200 && *status < 300;
    if (!ok)
        snprintf(why, whylen, "http status %ld", *status);

out:
    /* the handle must not point at freed memory between calls */
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);
    free(body);
    return ok;
}

/* Posts up to WEBHOOK_BURST signals after the cursor, in order, stopping at
 * the first failure (its retry time is set). Sets *more when the burst was
 * used up. */
static void webhook_turn(struct wl_sinks *s, int *more)
{
    struct webhook_sink *h = &s->hook;
    char err[512] = "", why[256];
    uint64_t id;
    wl_signal *sig;

    if (!h->on || mono_ms() < h->retry_at)
        return;
    for (int i = 0; i < WEBHOOK_BURST; i++) {
        if (is_stopping(s))
            return;
        struct wl_iter *it = log_from(s, h->cursor);
        int rc = -ENOMEM;
        if (it != NULL)
            rc = log_next(it, &id, &sig, err, sizeof err);
        else
            snprintf(err, sizeof err, "%s", strerror(ENOMEM));
        wl_iter_free(it);
        if (rc == 0)
            return;
        if (rc < 0) {
            /* the log itself failed: wait for the tick, no backoff state */
            wl_count_sink_failure(WL_SINK_WEBHOOK);
            wl_warn("sink_failed", "sink=webhook id=%" PRIu64 " error=\"reading the log: %s\"",
                    h->cursor + 1, err);
            h->retry_at = mono_ms() + TICK_MS;
            return;
        }
        if (sig == NULL) {
            log_unreadable("webhook", id);
        } else {
            long status;
            int ok = webhook_post(h, sig, &status, why, sizeof why);
            signal_free(sig);
            if (!ok) {
                uint64_t delay = backoff_ms(s, ++h->attempt, h->max_backoff_ms);
                h->retry_at = mono_ms() + (int64_t)delay;
                wl_count_sink_failure(WL_SINK_WEBHOOK);
                wl_warn("sink_failed", "sink=webhook host=%s id=%" PRIu64 " attempt=%u"
                        " status=%ld error=\"%s\" retry_in_ms=%" PRIu64,
                        h->host, id, h->attempt, status, why, delay);
                return;
            }
            if (h->attempt > 0)
                wl_info("sink_resumed", "sink=webhook host=%s id=%" PRIu64 " attempts=%u",
                        h->host, id, h->attempt + 1);
            wl_count_sink_delivered(WL_SINK_WEBHOOK, 1);
            wl_debug("signal_delivered", "sink=webhook id=%" PRIu64, id);
        }
        h->cursor = id;
        h->attempt = 0;
        h->retry_at = 0;
        if (cursor_save(s, WEBHOOK_CURSOR_KEY, id, err, sizeof err) != 0)
            wl_error("sink_cursor_not_saved", "sink=webhook id=%" PRIu64 " error=\"%s\"", id,
                     err);
    }
    *more = 1;
}

/* ---- the thread ---- */

static void *sinks_main(void *arg)
{
    struct wl_sinks *s = arg;

    pthread_setname_np(pthread_self(), "wl-sinks"); /* for top -H, perf, gdb */
    for (;;) {
        pthread_mutex_lock(&s->mu);
        uint64_t seen = s->notified;
        int stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;

        int more = 0;
        file_turn(s, &more);
        webhook_turn(s, &more);
        if (more)
            continue;

        /* Wait for a nudge, the next retry time, or the tick. */
        int64_t now = mono_ms(), wake = now + TICK_MS;
        if (s->file.on && s->file.retry_at > now && s->file.retry_at < wake)
            wake = s->file.retry_at;
        if (s->hook.on && s->hook.retry_at > now && s->hook.retry_at < wake)
            wake = s->hook.retry_at;
        struct timespec until = {.tv_sec = wake / 1000, .tv_nsec = (wake % 1000) * 1000000};
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && s->notified == seen)
            if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT)
                break;
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

static void sinks_free(struct wl_sinks *s)
{
    if (s->file.fd >= 0)
        close(s->file.fd);
    if (s->hook.curl != NULL)
        curl_easy_cleanup(s->hook.curl);
    if (s->curl_inited)
        curl_global_cleanup();
    wl_batch_free(s->batch);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

int wl_sinks_start(const struct wl_config *cfg, struct wl_store *store, struct wl_sinks **out,
                   char *err, size_t errlen)
{
    pthread_condattr_t ca;
    struct timespec ts;
    int rc;

    *out = NULL;
    if (cfg->signal_file[0] == '\0' && cfg->webhook_url[0] == '\0')
        return 0;
    struct wl_sinks *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->store = store;
    s->file.fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    clock_gettime(CLOCK_REALTIME, &ts);
    s->rng = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid() ^
             (uint64_t)(uintptr_t)s;
    if (s->rng == 0)
        s->rng = 1;
    if ((s->batch = wl_batch_new(store)) == NULL) {
        rc = -ENOMEM;
        snprintf(err, errlen, "sinks: %s", strerror(ENOMEM));
        goto fail;
    }
    if (cfg->signal_file[0] != '\0' && (rc = file_open(s, cfg->signal_file, err, errlen)) != 0)
        goto fail;
    if (cfg->webhook_url[0] != '\0') {
        /* Not thread-safe: here, before the thread, and once per start. */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            rc = -EIO;
            snprintf(err, errlen, "webhook: curl_global_init failed");
            goto fail;
        }
        s->curl_inited = 1;
        if ((rc = webhook_open(s, cfg, err, errlen)) != 0)
            goto fail;
    }
    if ((rc = pthread_create(&s->thread, NULL, sinks_main, s)) != 0) {
        snprintf(err, errlen, "cannot start the sinks thread: %s", strerror(rc));
        rc = -rc;
        goto fail;
    }
    wl_info("sinks_started", "file=%s file_cursor=%" PRIu64 " webhook=%s webhook_format=%s"
            " webhook_cursor=%" PRIu64,
            s->file.on ? s->file.path : "off", s->file.cursor,
            s->hook.on ? s->hook.host : "off",
            s->hook.format == WL_WEBHOOK_SLACK ? "slack" : "json", s->hook.cursor);
    *out = s;
    return 0;

fail:
    sinks_free(s);
    return rc;
}

void wl_sinks_notify(struct wl_sinks *s, uint64_t last_id)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    if (last_id > s->notified) {
        s->notified = last_id;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

void wl_sinks_stop(struct wl_sinks *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    s->stop_at = mono_ms();
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    wl_info("sinks_stopped", "file_cursor=%" PRIu64 " webhook_cursor=%" PRIu64,
            s->file.cursor, s->hook.cursor);
    sinks_free(s);
}
