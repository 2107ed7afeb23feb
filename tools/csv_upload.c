#include "csv_upload.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "table.h"

/* Reads path ("-": stdin) whole, at most u->max_bytes. Returns 0, or
 * WL_EXIT_USAGE after saying why. */
static int read_file(const struct wl_csv_upload *u, const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (f == NULL) {
        wl_cli_error(u->cmd, "%s: %s", path, strerror(errno));
        return WL_EXIT_USAGE;
    }
    for (;;) {
        if (n == cap) {
            size_t c2 = cap ? 2 * cap : 64 * 1024;
            char *p = c2 > u->max_bytes + 1 ? NULL : realloc(buf, c2);
            if (p == NULL) {
                wl_cli_error(u->cmd, "%s: larger than %zu MiB", path, u->max_bytes >> 20);
                rc = WL_EXIT_USAGE;
                break;
            }
            buf = p;
            cap = c2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                wl_cli_error(u->cmd, "%s: cannot read it: %s", path, strerror(errno));
                rc = WL_EXIT_USAGE;
            }
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (rc == 0 && n == 0) {
        wl_cli_error(u->cmd, "%s is empty (%s)", path, u->empty_hint);
        rc = WL_EXIT_USAGE;
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

static const struct wl_table_col count_cols[] = {
    {"imported", WL_ALIGN_RIGHT, 0, 0, 0},
    {"removed", WL_ALIGN_RIGHT, 0, 0, 0},
};

int wl_csv_upload(const struct wl_csv_upload *u, struct wl_api_client *api, const char *file,
                  enum wl_out_format fmt)
{
    char *body = NULL, imported[32], removed[32];
    size_t len = 0;
    json_t *reply = NULL;
    int rc = read_file(u, file, &body, &len);

    if (rc != 0)
        return rc;
    rc = wl_api_call(api, "PUT", u->route, "text/csv", body, len, &reply);
    free(body);
    if (rc != 0)
        return rc;
    wl_reply_number_text(json_object_get(reply, "imported"), imported, sizeof imported);
    wl_reply_number_text(json_object_get(reply, "removed"), removed, sizeof removed);
    if (fmt == WL_OUT_JSON) {
        if (reply != NULL)
            wl_reply_print_json(reply, stdout);
        rc = wl_api_finish_output(u->cmd);
    } else if (fmt == WL_OUT_CSV) {
        struct wl_table *t = wl_table_new(count_cols, 2);
        if (t != NULL) {
            wl_table_row(t);
            wl_table_cell(t, imported);
            wl_table_cell(t, removed);
        }
        rc = wl_api_emit_table(u->cmd, t, fmt, 0);
        wl_table_free(t);
    } else {
        printf("imported %s %s from %s; removed %s\n", imported[0] ? imported : "?", u->noun,
               file, removed[0] ? removed : "?");
        rc = wl_api_finish_output(u->cmd);
    }
    json_decref(reply);
    return rc;
}
