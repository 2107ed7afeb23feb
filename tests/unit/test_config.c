/* Unit tests for collector/config.h: every default, the bundled INI file,
 * units, the errors of a bad file (FILE:LINE: reason), overrides, cross-
 * option validation and HOST:PORT parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define KiB ((uint64_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define SEC ((uint64_t)1000)
#define DAY (86400 * SEC)

/* ---- helpers ---- */

/* In a table test: report one failing case and go on with the others. */
#define CASE_FAIL(...) (print_error(__VA_ARGS__), bad++)

/* Writes text to a new temporary .ini file; path receives its name. */
static void write_temp_ini(const char *text, char *path, size_t pathlen)
{
    snprintf(path, pathlen, "/tmp/wl-test-config-XXXXXX.ini");
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* Loads text (as a file) over the defaults; returns wl_config_load's result. */
static int load_text(const char *text, struct wl_config *cfg, char *path, size_t pathlen,
                     char *err, size_t errlen)
{
    wl_config_defaults(cfg);
    write_temp_ini(text, path, pathlen);
    err[0] = '\0';
    int rc = wl_config_load(cfg, path, err, errlen);
    unlink(path);
    return rc;
}

static void bundled_ini_path(char *out, size_t len)
{
    char here[1024];
    snprintf(here, sizeof here, "%s", __FILE__);
    snprintf(out, len, "%s/../../collector/warmline.ini", dirname(here));
}

/* Field by field, so that a failure names the field. */
static void assert_config_equal(const struct wl_config *a, const struct wl_config *b)
{
    assert_string_equal(a->data_dir, b->data_dir);
    assert_string_equal(a->udp_listen, b->udp_listen);
    assert_string_equal(a->tcp_listen, b->tcp_listen);
    assert_string_equal(a->org_salt_file, b->org_salt_file);
    assert_int_equal(a->durability, b->durability);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->stats_interval_ms, b->stats_interval_ms);
    assert_int_equal(a->max_frame_bytes, b->max_frame_bytes);
    assert_int_equal(a->max_inflated_bytes, b->max_inflated_bytes);
    assert_int_equal(a->max_pings_per_batch, b->max_pings_per_batch);
    assert_int_equal(a->max_connections, b->max_connections);
    assert_int_equal(a->idle_timeout_ms, b->idle_timeout_ms);
    assert_int_equal(a->max_count, b->max_count);
    assert_int_equal(a->max_inflight_frames, b->max_inflight_frames);
    assert_int_equal(a->udp_recv_buffer, b->udp_recv_buffer);
    assert_int_equal(a->writer_queue_pings, b->writer_queue_pings);
    assert_int_equal(a->max_group_pings, b->max_group_pings);
    assert_int_equal(a->checkpoint_interval_ms, b->checkpoint_interval_ms);
    assert_int_equal(a->checkpoint_pings, b->checkpoint_pings);
    assert_int_equal(a->frame_timeout_ms, b->frame_timeout_ms);
    assert_int_equal(a->rate_per_address, b->rate_per_address);
    assert_int_equal(a->burst_per_address, b->burst_per_address);
    assert_int_equal(a->max_connections_per_address, b->max_connections_per_address);
    assert_int_equal(a->address_table_size, b->address_table_size);
    assert_int_equal(a->limit_loopback, b->limit_loopback);
    assert_int_equal(a->api_max_connections, b->api_max_connections);
    assert_int_equal(a->api_max_connections_per_address, b->api_max_connections_per_address);
    assert_int_equal(a->api_timeout_ms, b->api_timeout_ms);
    assert_int_equal(a->quarantine_max_records, b->quarantine_max_records);
    assert_int_equal(a->quarantine_sample_bytes, b->quarantine_sample_bytes);
    assert_int_equal(a->quarantine_per_second, b->quarantine_per_second);
}

/* ---- defaults ---- */

static void test_defaults_every_field(void **state)
{
    (void)state;
    struct wl_config cfg;
    memset(&cfg, 0xa5, sizeof cfg); /* defaults must not depend on what was there */
    wl_config_defaults(&cfg);

    /* [collector] */
    assert_string_equal(cfg.data_dir, "./var/data");
    assert_string_equal(cfg.udp_listen, "0.0.0.0:7810");
    assert_string_equal(cfg.tcp_listen, "0.0.0.0:7810");
    assert_string_equal(cfg.org_salt_file, "./var/org_salt");
    assert_int_equal(cfg.durability, WL_DURABILITY_SYNC);
    assert_int_equal(cfg.log_level, WL_LOG_INFO);
    assert_int_equal(cfg.stats_interval_ms, 60 * SEC);

    /* [limits] */
    assert_int_equal(cfg.max_frame_bytes, 1 * MiB);
    assert_int_equal(cfg.max_inflated_bytes, 8 * MiB);
    assert_int_equal(cfg.max_pings_per_batch, 10000);
    assert_int_equal(cfg.max_connections, 1024);
    assert_int_equal(cfg.idle_timeout_ms, 60 * SEC);
    assert_int_equal(cfg.max_count, 10000000);
    assert_int_equal(cfg.max_inflight_frames, 256);
    assert_int_equal(cfg.udp_recv_buffer, 16 * MiB);
    assert_int_equal(cfg.writer_queue_pings, 200000);
    assert_int_equal(cfg.max_held_bytes, 256 * MiB);
    assert_int_equal(cfg.max_group_pings, 50000);
    assert_int_equal(cfg.checkpoint_interval_ms, 30 * SEC);
    assert_int_equal(cfg.checkpoint_pings, 1000000);
    assert_int_equal(cfg.frame_timeout_ms, 30 * SEC);
    assert_int_equal(cfg.rate_per_address, 1000);
    assert_int_equal(cfg.burst_per_address, 10000);
    assert_int_equal(cfg.max_connections_per_address, 64);
    assert_int_equal(cfg.address_table_size, 65536);
    assert_int_equal(cfg.limit_loopback, 0);

    /* [api] */
    assert_int_equal(cfg.api_max_connections, 64);
    assert_int_equal(cfg.api_max_connections_per_address, 16);
    assert_int_equal(cfg.api_timeout_ms, 30 * SEC);

    /* [quarantine] */
    assert_int_equal(cfg.quarantine_max_records, 10000);
    assert_int_equal(cfg.quarantine_sample_bytes, 4 * KiB);
    assert_int_equal(cfg.quarantine_per_second, 100);

    /* [accounts] */
    assert_int_equal(cfg.install_ttl_ms, 14 * DAY);
    assert_int_equal(cfg.score_half_life_ms, 14 * DAY);
    assert_int_equal(cfg.max_org_features, 256);

    /* The default port constant agrees with the default listeners. */
    assert_int_equal(WL_DEFAULT_PORT, 7810);
    /* Strings are terminated within their buffers, nothing of 0xa5 left. */
    assert_int_equal(cfg.data_dir[strlen("./var/data") + 1], 0);
}

static void test_defaults_validate(void **state)
{
    (void)state;
    struct wl_config cfg;
    char err[512] = "";
    wl_config_defaults(&cfg);
    assert_int_equal(wl_config_validate(&cfg, err, sizeof err), 0);
}

/* ---- the bundled file ---- */

static void test_bundled_ini_equals_defaults(void **state)
{
    (void)state;
    struct wl_config loaded, defaults;
    char path[1200], err[512] = "";

    bundled_ini_path(path, sizeof path);
    /* Start from zeros: an option missing from the file would stay 0. */
    memset(&loaded, 0, sizeof loaded);
    int rc = wl_config_load(&loaded, path, err, sizeof err);
    if (rc != 0)
        fail_msg("loading %s: %s", path, err);
    wl_config_defaults(&defaults);
    assert_config_equal(&loaded, &defaults);
    wl_config_free(&loaded);
}

/* --print-config output is itself a valid file that loads back to the same. */
static void test_print_config_roundtrip(void **state)
{
    (void)state;
    struct wl_config cfg, back;
    char path[64], err[512] = "";
    char *text = NULL;
    size_t textlen = 0;

    wl_config_defaults(&cfg);
    assert_int_equal(wl_config_set(&cfg, "stats_interval_ms", "1500ms", err, sizeof err), 0);
    assert_int_equal(wl_config_set(&cfg, "idle_timeout_ms", "14m", err, sizeof err), 0);
    assert_int_equal(wl_config_set(&cfg, "durability", "async", err, sizeof err), 0);
    assert_int_equal(wl_config_set(&cfg, "log_level", "error", err, sizeof err), 0);
    assert_int_equal(wl_config_set(&cfg, "udp_listen", "", err, sizeof err), 0);
    assert_int_equal(wl_config_set(&cfg, "quarantine_sample_bytes", "17", err, sizeof err), 0);
    assert_int_equal(wl_config_set(&cfg, "limit_loopback", "on", err, sizeof err), 0);
    assert_int_equal(wl_config_set(&cfg, "rate_per_address", "0", err, sizeof err), 0);
    assert_int_equal(wl_config_set(&cfg, "frame_timeout_ms", "2500ms", err, sizeof err), 0);

    FILE *f = open_memstream(&text, &textlen);
    assert_non_null(f);
    wl_config_print(&cfg, f);
    assert_int_equal(fclose(f), 0);

    memset(&back, 0, sizeof back);
    write_temp_ini(text, path, sizeof path);
    int rc = wl_config_load(&back, path, err, sizeof err);
    unlink(path);
    if (rc != 0)
        fail_msg("printed config does not load: %s\n%s", err, text);
    free(text);
    assert_config_equal(&back, &cfg);
}

static void test_print_help_lists_every_option(void **state)
{
    (void)state;
    static const char *const names[] = {
        "data_dir", "udp_listen", "tcp_listen", "org_salt_file", "durability", "log_level",
        "stats_interval_ms", "max_frame_bytes", "max_inflated_bytes", "max_pings_per_batch",
        "max_connections", "idle_timeout_ms", "max_count", "max_inflight_frames",
        "udp_recv_buffer", "writer_queue_pings", "max_group_pings", "checkpoint_interval_ms",
        "checkpoint_pings", "quarantine_max_records",
        "quarantine_sample_bytes", "quarantine_per_second", "frame_timeout_ms",
        "rate_per_address", "burst_per_address", "max_connections_per_address",
        "address_table_size", "limit_loopback", "api_max_connections_per_address",
        "[collector]", "[limits]", "[quarantine]",
    };
    char *text = NULL;
    size_t textlen = 0;
    FILE *f = open_memstream(&text, &textlen);
    assert_non_null(f);
    wl_config_print_help(f);
    assert_int_equal(fclose(f), 0);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strstr(text, names[i]) == NULL)
            fail_msg("--help does not mention %s", names[i]);
    }
    free(text);
}

/* ---- values with units: must_parse ---- */

struct must_parse {
    const char *text;
    size_t offset; /* of a uint64_t field */
    uint64_t want;
};

#define FIELD(f) offsetof(struct wl_config, f)

static const struct must_parse must_parse[] = {
    {"[limits]\nmax_frame_bytes = 64KiB\n", FIELD(max_frame_bytes), 64 * KiB},
    {"[limits]\nmax_frame_bytes = 64K\n", FIELD(max_frame_bytes), 64 * KiB},
    {"[limits]\nmax_frame_bytes = 64 KiB\n", FIELD(max_frame_bytes), 64 * KiB},
    {"[limits]\nmax_frame_bytes = 4096\n", FIELD(max_frame_bytes), 4096},
    {"[limits]\nmax_frame_bytes = 100B\n", FIELD(max_frame_bytes), 100},
    {"[limits]\nmax_frame_bytes = 64\n", FIELD(max_frame_bytes), 64},          /* min */
    {"[limits]\nmax_frame_bytes = 64MiB\n", FIELD(max_frame_bytes), 64 * MiB}, /* max */
    {"[limits]\nmax_inflated_bytes = 8MiB\n", FIELD(max_inflated_bytes), 8 * MiB},
    {"[limits]\nmax_inflated_bytes = 2M\n", FIELD(max_inflated_bytes), 2 * MiB},
    {"[limits]\nudp_recv_buffer = 1GiB\n", FIELD(udp_recv_buffer), 1 * GiB},
    {"[limits]\nudp_recv_buffer = 1G\n", FIELD(udp_recv_buffer), 1 * GiB},
    {"[limits]\nidle_timeout_ms = 500ms\n", FIELD(idle_timeout_ms), 500},
    {"[limits]\nidle_timeout_ms = 90\n", FIELD(idle_timeout_ms), 90 * SEC}, /* bare: s */
    {"[limits]\nidle_timeout_ms = 90s\n", FIELD(idle_timeout_ms), 90 * SEC},
    {"[limits]\nidle_timeout_ms = 5m\n", FIELD(idle_timeout_ms), 5 * 60 * SEC},
    {"[limits]\nidle_timeout_ms = 12h\n", FIELD(idle_timeout_ms), 12 * 3600 * SEC},
    {"[limits]\nidle_timeout_ms = 7d\n", FIELD(idle_timeout_ms), 7 * DAY}, /* max */
    {"[limits]\nidle_timeout_ms = 0\n", FIELD(idle_timeout_ms), 0},
    {"[collector]\nstats_interval_ms = 14h\n", FIELD(stats_interval_ms), 14 * 3600 * SEC},
    {"[collector]\nstats_interval_ms = 2d\n", FIELD(stats_interval_ms), 2 * DAY},
    {"[limits]\nmax_count = 4294967295\n", FIELD(max_count), UINT32_MAX}, /* max */
    {"[limits]\nmax_count = 1\n", FIELD(max_count), 1},                   /* min */
    {"[limits]\nmax_pings_per_batch = 1000000\n", FIELD(max_pings_per_batch), 1000000},
    {"[quarantine]\nquarantine_sample_bytes = 16\n", FIELD(quarantine_sample_bytes), 16},
    {"[quarantine]\nquarantine_max_records = 0\n", FIELD(quarantine_max_records), 0},
    /* Comments, blank lines, surrounding spaces. */
    {"; a comment\n\n  [limits]  \n\n# another\n  max_count   =   77  \n", FIELD(max_count), 77},
};

static void test_load_must_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof must_parse / sizeof must_parse[0]; i++) {
        struct wl_config cfg;
        char path[64], err[512];
        const struct must_parse *c = &must_parse[i];
        if (load_text(c->text, &cfg, path, sizeof path, err, sizeof err) != 0)
            fail_msg("case %zu must parse: %s\n%s", i, err, c->text);
        uint64_t got = *(const uint64_t *)((const char *)&cfg + c->offset);
        if (got != c->want)
            fail_msg("case %zu: got %llu, want %llu\n%s", i, (unsigned long long)got,
                     (unsigned long long)c->want, c->text);
    }
}

static void test_load_strings_and_enums(void **state)
{
    (void)state;
    struct wl_config cfg, defaults;
    char path[64], err[512];
    int rc = load_text("[collector]\n"
                       "data_dir = /srv/warmline/data\n"
                       "udp_listen =\n"
                       "tcp_listen = [::1]:0\n"
                       "org_salt_file = /etc/warmline/salt\n"
                       "durability = ASYNC\n"
                       "log_level = debug\n",
                       &cfg, path, sizeof path, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    assert_string_equal(cfg.data_dir, "/srv/warmline/data");
    assert_string_equal(cfg.udp_listen, "");
    assert_string_equal(cfg.tcp_listen, "[::1]:0");
    assert_string_equal(cfg.org_salt_file, "/etc/warmline/salt");
    assert_int_equal(cfg.durability, WL_DURABILITY_ASYNC);
    assert_int_equal(cfg.log_level, WL_LOG_DEBUG);
    /* Options the file does not mention keep their defaults. */
    wl_config_defaults(&defaults);
    assert_int_equal(cfg.max_frame_bytes, defaults.max_frame_bytes);
    assert_int_equal(cfg.max_count, defaults.max_count);
    assert_int_equal(cfg.quarantine_per_second, defaults.quarantine_per_second);
}

/* A long value is either loaded whole or refused with its own line; never
 * cut silently. (inih reads lines of at most INI_MAX_LINE bytes.) */
static void test_load_long_string_whole_or_error(void **state)
{
    (void)state;
    static const struct {
        size_t len;       /* bytes of path before the tail */
        const char *tail; /* the rest of the value */
    } cases[] = {
        {399, ""},          /* a long path */
        {188, "#archive"},  /* the part past byte 199 looks like a comment */
        {188, " 2"},        /* the part past byte 199 looks like a continuation */
        {188, ";x"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct wl_config cfg;
        char path[64], err[512], dir[600], text[700];
        memset(dir, 'd', cases[i].len);
        dir[0] = '/';
        snprintf(dir + cases[i].len, sizeof dir - cases[i].len, "%s", cases[i].tail);
        snprintf(text, sizeof text, "[collector]\ndata_dir = %s\n", dir);
        int rc = load_text(text, &cfg, path, sizeof path, err, sizeof err);
        if (rc == 0 && strcmp(cfg.data_dir, dir) != 0)
            CASE_FAIL("case %zu: a %zu-byte data_dir loaded as %zu bytes: '%s'\n", i,
                      strlen(dir), strlen(cfg.data_dir), cfg.data_dir);
        if (rc != 0 && strstr(err, ":2: ") == NULL)
            CASE_FAIL("case %zu: a %zu-byte data_dir on line 2 is refused as: %s\n", i,
                      strlen(dir), err);
    }
    if (bad)
        fail_msg("%d of %zu long values mishandled", bad, sizeof cases / sizeof cases[0]);
}

/* ---- bad files: must_not_parse ---- */

struct must_not_parse {
    const char *text;
    int line;           /* expected in "FILE:LINE:" */
    const char *reason; /* a substring of the message after it */
};

static const struct must_not_parse must_not_parse[] = {
    /* unknown option */
    {"[limits]\nmax_frames = 1\n", 2, "unknown option 'max_frames'"},
    {"[collector]\n; comment\n\ndata_dir = x\nfrobnicate = yes\n", 5,
     "unknown option 'frobnicate' in section [collector]"},
    /* unknown section */
    {"[limit]\nmax_count = 5\n", 2, "belongs in section [limits]"},
    {"[nosuch]\nnosuch = 5\n", 2, "unknown option 'nosuch' in section [nosuch]"},
    /* an option in the wrong section */
    {"[collector]\nmax_count = 5\n", 2, "belongs in section [limits], not [collector]"},
    {"[limits]\n\n\ndata_dir = ./x\n", 4, "belongs in section [collector], not [limits]"},
    {"[quarantine]\nmax_frame_bytes = 1MiB\n", 2, "belongs in section [limits]"},
    /* an option outside any section */
    {"data_dir = ./x\n[collector]\n", 1, "section [collector]"},
    {"; leading comment\nmystery = 1\n", 2, "outside any section"},
    /* out-of-range numbers */
    {"[limits]\nmax_pings_per_batch = 0\n", 2, "out of range"},
    {"[limits]\nmax_pings_per_batch = 1000001\n", 2, "out of range"},
    {"[limits]\nmax_frame_bytes = 63\n", 2, "out of range"},
    {"[limits]\nmax_frame_bytes = 65MiB\n", 2, "out of range"},
    {"[limits]\nmax_count = 4294967296\n", 2, "out of range"},
    {"[limits]\nmax_count = 0\n", 2, "out of range"},
    {"[limits]\nidle_timeout_ms = 8d\n", 2, "out of range"},
    {"[limits]\nidle_timeout_ms = 14d\n", 2, "out of range"},
    {"[collector]\nstats_interval_ms = 14d\n", 2, "out of range"},
    {"[limits]\nudp_recv_buffer = 2GiB\n", 2, "out of range"},
    {"[limits]\nudp_recv_buffer = 1KiB\n", 2, "out of range"},
    {"[limits]\nmax_frame_bytes = 99999999999999999999\n", 2, "max_frame_bytes"},
    {"[limits]\nmax_frame_bytes = 17179869184GiB\n", 2, "max_frame_bytes"}, /* 2^64 bytes */
    /* negative numbers */
    {"[limits]\nmax_count = -1\n", 2, "max_count: '-1' is not a whole number"},
    {"[limits]\nmax_frame_bytes = -64KiB\n", 2, "is not a size"},
    {"[limits]\nidle_timeout_ms = -5s\n", 2, "is not a duration"},
    /* not numbers, wrong units */
    {"[limits]\nmax_count = ten\n", 2, "is not a whole number"},
    {"[limits]\nmax_count = 10k\n", 2, "is not a whole number"},
    {"[limits]\nmax_count = 1.5\n", 2, "is not a whole number"},
    {"[limits]\nmax_count =\n", 2, "max_count"},
    {"[limits]\nmax_frame_bytes = 8MB\n", 2, "is not a size"},
    {"[limits]\nmax_frame_bytes = 1s\n", 2, "is not a size"},
    {"[limits]\nidle_timeout_ms = 5KiB\n", 2, "is not a duration"},
    {"[limits]\nidle_timeout_ms = 5 minutes\n", 2, "is not a duration"},
    /* enum typos */
    {"[collector]\ndurability = synk\n", 2, "'synk' is not one of sync | async"},
    {"[collector]\nlog_level = verbose\n", 2, "'verbose' is not one of debug | info | warn | error"},
    {"[collector]\ndurability =\n", 2, "durability"},
    /* syntax errors */
    {"[collector]\ndata_dir ./var\n", 2, "syntax error"},
    {"[collector]\ndata_dir = ./var\n[limits\nmax_count = 5\n", 3, "syntax error"},
    {"[limits]\nmax_count = 5\njust words\n", 3, "syntax error"},
    {"[limits]\nbroken line\nmax_count = -1\n", 2, "syntax error"},
    /* the first error is the one reported */
    {"[limits]\nmax_count = 5\nbogus = 1\nmax_count = -1\n", 3, "unknown option 'bogus'"},
    {"[limits]\nmax_count = x\nbroken line\n", 2, "max_count"},
};

static void test_load_must_not_parse(void **state)
{
    (void)state;
    size_t n = sizeof must_not_parse / sizeof must_not_parse[0];
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const struct must_not_parse *c = &must_not_parse[i];
        struct wl_config cfg;
        char path[64], err[512], prefix[128];
        int rc = load_text(c->text, &cfg, path, sizeof path, err, sizeof err);
        snprintf(prefix, sizeof prefix, "%s:%d: ", path, c->line);
        if (rc != -1)
            CASE_FAIL("case %zu must not parse (rc %d):\n%s", i, rc, c->text);
        else if (strncmp(err, prefix, strlen(prefix)) != 0)
            CASE_FAIL("case %zu: error \"%s\" does not start with \"%s\"\n%s", i, err,
                      prefix, c->text);
        else if (strstr(err + strlen(prefix), c->reason) == NULL)
            CASE_FAIL("case %zu: error \"%s\" does not say \"%s\"\n%s", i, err, c->reason,
                      c->text);
    }
    if (bad)
        fail_msg("%d of %zu bad files misreported", bad, n);
}

static void test_load_missing_file(void **state)
{
    (void)state;
    struct wl_config cfg;
    char err[512] = "";
    wl_config_defaults(&cfg);
    assert_int_equal(wl_config_load(&cfg, "/nonexistent/warmline.ini", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/warmline.ini"));
    assert_non_null(strstr(err, "No such file"));
}

/* ---- wl_config_set ---- */

static void test_set_overrides(void **state)
{
    (void)state;
    struct wl_config cfg;
    char err[512] = "";
    wl_config_defaults(&cfg);

    assert_int_equal(wl_config_set(&cfg, "data_dir", "/tmp/x", err, sizeof err), 0);
    assert_string_equal(cfg.data_dir, "/tmp/x");
    assert_int_equal(wl_config_set(&cfg, "collector.data_dir", "/tmp/y", err, sizeof err), 0);
    assert_string_equal(cfg.data_dir, "/tmp/y");
    assert_int_equal(wl_config_set(&cfg, "limits.max_count", "5", err, sizeof err), 0);
    assert_int_equal(cfg.max_count, 5);
    assert_int_equal(wl_config_set(&cfg, "max_count", "6", err, sizeof err), 0);
    assert_int_equal(cfg.max_count, 6);
    assert_int_equal(wl_config_set(&cfg, "limits.max_frame_bytes", "2MiB", err, sizeof err), 0);
    assert_int_equal(cfg.max_frame_bytes, 2 * MiB);
    assert_int_equal(wl_config_set(&cfg, "limits.idle_timeout_ms", "250ms", err, sizeof err), 0);
    assert_int_equal(cfg.idle_timeout_ms, 250);
    assert_int_equal(wl_config_set(&cfg, "durability", "async", err, sizeof err), 0);
    assert_int_equal(cfg.durability, WL_DURABILITY_ASYNC);
    assert_int_equal(wl_config_set(&cfg, "udp_listen", "", err, sizeof err), 0);
    assert_string_equal(cfg.udp_listen, "");
}

struct bad_set {
    const char *name, *value, *reason;
};

static const struct bad_set bad_sets[] = {
    {"nosuch", "1", "unknown option 'nosuch'"},
    {"collector.max_count", "5", "unknown option 'collector.max_count'"},
    {"limits.", "5", "unknown option"},
    {".max_count", "5", "unknown option"},
    {"limits.max_count", "0", "out of range"},
    {"limits.max_count", "-3", "is not a whole number"},
    {"limits.max_count", " -3", "max_count"}, /* strtoull would wrap it */
    {"limits.max_count", "lots", "is not a whole number"},
    {"durability", "fast", "is not one of sync | async"},
    {"max_frame_bytes", "1TiB", "is not a size"},
};

static void test_set_rejects(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_sets / sizeof bad_sets[0]; i++) {
        struct wl_config cfg, before;
        char err[512] = "";
        wl_config_defaults(&cfg);
        before = cfg;
        if (wl_config_set(&cfg, bad_sets[i].name, bad_sets[i].value, err, sizeof err) != -1)
            fail_msg("set %s=%s must fail", bad_sets[i].name, bad_sets[i].value);
        if (strstr(err, bad_sets[i].reason) == NULL)
            fail_msg("set %s=%s: error \"%s\" does not say \"%s\"", bad_sets[i].name,
                     bad_sets[i].value, err, bad_sets[i].reason);
        /* A refused value leaves the option as it was. */
        assert_memory_equal(&cfg, &before, sizeof cfg);
    }
}

static void test_set_string_too_long(void **state)
{
    (void)state;
    struct wl_config cfg;
    char err[512] = "";
    char value[sizeof cfg.data_dir + 1];

    wl_config_defaults(&cfg);
    memset(value, 'a', sizeof value - 1);
    value[sizeof value - 1] = '\0'; /* 1024 bytes: one too many */
    assert_int_equal(wl_config_set(&cfg, "data_dir", value, err, sizeof err), -1);
    assert_non_null(strstr(err, "longer than 1023 bytes"));
    assert_string_equal(cfg.data_dir, "./var/data");

    value[sizeof value - 2] = '\0'; /* 1023 bytes: fits */
    assert_int_equal(wl_config_set(&cfg, "data_dir", value, err, sizeof err), 0);
    assert_int_equal(strlen(cfg.data_dir), 1023);
}

/* ---- wl_config_validate ---- */

static void expect_invalid(const struct wl_config *cfg, const char *reason)
{
    char err[512] = "";
    assert_int_equal(wl_config_validate(cfg, err, sizeof err), -1);
    if (strstr(err, reason) == NULL)
        fail_msg("validate error \"%s\" does not say \"%s\"", err, reason);
}

static void test_validate(void **state)
{
    (void)state;
    struct wl_config cfg;
    char err[512] = "";

    wl_config_defaults(&cfg);
    cfg.udp_listen[0] = '\0';
    cfg.tcp_listen[0] = '\0';
    expect_invalid(&cfg, "both empty");

    /* One listener is enough. */
    wl_config_defaults(&cfg);
    cfg.udp_listen[0] = '\0';
    assert_int_equal(wl_config_validate(&cfg, err, sizeof err), 0);
    wl_config_defaults(&cfg);
    cfg.tcp_listen[0] = '\0';
    assert_int_equal(wl_config_validate(&cfg, err, sizeof err), 0);

    wl_config_defaults(&cfg);
    strcpy(cfg.udp_listen, "localhost");
    expect_invalid(&cfg, "udp_listen: 'localhost' is not a numeric HOST:PORT");
    wl_config_defaults(&cfg);
    strcpy(cfg.tcp_listen, "0.0.0.0:70000");
    expect_invalid(&cfg, "tcp_listen: '0.0.0.0:70000' is not a numeric HOST:PORT");

    wl_config_defaults(&cfg);
    cfg.max_frame_bytes = 2 * MiB;
    cfg.max_inflated_bytes = 2 * MiB - 1;
    expect_invalid(&cfg, "max_inflated_bytes");
    cfg.max_inflated_bytes = 2 * MiB; /* equal is fine */
    assert_int_equal(wl_config_validate(&cfg, err, sizeof err), 0);

    wl_config_defaults(&cfg);
    cfg.data_dir[0] = '\0';
    expect_invalid(&cfg, "data_dir");
}

/* ---- wl_parse_hostport ---- */

struct hostport_ok {
    const char *in, *host;
    int port;
};

static const struct hostport_ok hostport_ok[] = {
    {"127.0.0.1:0", "127.0.0.1", 0},
    {"0.0.0.0:7810", "0.0.0.0", 7810},
    {"[::1]:7810", "::1", 7810},
    {"[::]:0", "::", 0},
    {"localhost:65535", "localhost", 65535},
    {"h:1", "h", 1},
};

static const char *const hostport_bad[] = {
    "nohost", ":80", "h:99999", "h:", "[::1]80", "[::1]", "[::1:80", "[]:80", "h:65536",
    "h:-1", "h:80x", "h:0x50", "", ":", "[::1]:",
};

static void test_parse_hostport_must_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hostport_ok / sizeof hostport_ok[0]; i++) {
        char host[256] = "unset";
        int port = -7;
        int rc = wl_parse_hostport(hostport_ok[i].in, host, sizeof host, &port);
        if (rc != 0)
            fail_msg("'%s' must parse, rc %d", hostport_ok[i].in, rc);
        if (strcmp(host, hostport_ok[i].host) != 0 || port != hostport_ok[i].port)
            fail_msg("'%s': got host '%s' port %d, want '%s' %d", hostport_ok[i].in, host,
                     port, hostport_ok[i].host, hostport_ok[i].port);
    }
}

static void test_parse_hostport_must_not_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hostport_bad / sizeof hostport_bad[0]; i++) {
        char host[256] = "unset";
        int port = -7;
        int rc = wl_parse_hostport(hostport_bad[i], host, sizeof host, &port);
        if (rc != -EINVAL)
            fail_msg("'%s' must not parse, rc %d host '%s' port %d", hostport_bad[i], rc, host,
                     port);
        /* Nothing is written on failure. */
        assert_string_equal(host, "unset");
        assert_int_equal(port, -7);
    }
}

static void test_parse_hostport_host_buffer(void **state)
{
    (void)state;
    char host[5];
    int port = 0;
    /* "abcd" fits with its terminator in 5 bytes; "abcde" does not. */
    assert_int_equal(wl_parse_hostport("abcd:1", host, sizeof host, &port), 0);
    assert_string_equal(host, "abcd");
    assert_int_equal(wl_parse_hostport("abcde:1", host, sizeof host, &port), -EINVAL);
    assert_int_equal(wl_parse_hostport("[abcde]:1", host, sizeof host, &port), -EINVAL);
}


/* ---- [rule "name"] sections ---- */

static void test_rule_sections_load(void **state)
{
    (void)state;
    struct wl_config cfg;
    char path[64], err[512];
    const char *text = "[collector]\n"
                       "data_dir = /tmp/x\n"
                       "[rule \"a\"]\n"
                       "when = teams >= 5\n"
                       "weight = 2\n"
                       "cooldown = 12h\n"
                       "hysteresis = 5%\n"
                       "\n"
                       "[rule \"b.2\"]\n"
                       "when = installs >= 2 and\n"
                       "  teams >= 1\n"
                       "description = two installs\n"
                       "[limits]\n"
                       "max_count = 7\n";
    assert_int_equal(load_text(text, &cfg, path, sizeof path, err, sizeof err), 0);
    assert_int_equal(cfg.rules.n, 2);
    assert_string_equal(cfg.rules.rules[0].name, "a");
    assert_true(cfg.rules.rules[0].weight == 2.0);
    assert_int_equal(cfg.rules.rules[0].cooldown_ms, 12ULL * 3600 * 1000);
    assert_true(cfg.rules.rules[0].hysteresis > 0.0499 && cfg.rules.rules[0].hysteresis < 0.0501);
    assert_string_equal(cfg.rules.rules[0].description, "teams >= 5"); /* defaults to when */
    assert_string_equal(cfg.rules.rules[1].name, "b.2");
    /* An indented continuation line continues the condition. */
    assert_string_equal(cfg.rules.rules[1].when_text, "installs >= 2 and teams >= 1");
    assert_string_equal(cfg.rules.rules[1].description, "two installs");
    assert_true(cfg.rules.rules[1].weight == 1.0);
    assert_int_equal(cfg.rules.rules[1].cooldown_ms, 7ULL * 86400 * 1000);
    /* Options after a rule section still load. */
    assert_int_equal(cfg.max_count, 7);
    wl_config_free(&cfg);
    assert_int_equal(cfg.rules.n, 0);
}

static void test_bundled_rules(void **state)
{
    (void)state;
    struct wl_config cfg;
    char err[512], path[1024];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    assert_non_null(slash);
    snprintf(slash, sizeof path - (size_t)(slash - path), "/../../collector/warmline.ini");
    wl_config_defaults(&cfg);
    assert_int_equal(wl_config_load(&cfg, path, err, sizeof err), 0);
    assert_int_equal(cfg.rules.n, 15);
    assert_string_equal(cfg.rules.rules[0].name, "mau_over_25");
    /* growth_30d of monthly actives (wire, Rudder) and of daily actives (the
     * security check) are the growth terms shipped. */
    assert_int_equal(cfg.rules.growth_metrics, (1u << WL_COUNT_active_users_monthly) |
                                                   (1u << WL_COUNT_active_users_daily));
    assert_int_equal(cfg.rules.max_growth_days, 30);

    /* --print-config prints the rules so that they load back the same. */
    struct wl_config back;
    char *text = NULL;
    size_t textlen = 0;
    char tmp[64];
    FILE *f = open_memstream(&text, &textlen);
    assert_non_null(f);
    wl_config_print(&cfg, f);
    assert_int_equal(fclose(f), 0);
    wl_config_defaults(&back);
    write_temp_ini(text, tmp, sizeof tmp);
    int rc = wl_config_load(&back, tmp, err, sizeof err);
    unlink(tmp);
    if (rc != 0)
        fail_msg("printed rules do not load: %s\n%s", err, text);
    free(text);
    assert_int_equal(back.rules.n, cfg.rules.n);
    for (size_t i = 0; i < cfg.rules.n; i++) {
        const struct wl_rule *a = &cfg.rules.rules[i], *b = &back.rules.rules[i];
        assert_string_equal(a->name, b->name);
        assert_string_equal(a->when_text, b->when_text);
        assert_string_equal(a->description, b->description);
        assert_true(a->weight == b->weight);
        assert_int_equal(a->cooldown_ms, b->cooldown_ms);
        assert_true(a->hysteresis == b->hysteresis);
    }
    wl_config_free(&back);
    wl_config_free(&cfg);
}

static const struct must_not_parse rule_must_not_parse[] = {
    {"[rule \"a\"]\nweight = 2\nwhen = teams >=\n", 3, "when: column"},
    {"[rule \"a\"]\nwhen = teams >= 5\nweight = abc\n", 3, "weight: 'abc'"},
    {"[rule \"a\"]\nwhen = teams >= 5\ncooldown = soon\n", 3, "cooldown: 'soon'"},
    {"[rule \"a\"]\nwhen = teams >= 5\nhysteresis = 150%\n", 3, "hysteresis"},
    {"[rule \"a\"]\nwhen = teams >= 5\ncolor = red\n", 3, "unknown key 'color'"},
    {"[rule a]\nwhen = teams >= 5\n", 2, "[rule \"name\"]"},
    {"[rule \"a\"]\nweight = 2\n", 2, "when: missing"},
    {"[rule \"a\"]\nwhen = teams >= 5\nweight = 1\nweight = 2\n", 4, "weight given twice"},
    {"[rule \"a\"]\nwhen = teams >= 5\n[rule \"a\"]\nwhen = teams >= 6\n", 4,
     "defined twice"},
    {"[rule \"a b\"]\nwhen = teams >= 5\n", 2, "name"},
    {"[rule \"a\"]\nwhen = teams >= 5\nwhen = teams >= 6\n", 3, "when given twice"},
    {"[rule \"a\"]\nwhen = users >= 5\n[limits]\nmax_count = 5\n", 2, "unknown metric"},
};

static void test_rule_sections_must_not_parse(void **state)
{
    (void)state;
    size_t n = sizeof rule_must_not_parse / sizeof rule_must_not_parse[0];
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const struct must_not_parse *c = &rule_must_not_parse[i];
        struct wl_config cfg;
        char path[64], err[512], prefix[128];
        int rc = load_text(c->text, &cfg, path, sizeof path, err, sizeof err);
        snprintf(prefix, sizeof prefix, "%s:%d: ", path, c->line);
        if (rc != -1)
            CASE_FAIL("rule case %zu must not parse (rc %d):\n%s", i, rc, c->text);
        else if (strncmp(err, prefix, strlen(prefix)) != 0)
            CASE_FAIL("rule case %zu: error \"%s\" does not start with \"%s\"\n%s", i, err,
                      prefix, c->text);
        else if (strstr(err + strlen(prefix), c->reason) == NULL)
            CASE_FAIL("rule case %zu: error \"%s\" does not say \"%s\"\n%s", i, err,
                      c->reason, c->text);
        wl_config_free(&cfg);
    }
    if (bad)
        fail_msg("%d of %zu bad rule files misreported", bad, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_every_field),
        cmocka_unit_test(test_defaults_validate),
        cmocka_unit_test(test_bundled_ini_equals_defaults),
        cmocka_unit_test(test_print_config_roundtrip),
        cmocka_unit_test(test_print_help_lists_every_option),
        cmocka_unit_test(test_load_must_parse),
        cmocka_unit_test(test_load_strings_and_enums),
        cmocka_unit_test(test_load_long_string_whole_or_error),
        cmocka_unit_test(test_load_must_not_parse),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_set_overrides),
        cmocka_unit_test(test_set_rejects),
        cmocka_unit_test(test_set_string_too_long),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_parse_hostport_must_parse),
        cmocka_unit_test(test_parse_hostport_must_not_parse),
        cmocka_unit_test(test_parse_hostport_host_buffer),
        cmocka_unit_test(test_rule_sections_load),
        cmocka_unit_test(test_bundled_rules),
        cmocka_unit_test(test_rule_sections_must_not_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
