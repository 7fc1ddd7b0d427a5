#include <sys/prctl.h>
#include "cthread.h"

int icws_name_this_thread(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}
