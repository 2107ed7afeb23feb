/* The operator's security bulletins: loaded once at start (a JSON array of
 * {"id","applies_to_version","body_file"}), read-only afterwards, so the
 * listener's threads read them without a lock. A server mails every admin
 * the body of each bulletin id it sees once: ids must be unique and never
 * reused. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_ingest_parts.h"

#define BODIES_MAX (16u * 1024 * 1024) /* every body together */

static int id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > WL_BULLETIN_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Reads the whole file at path (at most max bytes). */
static int read_body(const char *path, size_t max, char **out, size_t *len, char *what,
                     size_t whatlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;

    if (f == NULL) {
        snprintf(what, whatlen, "cannot open body_file %s: %s", path, strerror(errno));
        return -EINVAL;
    }
    if ((buf = malloc(max + 1)) == NULL) {
        fclose(f);
        return -ENOMEM;
    }
    n = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > max) {
        free(buf);
        snprintf(what, whatlen, bad ? "cannot read body_file %s" : "body_file %s is over 1 MiB",
                 path);
        return -EINVAL;
    }
    *out = buf;
    *len = n;
    return 0;
}

int wl_bulletins_load(const char *path, struct wl_bulletins *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = NULL;
    char what[2400] = "", dir[1024] = ".", body_path[2200];
    size_t total = 0, i = 0;
    int rc = -EINVAL;

    memset(out, 0, sizeof *out);
    if (path[0] == '\0')
        return 0;
    const char *slash = strrchr(path, '/');
    if (slash != NULL)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + (slash == path), path);
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "%s: line %d: %s", path, jerr.line, jerr.text);
        return -EINVAL;
    }
    if (!json_is_array(root)) {
        snprintf(err, errlen, "%s: expected a JSON array of {\"id\", \"applies_to_version\", "
                 "\"body_file\"}", path);
        goto fail;
    }
    if (json_array_size(root) > WL_BULLETINS_MAX) {
        snprintf(err, errlen, "%s: more than %d bulletins", path, WL_BULLETINS_MAX);
        goto fail;
    }
    if (json_array_size(root) > 0 &&
        (out->v = calloc(json_array_size(root), sizeof *out->v)) == NULL) {
        rc = -ENOMEM;
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    for (i = 0; i < json_array_size(root); i++) {
        json_t *e = json_array_get(root, i);
        const char *id = json_string_value(json_object_get(e, "id"));
        const char *ver = json_string_value(json_object_get(e, "applies_to_version"));
        const char *body = json_string_value(json_object_get(e, "body_file"));
        struct wl_bulletin *b = &out->v[i];

        if (!json_is_object(e) || json_object_size(e) != 3 || !id || !ver || !body) {
            snprintf(what, sizeof what, "expected exactly the strings \"id\", "
                     "\"applies_to_version\" and \"body_file\"");
            goto entry_fail;
        }
        if (!id_ok(id)) {
            snprintf(what, sizeof what, "id: 1 to %d characters of A-Z a-z 0-9 . _ -",
                     WL_BULLETIN_ID_MAX);
            goto entry_fail;
        }
        if (wl_bulletins_find(out, id) != NULL) {
            snprintf(what, sizeof what, "id \"%s\" is used twice (ids are never reused)", id);
            goto entry_fail;
        }
        if (ver[0] == '\0' || strlen(ver) > WL_STRING_MAX) {
            snprintf(what, sizeof what, "applies_to_version: 1 to %d bytes", WL_STRING_MAX);
            goto entry_fail;
        }
        if (body[0] == '/')
            snprintf(body_path, sizeof body_path, "%s", body);
        else
            snprintf(body_path, sizeof body_path, "%s/%s", dir, body);
        if ((rc = read_body(body_path, WL_BULLETIN_BODY_MAX, &b->body, &b->body_len, what,
                            sizeof what)) != 0)
            goto entry_fail;
        total += b->body_len;
        snprintf(b->id, sizeof b->id, "%s", id);
        snprintf(b->version, sizeof b->version, "%s", ver);
        out->n = i + 1;
        if (total > BODIES_MAX) {
            snprintf(what, sizeof what, "the bodies are over 16 MiB together");
            rc = -EINVAL;
            goto entry_fail;
        }
    }
    json_decref(root);
    return 0;

entry_fail:
    if (rc == -ENOMEM)
        snprintf(what, sizeof what, "out of memory");
    snprintf(err, errlen, "%s: entry %zu: %s", path, i + 1, what);
    rc = rc == -ENOMEM ? -ENOMEM : -EINVAL;
fail:
    json_decref(root);
    wl_bulletins_free(out);
    return rc;
}

void wl_bulletins_free(struct wl_bulletins *b)
{
    if (b->v != NULL)
        for (size_t i = 0; i < b->n; i++)
            free(b->v[i].body);
    free(b->v);
    b->v = NULL;
    b->n = 0;
}

const struct wl_bulletin *wl_bulletins_find(const struct wl_bulletins *b, const char *id)
{
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->v[i].id, id) == 0)
            return &b->v[i];
    return NULL;
}

char *wl_bulletins_answer(const struct wl_bulletins *b, const char *version, size_t *len)
{
    json_t *arr = json_array();
    char *text = NULL;

    if (arr == NULL)
        return NULL;
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->v[i].version, version) != 0)
            continue;
        if (json_array_append_new(arr, json_pack("{s:s,s:s}", "id", b->v[i].id,
                                                 "applies_to_version", b->v[i].version)) != 0)
            goto done;
    }
    text = json_dumps(arr, JSON_COMPACT);
    if (text != NULL)
        *len = strlen(text);
done:
    json_decref(arr);
    return text;
}
