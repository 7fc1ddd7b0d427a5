#include "CConcurrencyHooks.h"
#include <stddef.h>

// Defined by the Swift runtime (libswift_Concurrency), read by it on every
// enqueue of a global job.
extern void *swift_task_enqueueGlobal_hook;
extern void *swift_task_enqueueGlobalWithDelay_hook;
extern void *swift_task_enqueueGlobalWithDeadline_hook;

int icws_set_concurrency_hooks(void *global, void *with_delay, void *with_deadline) {
    if (swift_task_enqueueGlobal_hook != NULL || swift_task_enqueueGlobalWithDelay_hook != NULL ||
        swift_task_enqueueGlobalWithDeadline_hook != NULL) {
        return 0;
    }
    swift_task_enqueueGlobalWithDeadline_hook = with_deadline;
    swift_task_enqueueGlobalWithDelay_hook = with_delay;
    swift_task_enqueueGlobal_hook = global;
    return 1;
}
