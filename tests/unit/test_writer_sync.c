/* Unit tests for collector/writer_sync.h with a real store in a temporary
 * directory: tickets come back durable in order, one sync may cover several,
 * a wait returns only once the callback for its ticket has returned, and the
 * stop syncs what was written before it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "sched_slice.h"
#include "storage/store.h"
#include "tmpdir.h"
#include "writer_sync.h"

struct fx {
    char root[64];
    struct wl_store *store;
    pthread_mutex_t mu;
    uint64_t upto;       /* the last upto the callback heard */
    int calls, rc, out_of_order;
};

static void on_synced(void *arg, uint64_t upto, int rc)
{
    struct fx *f = arg;
    pthread_mutex_lock(&f->mu);
    if (upto < f->upto)
        f->out_of_order = 1;
    f->upto = upto;
    f->rc = rc;
    f->calls++;
    pthread_mutex_unlock(&f->mu);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char db[128], err[512];
    if (f == NULL)
        return -1;
    wl_log_min_level = WL_LOG_WARN;
    snprintf(f->root, sizeof f->root, "/tmp/wl-test-writer-sync-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(db, sizeof db, "%s/db", f->root);
    pthread_mutex_init(&f->mu, NULL);
    if (wl_store_open(db, WL_STORE_PRIMARY, &f->store, err, sizeof err) != 0) {
        print_error("store: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    wl_store_close(f->store);
    pthread_mutex_destroy(&f->mu);
    int rc = wl_test_rmtree(f->root);
    free(f);
    return rc;
}

/* One write with sync=0, as the writer's. */
static void write_one(struct fx *f, uint64_t n)
{
    char key[32], err[256];
    struct wl_batch *b = wl_batch_new(f->store);
    int len = snprintf(key, sizeof key, "k%llu", (unsigned long long)n);
    wl_batch_put(b, WL_CF_META, key, (size_t)len, "v", 1);
    assert_int_equal(wl_store_write(f->store, b, 0, err, sizeof err), 0);
    wl_batch_free(b);
}

static void test_tickets_durable_in_order(void **state)
{
    struct fx *f = *state;
    struct wl_syncer *s = NULL;
    char err[256];

    assert_int_equal(wl_syncer_start(f->store, on_synced, f, &s, err, sizeof err), 0);
    assert_int_equal(wl_syncer_written(s), 0);
    assert_int_equal(wl_syncer_wait(s, 0, err, sizeof err), 0); /* nothing to wait for */
    for (uint64_t i = 1; i <= 200; i++) {
        write_one(f, i);
        assert_int_equal(wl_syncer_wrote(s), i);
        if (i % 50 == 0) {
            assert_int_equal(wl_syncer_wait(s, i, err, sizeof err), 0);
            pthread_mutex_lock(&f->mu);
            assert_true(f->upto >= i); /* the callback ran before the wait returned */
            pthread_mutex_unlock(&f->mu);
        }
    }
    wl_syncer_stop(s);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->upto, 200);
    assert_int_equal(f->rc, 0);
    assert_false(f->out_of_order);
    assert_true(f->calls >= 1 && f->calls <= 200); /* one sync may cover several */
    pthread_mutex_unlock(&f->mu);
}

static void test_stop_syncs_what_was_written(void **state)
{
    struct fx *f = *state;
    struct wl_syncer *s = NULL;
    char err[256];

    assert_int_equal(wl_syncer_start(f->store, on_synced, f, &s, err, sizeof err), 0);
    for (uint64_t i = 1; i <= 3; i++) {
        write_one(f, i);
        wl_syncer_wrote(s);
    }
    wl_syncer_stop(s); /* no wait before: the stop lets them be synced */
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->upto, 3);
    pthread_mutex_unlock(&f->mu);
    wl_syncer_stop(NULL);
}

static void test_store_sync_wal(void **state)
{
    struct fx *f = *state;
    char err[256];

    write_one(f, 1);
    assert_int_equal(wl_store_sync_wal(f->store, err, sizeof err), 0);
    assert_true(wl_store_writable(f->store));
}

/* The slice the kernel keeps for the calling thread (ns), from
 * /proc/thread-self/sched (a kernel with scheduler debugging), or 0. */
static unsigned long long slice_ns(void)
{
    FILE *f = fopen("/proc/thread-self/sched", "r");
    char line[256];
    unsigned long long v = 0;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "se.slice", 8) == 0)
            sscanf(strchr(line, ':') + 1, "%llu", &v);
    fclose(f);
    return v;
}

static void *short_slice_thread(void *arg)
{
    int *out = arg;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    /* a nice value of its own is kept */
    assert_int_equal(setpriority(PRIO_PROCESS, (id_t)tid, 5), 0);
    out[0] = wl_thread_short_slice();
    out[1] = getpriority(PRIO_PROCESS, (id_t)tid);
    out[2] = (int)(slice_ns() / 1000);
    /* a thread an operator moved out of SCHED_OTHER is left there */
    struct sched_param sp = {0};
    assert_int_equal(sched_setscheduler(0, SCHED_IDLE, &sp), 0);
    out[3] = wl_thread_short_slice();
    out[4] = sched_getscheduler(0);
    return NULL;
}

/* wl_thread_short_slice: granted or not as the kernel says, it keeps the
 * thread's nice value and policy; where the kernel shows its slices, the
 * one asked for is the one kept. */
static void test_short_slice_keeps_nice_and_policy(void **state)
{
    (void)state;
    int out[5] = {-1, -1, -1, -1, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, short_slice_thread, out), 0);
    pthread_join(t, NULL);
    assert_int_equal(out[1], 5);
    if (out[0] == 1 && out[2] != 0)
        assert_int_equal(out[2], WL_ACK_SLICE_US);
    assert_int_equal(out[3], 0);
    assert_int_equal(out[4], SCHED_IDLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tickets_durable_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_syncs_what_was_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_sync_wal, setup, teardown),
        cmocka_unit_test(test_short_slice_keeps_nice_and_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
