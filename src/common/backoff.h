/*
 * backoff.h - the retry backoff policy, as configured (backoff.*) and as SQL receives it.
 */
#ifndef TK_COMMON_BACKOFF_H
#define TK_COMMON_BACKOFF_H

#include <stddef.h>

typedef struct tk_backoff_s {
    double base_seconds; /* delay after the first failure */
    double multiplier;   /* growth per further failure */
    double max_seconds;  /* cap, also on a handler's retry_after */
    double jitter;       /* +- fraction, 0..1 */
} tk_backoff_t;

/* The policy as the record literal tasker.backoff_policy expects, e.g. "(1,2,60,0.15)". */
void tk_backoff_literal(const tk_backoff_t *b, char *out, size_t size);

#endif
