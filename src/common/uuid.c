/*
 * uuid.c - UUIDv7 with a per-process monotonic counter (RFC 9562 section 6.2, method 1).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/uuid.h"
#include "tasker/error.h"

static pthread_mutex_t v7_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t v7_last_ms;
static uint16_t v7_counter; /* 12 bits used */

static int fill_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0)
            return TK_ESYS;
        p += got;
        n -= (size_t)got;
    }
    return TK_OK;
}

int tk_uuid_v7(tk_uuid_t *out)
{
    uint8_t rnd[10];
    if (fill_random(rnd, sizeof(rnd)) != TK_OK)
        return TK_ESYS;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;

    pthread_mutex_lock(&v7_lock);
    if (ms > v7_last_ms) {
        v7_last_ms = ms;
        v7_counter = (uint16_t)(((rnd[0] << 8) | rnd[1]) & 0x3FF); /* leave headroom */
    } else {
        /* Same millisecond (or the clock went back): keep the last time, bump the counter,
         * and borrow the next millisecond when the 12 bits run out. */
        ms = v7_last_ms;
        if (++v7_counter > 0xFFF) {
            v7_last_ms = ++ms;
            v7_counter = 0;
        }
    }
    uint16_t counter = v7_counter;
    pthread_mutex_unlock(&v7_lock);

    for (int i = 0; i < 6; i++)
        out->b[i] = (uint8_t)(ms >> (40 - 8 * i));
    out->b[6] = (uint8_t)(0x70 | ((counter >> 8) & 0x0F));
    out->b[7] = (uint8_t)(counter & 0xFF);
    out->b[8] = (uint8_t)(0x80 | (rnd[2] & 0x3F));
    memcpy(&out->b[9], &rnd[3], 7);
    return TK_OK;
}

void tk_uuid_format(const tk_uuid_t *u, char out[TK_UUID_STR_LEN])
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[u->b[i] >> 4];
        *p++ = hex[u->b[i] & 0x0F];
    }
    *p = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int tk_uuid_parse(const char *s, tk_uuid_t *out)
{
    if (s == NULL || strlen(s) != 36)
        return TK_EINVAL;
    int byte = 0;
    for (int i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return TK_EINVAL;
            i++;
            continue;
        }
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
        if (hi < 0 || lo < 0)
            return TK_EINVAL;
        out->b[byte++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return TK_OK;
}

uint64_t tk_uuid_v7_millis(const tk_uuid_t *u)
{
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | u->b[i];
    return ms;
}
