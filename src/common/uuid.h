/*
 * uuid.h - UUIDv7 generation (RFC 9562), formatting and parsing.
 *
 * Ids that C creates itself (correlation ids, worker ids) are version 7: 48 bits of Unix
 * milliseconds, then a 12-bit counter that keeps ids from one process strictly increasing
 * within a millisecond, then 62 random bits. Thread-safe.
 */
#ifndef TK_COMMON_UUID_H
#define TK_COMMON_UUID_H

#include <stdint.h>

#define TK_UUID_STR_LEN 37 /* 36 characters and the NUL */

typedef struct tk_uuid_s {
    uint8_t b[16];
} tk_uuid_t;

/* Generate a new version-7 UUID. Returns TK_OK, or TK_ESYS if no randomness is available. */
int tk_uuid_v7(tk_uuid_t *out);

/* Write the canonical lower-case 8-4-4-4-12 form into out (TK_UUID_STR_LEN bytes). */
void tk_uuid_format(const tk_uuid_t *u, char out[TK_UUID_STR_LEN]);

/* Parse the canonical form (either case). TK_OK or TK_EINVAL. */
int tk_uuid_parse(const char *s, tk_uuid_t *out);

/* Milliseconds since the Unix epoch stored in a version-7 UUID. */
uint64_t tk_uuid_v7_millis(const tk_uuid_t *u);

#endif
