/*
 * clock.h - monotonic time in microseconds and milliseconds, and sleeping.
 */
#ifndef TK_COMMON_CLOCK_H
#define TK_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic clock (CLOCK_MONOTONIC), for measuring intervals only. */
static inline int64_t tk_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t tk_clock_ms(void)
{
    return tk_clock_us() / 1000;
}

/* Sleep `ms` milliseconds, resuming after signals until the time has passed. */
static inline void tk_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

#endif
