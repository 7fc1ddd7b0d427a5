#include <dbus/dbus.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <sys/prctl.h>

