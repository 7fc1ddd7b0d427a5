#ifndef ICWS_CTHREAD_H
#define ICWS_CTHREAD_H
/// Names the calling thread (shown by top -H, ps -L and /proc/PID/task/TID/comm).
int icws_name_this_thread(const char *name);
#endif
