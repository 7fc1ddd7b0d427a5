#ifndef BENCH_RECEIVER_H
#define BENCH_RECEIVER_H
#include <stdint.h>

/// A plain libdbus receiver for the benchmark's maximum-rate figures: its own
/// connection and thread, a match on one signal member, and a count of what
/// arrived. It decodes nothing, so it is never the bottleneck.
typedef struct bench_receiver bench_receiver;

/// Connects to `address` and counts the signals named `member`; NULL on failure.
bench_receiver *bench_receiver_start(const char *address, const char *member);
uint64_t bench_receiver_count(bench_receiver *r);
void bench_receiver_reset(bench_receiver *r);



/// The floor's sender: its own connection, `count` InteractionAlerting signals
/// shaped like the bridge's (one alerting detail, is_delta), built and sent
/// with libdbus alone as fast as it goes. Returns how many were sent.
uint64_t bench_send_alerting(const char *address, const char *path, const char *interface, uint64_t first_seq, uint64_t count);
/// The CPU time (its thread's, building and sending, up to the flush) of the last `bench_send_alerting`.
uint64_t bench_sender_cpu_ns(void);
#endif
