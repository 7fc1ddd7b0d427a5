#include <dbus/dbus.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <sys/prctl.h>

/* Names the calling thread (shown by ps -L, top -H and in core dumps).
   prctl is variadic, so Swift cannot call it directly. */
static inline int cdbus_name_this_thread(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}
