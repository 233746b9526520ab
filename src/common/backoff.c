/*
 * backoff.c - formatting of the retry backoff policy (see backoff.h).
 */
#include <stdio.h>

#include "common/backoff.h"

void tk_backoff_literal(const tk_backoff_t *b, char *out, size_t size)
{
    snprintf(out, size, "(%.17g,%.17g,%.17g,%.17g)", b->base_seconds, b->multiplier, b->max_seconds,
             b->jitter);
}
