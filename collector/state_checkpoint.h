/* What the writer reads of a checkpoint under way, to pace it (writer.c,
 * "Checkpoints"), beside aggregate.h's begin and step. The writer thread. */
#ifndef WL_STATE_CHECKPOINT_H
#define WL_STATE_CHECKPOINT_H

#include <stdint.h>

struct wl_state;

/* The work of the checkpoint under way, as it began: the installs and the
 * organizations it writes (each organization a record and often its day's
 * row). 0 and 0 when none is under way. */
void wl_state_checkpoint_work(const struct wl_state *st, uint64_t *installs, uint64_t *orgs);

#endif
