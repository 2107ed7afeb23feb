/* Replays a seed corpus through one fuzz target without libFuzzer, so the
 * normal suite (and make sanitize) runs every seed and every crash
 * regression kept in tests/fuzz/corpus:
 *
 *   fuzz_replay TARGET DIR
 *
 * Each target's source is compiled here with its LLVMFuzzerTestOneInput
 * renamed to wl_fuzz_<target> (tests/CMakeLists.txt). A property that
 * fails aborts, which fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TARGETS(X) X(frame_stream) X(envelope) X(ping_validate) X(config_rules) \
                   X(api_params) X(named_csv) X(state) X(security_query) \
                   X(rudder_batch) X(networks_csv)

#define DECLARE(t) int wl_fuzz_##t(const uint8_t *data, size_t size);
TARGETS(DECLARE)
#undef DECLARE

static const struct {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
} targets[] = {
#define ENTRY(t) {#t, wl_fuzz_##t},
    TARGETS(ENTRY)
#undef ENTRY
};

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    int (*fn)(const uint8_t *, size_t) = NULL;
    char *names[4096];
    size_t n = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_replay TARGET DIR\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        if (strcmp(targets[i].name, argv[1]) == 0)
            fn = targets[i].fn;
    }
    if (fn == NULL) {
        fprintf(stderr, "fuzz_replay: unknown target '%s'\n", argv[1]);
        return 2;
    }
    DIR *dir = opendir(argv[2]);
    if (dir == NULL) {
        perror(argv[2]);
        return 1;
    }
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && n < sizeof names / sizeof names[0]) {
        if (de->d_name[0] != '.')
            names[n++] = strdup(de->d_name);
    }
    closedir(dir);
    qsort(names, n, sizeof names[0], cmp);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[2], names[i]);
        FILE *f = fopen(path, "rb");
        if (f == NULL) {
            perror(path);
            return 1;
        }
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0, got;
        do {
            if (len == cap) {
                cap = cap ? 2 * cap : 4096;
                buf = realloc(buf, cap);
                if (buf == NULL)
                    return 1;
            }
            got = fread(buf + len, 1, cap - len, f);
            len += got;
        } while (got > 0);
        fclose(f);
        printf("%s: %s (%zu bytes)\n", argv[1], names[i], len);
        fflush(stdout);
        fn(buf, len);
        free(buf);
        free(names[i]);
    }
    printf("%s: %zu inputs replayed\n", argv[1], n);
    return n > 0 ? 0 : 1;
}
