/* uthash_collide: inputs whose uthash default hash lands where an
 * adversarial test wants it (tests/integration/test_adversarial.py and
 * bench/adversarial compile it with cc at run time).
 *
 * The hash is HASH_VALUE of the system's <uthash.h> (its default is Bob
 * Jenkins' lookup2, HASH_JEN), so the strings follow whatever that header
 * computes: this file has no copy of the hash.
 *
 *   uthash_collide hash
 *       stdin: one input a line, in hex; stdout: its hash, in decimal.
 *   uthash_collide search MASK LO HI COUNT LEN SEED PREFIX
 *       stdout: COUNT distinct printable strings (letters and digits) of LEN
 *       bytes that start with PREFIX and whose hash & MASK lies in [LO, HI),
 *       one a line. SEED picks where the search starts.
 *
 * Exit 0, or 2 on bad arguments. Single-threaded, no allocation per input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

static const char ALPHABET[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
#define ALPHABET_N (sizeof ALPHABET - 1)
#define LEN_MAX 128

static unsigned hash_of(const void *p, size_t n)
{
    unsigned h;
    HASH_VALUE(p, n, h);
    return h;
}

static int hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int cmd_hash(void)
{
    char line[2 * LEN_MAX + 8];
    unsigned char buf[LEN_MAX];

    while (fgets(line, sizeof line, stdin) != NULL) {
        size_t n = strcspn(line, "\r\n");
        if (n % 2 != 0 || n / 2 > LEN_MAX) {
            fprintf(stderr, "uthash_collide: bad hex line\n");
            return 2;
        }
        for (size_t i = 0; i < n / 2; i++) {
            int hi = hex_val(line[2 * i]), lo = hex_val(line[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "uthash_collide: bad hex digit\n");
                return 2;
            }
            buf[i] = (unsigned char)(hi << 4 | lo);
        }
        printf("%u\n", hash_of(buf, n / 2));
    }
    return 0;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Walks the suffix like an odometer from a random start: every candidate
 * differs from the ones before it, so the strings printed are distinct. */
static int cmd_search(char **argv)
{
    unsigned long mask = strtoul(argv[0], NULL, 0), lo = strtoul(argv[1], NULL, 0);
    unsigned long hi = strtoul(argv[2], NULL, 0), count = strtoul(argv[3], NULL, 0);
    size_t len = strtoul(argv[4], NULL, 0);
    uint64_t seed = strtoull(argv[5], NULL, 0);
    const char *prefix = argv[6];
    size_t plen = strlen(prefix);
    char s[LEN_MAX + 1];
    unsigned digit[LEN_MAX];

    if (len > LEN_MAX || plen + 8 > len || lo >= hi) {
        fprintf(stderr, "uthash_collide: want LEN <= %d, PREFIX 8 shorter, LO < HI\n",
                LEN_MAX);
        return 2;
    }
    memcpy(s, prefix, plen);
    for (size_t i = plen; i < len; i++) {
        digit[i] = (unsigned)(splitmix(&seed) % ALPHABET_N);
        s[i] = ALPHABET[digit[i]];
    }
    s[len] = '\0';
    for (unsigned long found = 0; found < count;) {
        unsigned h = hash_of(s, len) & (unsigned)mask;
        if (h >= lo && h < hi) {
            puts(s);
            found++;
        }
        for (size_t i = len; i-- > plen;) { /* the next suffix */
            if (++digit[i] < ALPHABET_N) {
                s[i] = ALPHABET[digit[i]];
                break;
            }
            digit[i] = 0;
            s[i] = ALPHABET[0];
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "hash") == 0)
        return cmd_hash();
    if (argc == 9 && strcmp(argv[1], "search") == 0)
        return cmd_search(argv + 2);
    fprintf(stderr, "usage: uthash_collide hash | search MASK LO HI COUNT LEN SEED PREFIX\n");
    return 2;
}
