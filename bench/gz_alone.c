/* bench/gz_alone: how fast gzip compressors alone take the export's NDJSON
 * rows on this core, for scale beside the export's own figure. Reads FILE
 * (uncompressed NDJSON), compresses it whole as one gzip stream fed in
 * 256 KiB pieces, the best of 3 runs per compressor (CPU time), and prints one JSON
 * object: rows, bytes per row before compression, and per compressor its
 * speed (MB/s of input, rows/s) and compressed bytes per row.
 *
 *   zlib 1, 2, 6        deflate (windowBits 16 + 15, memLevel 8), the old export
 *                       used level 2
 *   isa-l 1             igzip level 1, as tools/export_gz.c uses it
 *   libdeflate 1        when built with -DWL_HAVE_LIBDEFLATE: one gzip member
 *                       per piece (it has no streaming API)
 *
 * Built and run by bench/export; not part of warmline. */
#include <isa-l/igzip_lib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#ifdef WL_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#define PIECE (256 * 1024)

static unsigned char out[1 << 17];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t zlib_gz(const unsigned char *in, size_t len, int level)
{
    z_stream zs;
    size_t total = 0;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    for (size_t off = 0; off < len || off == 0; off += PIECE) {
        size_t n = len - off < PIECE ? len - off : PIECE;
        int flush = off + n >= len ? Z_FINISH : Z_NO_FLUSH;
        zs.next_in = (unsigned char *)in + off;
        zs.avail_in = (uInt)n;
        do {
            zs.next_out = out;
            zs.avail_out = sizeof out;
            deflate(&zs, flush);
            total += sizeof out - zs.avail_out;
        } while (zs.avail_out == 0);
        if (flush == Z_FINISH)
            break;
    }
    deflateEnd(&zs);
    return total;
}

static size_t isal_gz(const unsigned char *in, size_t len, int level)
{
    static struct isal_zstream zs;
    static unsigned char level_buf[ISAL_DEF_LVL1_DEFAULT];
    size_t total = 0;
    isal_deflate_init(&zs);
    zs.level = (uint32_t)level;
    zs.level_buf = level_buf;
    zs.level_buf_size = sizeof level_buf;
    zs.gzip_flag = IGZIP_GZIP;
    for (size_t off = 0;; off += PIECE) {
        size_t n = len - off < PIECE ? len - off : PIECE;
        zs.next_in = (unsigned char *)in + off;
        zs.avail_in = (uint32_t)n;
        zs.end_of_stream = off + n >= len;
        do {
            zs.next_out = out;
            zs.avail_out = sizeof out;
            if (isal_deflate(&zs) != COMP_OK)
                return 0;
            total += sizeof out - zs.avail_out;
        } while (zs.avail_in > 0 || (zs.end_of_stream && zs.internal_state.state != ZSTATE_END));
        if (zs.end_of_stream)
            break;
    }
    return total;
}

#ifdef WL_HAVE_LIBDEFLATE
static size_t libdeflate_gz(const unsigned char *in, size_t len, int level)
{
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
    size_t cap = libdeflate_gzip_compress_bound(c, PIECE), total = 0;
    unsigned char *o = malloc(cap);
    for (size_t off = 0; off < len; off += PIECE) {
        size_t n = len - off < PIECE ? len - off : PIECE;
        total += libdeflate_gzip_compress(c, in + off, n, o, cap);
    }
    free(o);
    libdeflate_free_compressor(c);
    return total;
}
#endif

static void run(const char *name, size_t (*fn)(const unsigned char *, size_t, int), int level,
                const unsigned char *in, size_t len, size_t rows, int *first)
{
    double best = 0;
    size_t bytes = 0;
    for (int i = 0; i < 3; i++) {
        double t = now();
        bytes = fn(in, len, level);
        t = now() - t;
        if (i == 0 || t < best)
            best = t;
    }
    printf("%s{\"name\":\"%s %d\",\"mb_s\":%.1f,\"rows_s\":%.0f,\"bytes_per_row\":%.2f}",
           *first ? "" : ",", name, level, (double)len / best / 1e6, (double)rows / best,
           (double)bytes / (double)rows);
    *first = 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gz_alone FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0) {
        perror(argv[1]);
        return 1;
    }
    size_t len = (size_t)ftell(f), rows = 0;
    unsigned char *in = malloc(len + 1);
    rewind(f);
    if (in == NULL || fread(in, 1, len, f) != len) {
        perror(argv[1]);
        return 1;
    }
    fclose(f);
    for (size_t i = 0; i < len; i++)
        rows += in[i] == '\n';
    if (rows == 0) {
        fprintf(stderr, "gz_alone: %s has no rows\n", argv[1]);
        return 1;
    }
    int first = 1;
    printf("{\"rows\":%zu,\"raw_bytes_per_row\":%.1f,\"results\":[", rows,
           (double)len / (double)rows);
    run("zlib", zlib_gz, 1, in, len, rows, &first);
    run("zlib", zlib_gz, 2, in, len, rows, &first);
    run("zlib", zlib_gz, 6, in, len, rows, &first);
    run("isa-l", isal_gz, 1, in, len, rows, &first);
#ifdef WL_HAVE_LIBDEFLATE
    run("libdeflate", libdeflate_gz, 1, in, len, rows, &first);
#endif
    printf("]}\n");
    free(in);
    return 0;
}
