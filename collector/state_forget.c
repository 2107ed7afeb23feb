/* The writer's state: forgetting installs and organizations (aggregate.h's
 * wl_state_forget_*; forget_apply.c runs them). The writer thread. */
#include "aggregate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "state_parts.h"

/* ---- forgetting ---- */

static int forgotten_add_org(struct wl_forgotten *out, const uint8_t *id, size_t len, int loaded)
{
    for (size_t i = 0; i < out->n_orgs; i++) {
        if (out->org_lens[i] == len && memcmp(out->orgs[i], id, len) == 0) {
            out->org_loaded[i] |= (uint8_t)loaded;
            return 0;
        }
    }
    if (out->n_orgs == WL_FORGET_ORGS_MAX)
        return -ENOSPC;
    memcpy(out->orgs[out->n_orgs], id, len);
    out->org_lens[out->n_orgs] = len;
    out->org_loaded[out->n_orgs] = (uint8_t)loaded;
    out->n_orgs++;
    return 0;
}

/* Takes the install out of the expiry heap, its organization and the
 * table, and deletes its record. */
static void install_forget(struct wl_state *st, struct wl_install *in, struct wl_batch *batch,
                           struct wl_forgotten *out, int delete_record)
{
    if (out->n_installs == out->cap_installs) {
        out->cap_installs = out->cap_installs ? 2 * out->cap_installs : 16;
        out->installs = wl_st_xrealloc(out->installs, out->cap_installs * sizeof *out->installs);
    }
    out->installs[out->n_installs] = strdup(in->id);
    if (out->installs[out->n_installs] == NULL)
        abort();
    out->n_installs++;
    if (in->counting)
        wl_st_heap_remove(st, in);
    if (in->org != NULL)
        wl_st_org_detach(st, in->org, in); /* takes its counts out while it still counts */
    if (delete_record) {
        wl_batch_delete(batch, WL_CF_INSTALLS, in->id, strlen(in->id));
        out->install_records++;
    }
    wl_st_install_unlink(st, in);
    wl_st_install_release(st, in);
    free(in);
}

/* Off the dirty list (linear in it: for the rare forget that empties an
 * organization it had touched). */
static void org_undirty(struct wl_state *st, struct wl_org *org)
{
    if (!org->dirty)
        return;
    for (struct wl_org **p = &st->dirty_orgs; *p != NULL; p = &(*p)->next_dirty) {
        if (*p == org) {
            *p = org->next_dirty;
            st->n_dirty_orgs--;
            break;
        }
    }
    org->dirty = 0;
    org->day_dirty = 0;
    org->next_dirty = NULL;
}

/* Deletes the organization's record and frees it (which takes it out of the
 * rank). */
static void org_forget(struct wl_state *st, struct wl_org *org, struct wl_batch *batch,
                       struct wl_forgotten *out)
{
    wl_batch_delete(batch, WL_CF_ORGS, org->id, org->id_len);
    out->org_records++;
    wl_ptable_remove(&st->orgs, org);
    st->n_orgs--;
    wl_st_org_destroy(st, org);
}

int wl_state_forget_org_memory(struct wl_state *st, const uint8_t *id, size_t len,
                               struct wl_batch *batch, struct wl_forgotten *out)
{
    memset(out, 0, sizeof *out);
    if (wl_state_dirty(st))
        return -EBUSY;
    struct wl_org *org = wl_st_org_find(st, id, len);
    forgotten_add_org(out, id, len, org != NULL);
    if (org == NULL)
        return 0;
    while (org->n_installs > 0)
        install_forget(st, org->installs[org->n_installs - 1], batch, out, 0);
    org_forget(st, org, batch, out);
    return 0;
}

int wl_state_has_install(const struct wl_state *st, const char *id, size_t len)
{
    return wl_st_install_find(st, id, len) != NULL;
}

int wl_state_forget_stale(struct wl_state *st, char *const *ids, const uint8_t *lens, size_t n,
                          uint64_t upto, struct wl_batch *batch, struct wl_forgotten *out)
{
    memset(out, 0, sizeof *out);
    if (wl_state_dirty(st))
        return -EBUSY;
    for (size_t i = 0; i < n; i++) {
        struct wl_install *in = wl_st_install_find(st, ids[i], lens[i]);
        if (in == NULL || in->last_ingest_seq > upto)
            continue; /* gone, or it pinged again after the forget: new data */
        struct wl_org *org = in->org;
        if (org != NULL && org->n_installs > 1)
            wl_st_org_touch(st, org, st->clock, batch); /* as forget_install: its day ends first */
        install_forget(st, in, batch, out, 0);
        if (org == NULL)
            continue;
        if (org->n_installs == 0) {
            org_undirty(st, org); /* touched while it had more: nothing of it is written */
            org_forget(st, org, batch, out);
        } else {
            wl_st_org_reseen(org);
        }
    }
    return 0;
}

int wl_state_forget_install(struct wl_state *st, const char *install_id, struct wl_batch *batch,
                            struct wl_forgotten *out)
{
    size_t idlen = strlen(install_id);
    uint8_t own[WL_ORG_ID_MAX];
    struct wl_install *in;

    memset(out, 0, sizeof *out);
    if (wl_state_dirty(st))
        return -EBUSY;
    if (idlen == 0 || idlen > WL_INSTALL_ID_MAX)
        return -EINVAL;
    size_t own_len = wl_org_id(own, NULL, 0, install_id, idlen);
    in = wl_st_install_find(st, install_id, idlen);
    if (in == NULL || in->org == NULL) {
        forgotten_add_org(out, own, own_len, wl_st_org_find(st, own, own_len) != NULL);
        if (in != NULL)
            install_forget(st, in, batch, out, 1);
        return 0;
    }
    struct wl_org *org = in->org;
    if (org->n_installs > 1) /* it stays: as when an install moves away, the day it
                                was on ends first, and it is rewritten at the flush */
        wl_st_org_touch(st, org, st->clock, batch);
    install_forget(st, in, batch, out, 1);
    if (org->n_installs == 0) {
        forgotten_add_org(out, org->id, org->id_len, 1);
        org_forget(st, org, batch, out);
    } else {
        /* When it saw installs is when the installs it keeps did (its
         * versions and editions are theirs already). */
        wl_st_org_reseen(org);
    }
    forgotten_add_org(out, own, own_len, 0); /* a no-key org it once had: its history */
    return 0;
}

size_t wl_state_org_install_ids(const struct wl_state *st, const uint8_t *org, size_t org_len,
                                char ***out)
{
    struct wl_org *o = wl_st_org_find(st, org, org_len);
    *out = NULL;
    if (o == NULL || o->n_installs == 0)
        return 0;
    char **v = wl_st_xrealloc(NULL, o->n_installs * sizeof *v);
    for (size_t i = 0; i < o->n_installs; i++) {
        v[i] = strdup(o->installs[i]->id);
        if (v[i] == NULL)
            abort(); /* out of memory in the writer */
    }
    *out = v;
    return o->n_installs;
}

void wl_forgotten_free(struct wl_forgotten *f)
{
    for (size_t i = 0; i < f->n_installs; i++)
        free(f->installs[i]);
    free(f->installs);
    f->installs = NULL;
    f->n_installs = 0;
}
