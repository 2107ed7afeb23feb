#include "sched_slice.h"

#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's struct sched_attr as of its first version (48 bytes; glibc
 * 2.36 has no wrapper). */
struct sched_attr_v0 {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
};

int wl_thread_short_slice(void)
{
#if defined(SYS_sched_getattr) && defined(SYS_sched_setattr)
    struct sched_attr_v0 a;
    memset(&a, 0, sizeof a);
    if (syscall(SYS_sched_getattr, 0, &a, (unsigned)sizeof a, 0) != 0 || a.policy != 0)
        return 0; /* 0: SCHED_OTHER */
    a.size = sizeof a;
    a.flags = 0;
    a.runtime = (uint64_t)WL_ACK_SLICE_US * 1000; /* EEVDF: the slice asked for */
    return syscall(SYS_sched_setattr, 0, &a, 0) == 0;
#else
    return 0;
#endif
}
