/*
 * router.c - route compilation, path matching and percent-decoding (see router.h).
 *
 * Routes are compiled once into an array of segment lists; matching splits the path once,
 * decodes each segment into the caller's scratch buffer and compares it with every route of
 * the same length. With the few dozen routes of the REST API a linear scan costs well under
 * a microsecond, so there is no trie. All strings of the compiled table live in one block.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error_int.h"
#include "http/router.h"

typedef struct seg_s {
    const char *text; /* literal text, or the parameter name without braces */
    size_t len;
    bool param;
} seg_t;

typedef struct entry_s {
    tk_http_route_t route; /* method and pattern point into the router's string block */
    unsigned method_bit;
    unsigned literal_mask; /* bit (MAX - 1 - i) set when segment i is literal */
    int nsegs;
    seg_t segs[TK_HTTP_MAX_SEGMENTS];
} entry_t;

struct tk_http_router_s {
    size_t n;
    entry_t *entries;
    char *strings;
};

static const struct {
    const char *name;
    unsigned bit;
} methods[] = {
    {"GET", TK_HTTP_M_GET},         {"HEAD", TK_HTTP_M_HEAD},   {"POST", TK_HTTP_M_POST},
    {"PUT", TK_HTTP_M_PUT},         {"PATCH", TK_HTTP_M_PATCH}, {"DELETE", TK_HTTP_M_DELETE},
    {"OPTIONS", TK_HTTP_M_OPTIONS},
};

unsigned tk_http_method_bit(const char *method)
{
    if (method == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(method, methods[i].name) == 0)
            return methods[i].bit;
    return 0;
}

size_t tk_http_allow_format(unsigned allowed, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    if (allowed & TK_HTTP_M_GET)
        allowed |= TK_HTTP_M_HEAD;
    allowed |= TK_HTTP_M_OPTIONS;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (!(allowed & methods[i].bit))
            continue;
        int n = snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", methods[i].name);
        if (n < 0 || (size_t)n >= cap - len) {
            buf[len] = '\0';
            break;
        }
        len += (size_t)n;
    }
    return len;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long tk_http_pct_decode(char *dst, const char *src, size_t n, bool plus_is_space)
{
    size_t o = 0;
    /* dst <= src + i at every write, so decoding in place is safe. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            if (n - i < 3)
                return -1;
            int hi = hex_value((unsigned char)src[i + 1]);
            int lo = hex_value((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == '\0') {
            return -1;
        }
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return (long)o;
}

bool tk_http_pct_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\0')
            return false;
        if (s[i] != '%')
            continue;
        if (n - i < 3)
            return false;
        int hi = hex_value((unsigned char)s[i + 1]);
        int lo = hex_value((unsigned char)s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return false;
        i += 2;
    }
    return true;
}

int tk_http_query_decode(char *q, size_t n,
                         void (*emit)(void *cls, const char *key, const char *value), void *cls)
{
    int count = 0;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && q[i] != '&')
            i++;
        size_t end = i++; /* the pair is [start, end); i moves past the '&' */
        size_t eq = start;
        while (eq < end && q[eq] != '=')
            eq++;
        /* Decoding writes a NUL at most at q[eq] for the key and q[end] for the value, both
         * separators already consumed (or the string's own NUL at q[n]). */
        char *key = q + start;
        long klen = tk_http_pct_decode(key, q + start, eq - start, true);
        if (klen < 0)
            return -1;
        const char *value = "";
        if (eq < end) {
            char *v = key + klen + 1;
            if (tk_http_pct_decode(v, q + eq + 1, end - eq - 1, true) < 0)
                return -1;
            value = v;
        }
        if (klen == 0)
            continue;
        count++;
        if (emit != NULL)
            emit(cls, key, value);
    }
    return count;
}

static bool valid_param_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static bool valid_literal(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7F || c == '{' || c == '}' || c == '%' || c == '?' || c == '#')
            return false;
    }
    return true;
}

/* Split `pattern` (its copy `copy` has the same bytes) into e->segs, turning each '/' of the
 * copy into a NUL so that every segment text is a C string. */
static int compile_pattern(entry_t *e, char *copy, tk_error_t *err)
{
    const char *pattern = e->route.pattern;
    size_t len = strlen(copy);
    if (len == 0 || copy[0] != '/')
        return tk_error_set(err, TK_EINVAL, "invalid route pattern \"%s\": must start with '/'",
                            pattern);
    if (len > 1 && copy[len - 1] == '/')
        copy[--len] = '\0'; /* tolerate one trailing slash */
    e->nsegs = 0;
    e->literal_mask = 0;
    if (len == 1)
        return TK_OK;
    size_t i = 1;
    for (;;) {
        size_t start = i;
        while (i < len && copy[i] != '/')
            i++;
        size_t n = i - start;
        if (e->nsegs == TK_HTTP_MAX_SEGMENTS)
            return tk_error_set(err, TK_EINVAL,
                                "invalid route pattern \"%s\": more than %d segments", pattern,
                                TK_HTTP_MAX_SEGMENTS);
        if (n == 0)
            return tk_error_set(err, TK_EINVAL, "invalid route pattern \"%s\": empty segment",
                                pattern);
        seg_t *s = &e->segs[e->nsegs];
        copy[i] = '\0';
        if (copy[start] == '{') {
            if (n < 3 || copy[i - 1] != '}' || !valid_param_name(copy + start + 1, n - 2))
                return tk_error_set(err, TK_EINVAL,
                                    "invalid route pattern \"%s\": bad parameter \"%s\"", pattern,
                                    copy + start);
            copy[i - 1] = '\0';
            s->text = copy + start + 1;
            s->len = n - 2;
            s->param = true;
            for (int k = 0; k < e->nsegs; k++)
                if (e->segs[k].param && strcmp(e->segs[k].text, s->text) == 0)
                    return tk_error_set(err, TK_EINVAL,
                                        "invalid route pattern \"%s\": parameter \"%s\" repeated",
                                        pattern, s->text);
        } else {
            if (!valid_literal(copy + start, n))
                return tk_error_set(err, TK_EINVAL,
                                    "invalid route pattern \"%s\": bad segment \"%s\"", pattern,
                                    copy + start);
            s->text = copy + start;
            s->len = n;
            s->param = false;
            e->literal_mask |= 1u << (TK_HTTP_MAX_SEGMENTS - 1 - e->nsegs);
        }
        e->nsegs++;
        if (i >= len)
            break;
        i++;
    }
    return TK_OK;
}

int tk_http_router_new(const tk_http_route_t *routes, size_t n, tk_http_router_t **out,
                       tk_error_t *err)
{
    *out = NULL;
    if (n > 0 && routes == NULL)
        return tk_error_set(err, TK_EINVAL, "invalid route table: NULL with %zu routes", n);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (routes[i].method == NULL || routes[i].pattern == NULL || routes[i].handler == NULL)
            return tk_error_set(err, TK_EINVAL,
                                "invalid route %zu: NULL method, pattern or handler", i);
        if (tk_http_method_bit(routes[i].method) == 0)
            return tk_error_set(err, TK_EINVAL, "invalid route \"%s %s\": unsupported method",
                                routes[i].method, routes[i].pattern);
        /* method, pattern as given, pattern split into segments */
        bytes += strlen(routes[i].method) + 1 + 2 * (strlen(routes[i].pattern) + 1);
    }
    tk_http_router_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return tk_error_set(err, TK_ENOMEM, "could not allocate router");
    r->entries = calloc(n ? n : 1, sizeof(entry_t));
    r->strings = malloc(bytes ? bytes : 1);
    if (r->entries == NULL || r->strings == NULL) {
        tk_http_router_free(r);
        return tk_error_set(err, TK_ENOMEM, "could not allocate router");
    }
    r->n = n;
    char *p = r->strings;
    for (size_t i = 0; i < n; i++) {
        entry_t *e = &r->entries[i];
        size_t ml = strlen(routes[i].method) + 1, pl = strlen(routes[i].pattern) + 1;
        memcpy(p, routes[i].method, ml);
        e->route.method = p;
        p += ml;
        memcpy(p, routes[i].pattern, pl);
        e->route.pattern = p;
        p += pl;
        memcpy(p, routes[i].pattern, pl);
        e->route.handler = routes[i].handler;
        e->method_bit = tk_http_method_bit(routes[i].method);
        int rc = compile_pattern(e, p, err);
        if (rc != TK_OK) {
            tk_http_router_free(r);
            return rc;
        }
        p += pl;
    }
    *out = r;
    return TK_OK;
}

void tk_http_router_free(tk_http_router_t *r)
{
    if (r == NULL)
        return;
    free(r->entries);
    free(r->strings);
    free(r);
}

static bool segments_match(const entry_t *e, const char *const *segs, const size_t *lens)
{
    for (int i = 0; i < e->nsegs; i++) {
        const seg_t *s = &e->segs[i];
        if (s->param) {
            if (lens[i] == 0)
                return false;
        } else if (s->len != lens[i] || memcmp(s->text, segs[i], lens[i]) != 0) {
            return false;
        }
    }
    return true;
}

tk_http_route_result_t tk_http_router_match(const tk_http_router_t *r, const char *method,
                                            const char *path, size_t path_len, char *scratch,
                                            tk_http_match_t *m)
{
    m->route = NULL;
    m->allowed = 0;
    m->nparams = 0;
    if (path_len == 0 || path[0] != '/')
        return TK_HTTP_ROUTE_NOT_FOUND;

    /* Split and decode the path. */
    const char *segs[TK_HTTP_MAX_SEGMENTS];
    size_t lens[TK_HTTP_MAX_SEGMENTS];
    int nsegs = 0;
    size_t len = path_len;
    if (len > 1 && path[len - 1] == '/')
        len--;
    char *o = scratch;
    if (len > 1) {
        size_t i = 1;
        for (;;) {
            size_t start = i;
            while (i < len && path[i] != '/')
                i++;
            if (nsegs == TK_HTTP_MAX_SEGMENTS)
                return tk_http_pct_valid(path, path_len) ? TK_HTTP_ROUTE_NOT_FOUND
                                                         : TK_HTTP_ROUTE_BAD_PATH;
            long dl = tk_http_pct_decode(o, path + start, i - start, false);
            if (dl < 0)
                return TK_HTTP_ROUTE_BAD_PATH;
            segs[nsegs] = o;
            lens[nsegs++] = (size_t)dl;
            o += dl + 1;
            if (i >= len)
                break;
            i++;
        }
    }

    unsigned want = tk_http_method_bit(method);
    const entry_t *best = NULL, *best_get = NULL;
    for (size_t k = 0; k < r->n; k++) {
        const entry_t *e = &r->entries[k];
        if (e->nsegs != nsegs || !segments_match(e, segs, lens))
            continue;
        m->allowed |= e->method_bit;
        if (want != 0 && e->method_bit == want &&
            (best == NULL || e->literal_mask > best->literal_mask))
            best = e;
        if (want == TK_HTTP_M_HEAD && e->method_bit == TK_HTTP_M_GET &&
            (best_get == NULL || e->literal_mask > best_get->literal_mask))
            best_get = e;
    }
    if (m->allowed & TK_HTTP_M_GET)
        m->allowed |= TK_HTTP_M_HEAD;
    if (best == NULL)
        best = best_get;
    if (best == NULL)
        return m->allowed ? TK_HTTP_ROUTE_METHOD_NOT_ALLOWED : TK_HTTP_ROUTE_NOT_FOUND;
    m->route = &best->route;
    for (int i = 0; i < nsegs; i++) {
        if (!best->segs[i].param)
            continue;
        m->params[m->nparams].name = best->segs[i].text;
        m->params[m->nparams++].value = segs[i];
    }
    return TK_HTTP_ROUTE_FOUND;
}
