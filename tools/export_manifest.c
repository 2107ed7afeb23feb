#include "export_manifest.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *wl_export_format_name(enum wl_export_format f)
{
    return f == WL_EXPORT_CSV ? "csv" : "ndjson";
}

/* Sequences stay below 2^63 (they count records). */
static json_t *u64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *iso_time(int64_t ms)
{
    char buf[40];
    struct tm tm;
    time_t t = (time_t)(ms / 1000);
    if (ms < 0 || gmtime_r(&t, &tm) == NULL)
        return json_null();
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
    return json_string(buf);
}

char *wl_export_manifest_json(const struct wl_export_manifest *m)
{
    const struct wl_export_table *t = m->table;
    json_t *o = json_object(), *cols = json_array(), *files = json_array();
    int bad = o == NULL || cols == NULL || files == NULL;
    char *text = NULL;

    for (size_t i = 0; !bad && i < t->ncols; i++)
        bad = json_array_append_new(cols, json_string(t->cols[i])) != 0;
    for (size_t i = 0; !bad && i < m->n_files; i++) {
        const struct wl_export_file *f = &m->files[i];
        json_t *fo = json_object();
        bad = fo == NULL;
        if (!bad) {
            bad = json_object_set_new(fo, "name", json_string(f->name)) |
                  json_object_set_new(fo, "first", u64(f->first)) |
                  json_object_set_new(fo, "last", u64(f->last));
            if (f->part > 0)
                bad |= json_object_set_new(fo, "part", json_integer(f->part));
            bad |= json_object_set_new(fo, "rows", u64(f->rows)) |
                   json_object_set_new(fo, "bytes", u64(f->bytes)) |
                   json_object_set_new(fo, "sha256", json_string(f->sha256));
        }
        if (json_array_append_new(files, fo) != 0)
            bad = 1;
    }
    if (!bad) {
        bad = json_object_set_new(o, "schema_version", json_integer(WL_EXPORT_SCHEMA)) |
              json_object_set_new(o, "table", json_string(t->name)) |
              json_object_set_new(o, "format", json_string(wl_export_format_name(m->format))) |
              json_object_set_new(o, "compression", json_string("gzip")) |
              json_object_set_new(o, "cursor",
                                  m->cursor[0] ? json_string(m->cursor) : json_null()) |
              json_object_set_new(o, "sequence", json_string(t->sequence)) |
              json_object_set_new(o, "first", u64(m->first)) |
              json_object_set_new(o, "last", u64(m->last)) |
              json_object_set_new(o, "rows", u64(m->rows));
        if (t->id == WL_EXPORT_DAILY || t->id == WL_EXPORT_ACCOUNTS)
            bad |= json_object_set_new(o, "as_of", json_integer(m->as_of)) |
                   json_object_set_new(o, "as_of_iso", iso_time(m->as_of));
        if ((t->id == WL_EXPORT_DAILY || t->id == WL_EXPORT_ACCOUNTS) && m->checkpoint != NULL) {
            int64_t at = m->checkpoint->at;
            bad |= json_object_set_new(o, "checkpoint_seq", u64(m->checkpoint->seq)) |
                   json_object_set_new(o, "checkpoint_at", at > 0 ? json_integer(at)
                                                                  : json_null()) |
                   json_object_set_new(o, "checkpoint_at_iso", at > 0 ? iso_time(at)
                                                                      : json_null());
        }
    }
    /* The object owns the arrays from here, even on failure. */
    bad |= json_object_set_new(o, "columns", cols);
    bad |= json_object_set_new(o, "files", files);
    if (!bad) {
        char *body = json_dumps(o, JSON_INDENT(2));
        if (body != NULL) {
            size_t n = strlen(body);
            text = malloc(n + 2);
            if (text != NULL) {
                memcpy(text, body, n);
                text[n] = '\n';
                text[n + 1] = '\0';
            }
            free(body);
        }
    }
    json_decref(o);
    return text;
}
