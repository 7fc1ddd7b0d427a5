// rtnetlink, for network changes where NetworkManager is not running.
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
