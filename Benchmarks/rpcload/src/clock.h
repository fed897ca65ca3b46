/* Monotonic time in nanoseconds: every latency, schedule and deadline in
 * rpcload is a difference of these, so wall-clock jumps never matter. */
#ifndef RPCLOAD_CLOCK_H
#define RPCLOAD_CLOCK_H

#include <stdint.h>
#include <time.h>

#define NS_PER_US 1000ULL
#define NS_PER_MS 1000000ULL
#define NS_PER_S 1000000000ULL

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline uint64_t seconds_to_ns(double seconds) {
    return seconds <= 0 ? 0 : (uint64_t)(seconds * (double)NS_PER_S + 0.5);
}

#endif
