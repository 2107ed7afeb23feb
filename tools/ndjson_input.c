#include "ndjson_input.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "collector/orgkey.h"
#include "ping_json.h"
#include "storage/keys.h"

static int resolve_domain(wl_ping *p, const char *domain, struct wl_org_salt *salt, char *err,
                          size_t errlen)
{
    char why[1200];

    if (wl_org_domain_check(domain, why, sizeof why) != 0) {
        snprintf(err, errlen, "org_domain: %s", why);
        return -EINVAL;
    }
    if (salt->key == NULL &&
        wl_org_salt_load(salt->path, &salt->key, &salt->len, why, sizeof why) != 0) {
        snprintf(err, errlen, "org_domain needs the org salt: %s", why);
        return -EINVAL;
    }
    p->org_key.data = malloc(WL_ORG_KEY_BYTES);
    if (p->org_key.data == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    p->org_key.len = WL_ORG_KEY_BYTES;
    wl_org_key(salt->key, salt->len, domain, p->org_key.data);
    return 0;
}

static int blank(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return 0;
    }
    return 1;
}

int wl_ping_input_read(const char *cmd, FILE *in, const char *name, struct wl_org_salt *salt,
                       struct wl_ping_input *out)
{
    char *line = NULL;
    size_t linecap = 0;
    unsigned long lineno = 0;
    char err[1400];
    int rc = 0;

    for (;;) {
        errno = 0;
        ssize_t n = getline(&line, &linecap, in);
        if (n < 0) {
            if (ferror(in)) {
                wl_cli_error(cmd, "%s: %s", name, strerror(errno ? errno : EIO));
                rc = WL_EXIT_FAIL;
            }
            break;
        }
        lineno++;
        if (blank(line))
            continue;
        json_error_t jerr;
        json_t *obj = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
        if (obj == NULL) {
            wl_cli_error(cmd, "%s:%lu: invalid JSON at column %d: %s", name, lineno,
                         jerr.column, jerr.text);
            rc = WL_EXIT_USAGE;
            break;
        }
        if (out->n == out->cap) {
            size_t ncap = out->cap ? 2 * out->cap : 256;
            wl_ping *np = realloc(out->pings, ncap * sizeof *np);
            if (np == NULL) {
                json_decref(obj);
                wl_cli_error(cmd, "out of memory after %zu pings", out->n);
                rc = WL_EXIT_FAIL;
                break;
            }
            out->pings = np;
            out->cap = ncap;
        }
        wl_ping *p = &out->pings[out->n++];
        const char *domain;
        int r = wl_ping_from_json(obj, p, &domain, err, sizeof err);
        if (r == 0 && domain != NULL)
            r = resolve_domain(p, domain, salt, err, sizeof err);
        const char *hint = json_is_object(obj) ? "" : " (one JSON object per line)";
        json_decref(obj);
        if (r != 0) {
            wl_cli_error(cmd, "%s:%lu: %s%s", name, lineno, err, hint);
            rc = r == -ENOMEM ? WL_EXIT_FAIL : WL_EXIT_USAGE;
            break;
        }
    }
    free(line);
    return rc;
}

void wl_ping_input_free(struct wl_ping_input *in)
{
    for (size_t i = 0; i < in->n; i++)
        wl_ping_clear(&in->pings[i]);
    free(in->pings);
}


void wl_org_salt_free(struct wl_org_salt *salt)
{
    if (salt->key != NULL) {
        sodium_memzero(salt->key, salt->len);
        free(salt->key);
        salt->key = NULL;
    }
}
