/*
 * yaml_tree.c - libyaml events to a tree of nodes with positions (see yaml_tree.h).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/error_int.h"
#include "template/yaml_tree.h"

struct tk_yaml_doc_s {
    tk_yaml_node_t *root;
    tk_yaml_node_t *all; /* every node, for freeing */
};

/* Parser state while events arrive. */
typedef struct builder_s {
    tk_yaml_doc_t *doc;
    const char *origin;
    tk_error_t *err;
    tk_yaml_node_t **stack; /* open sequences and mappings */
    size_t depth, stack_cap;
    json_t *anchor_index;      /* anchor name -> index into anchored */
    tk_yaml_node_t **anchored; /* nodes by anchor index */
    size_t nanchored, anchored_cap;
    int documents;
} builder_t;

#define TAG_PREFIX "tag:yaml.org,2002:"

static int fail(builder_t *b, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A parse error at `line` (1-based): "<origin>: line L: could not parse YAML: <msg>". */
static int fail(builder_t *b, size_t line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return tk_error_set(b->err, TK_EPARSE, "%s: line %zu: could not parse YAML: %s", b->origin,
                        line, msg);
}

static int oom(builder_t *b)
{
    return tk_error_set(b->err, TK_ENOMEM, "%s: could not parse YAML: out of memory", b->origin);
}

/* Grow *arr (of element size `size`) so that it holds at least `need` elements. */
static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return TK_OK;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * size);
    if (p == NULL)
        return TK_ENOMEM;
    *arr = p;
    *cap = n;
    return TK_OK;
}

static tk_yaml_node_t *node_new(builder_t *b, tk_yaml_kind_t kind, const yaml_mark_t *mark)
{
    tk_yaml_node_t *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->line = mark->line + 1;
    n->column = mark->column + 1;
    n->height = 1;
    n->weight = 1;
    n->next = b->doc->all;
    b->doc->all = n;
    return n;
}

/* --- scalar resolution (YAML 1.2 core schema) --- */

static bool is_null_text(const char *s)
{
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* 1 for true, 0 for false, -1 for neither. */
static int bool_text(const char *s)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
        return 1;
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
        return 0;
    return -1;
}

static bool all_in(const char *s, const char *set)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (strchr(set, *s) == NULL)
            return false;
    return true;
}

/* Resolve an integer: TK_OK with *out, or TK_EINVAL when `s` is not one. A decimal that does
 * not fit int64 is reported through *too_big (the caller makes it a float). */
static int int_text(const char *s, int64_t *out, bool *too_big)
{
    *too_big = false;
    int base = 10;
    const char *digits = s;
    if (s[0] == '0' && s[1] == 'x') {
        base = 16;
        digits = s + 2;
        if (!all_in(digits, "0123456789abcdefABCDEF"))
            return TK_EINVAL;
    } else if (s[0] == '0' && s[1] == 'o') {
        base = 8;
        digits = s + 2;
        if (!all_in(digits, "01234567"))
            return TK_EINVAL;
    } else {
        if (*digits == '-' || *digits == '+')
            digits++;
        if (!all_in(digits, "0123456789"))
            return TK_EINVAL;
        digits = s;
    }
    errno = 0;
    char *end;
    long long v = strtoll(digits, &end, base);
    if (errno == ERANGE || *end != '\0') {
        *too_big = base == 10;
        return TK_EINVAL;
    }
    *out = v;
    return TK_OK;
}

static bool float_syntax(const char *s)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    size_t before = 0, after = 0;
    while (*p >= '0' && *p <= '9') {
        p++;
        before++;
    }
    bool dot = false, exp = false;
    if (*p == '.') {
        dot = true;
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            after++;
        }
    }
    if (before == 0 && after == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        exp = true;
        p++;
        if (*p == '-' || *p == '+')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0' && (dot || exp || before > 0);
}

/* A finite double for `s`, or TK_EINVAL. strtod follows LC_NUMERIC, which tasker never
 * changes from "C" (nor do the Ruby and Python runtimes, which only set LC_CTYPE). */
static int float_text(const char *s, double *out)
{
    if (!float_syntax(s))
        return TK_EINVAL;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0' || !isfinite(v) || errno == ERANGE)
        return TK_EINVAL;
    *out = v;
    return TK_OK;
}

/* Type of a plain, untagged scalar. */
static void resolve_plain(tk_yaml_node_t *n)
{
    int b;
    bool too_big;
    if (is_null_text(n->text)) {
        n->type = TK_YAML_NULL;
    } else if ((b = bool_text(n->text)) >= 0) {
        n->type = TK_YAML_BOOL;
        n->boolean = b == 1;
    } else if (int_text(n->text, &n->integer, &too_big) == TK_OK) {
        n->type = TK_YAML_INT;
    } else if (float_text(n->text, &n->real) == TK_OK) {
        n->type = TK_YAML_FLOAT;
    } else {
        n->type = TK_YAML_STRING;
    }
}

/* Type of a scalar given its tag (NULL: none) and style. */
static int resolve_scalar(builder_t *b, tk_yaml_node_t *n, const char *tag, yaml_scalar_style_t st)
{
    n->type = TK_YAML_STRING;
    if (tag == NULL) {
        if (st == YAML_PLAIN_SCALAR_STYLE)
            resolve_plain(n);
        n->merge_key = st == YAML_PLAIN_SCALAR_STYLE && strcmp(n->text, "<<") == 0;
        return TK_OK;
    }
    if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) != 0)
        return TK_OK; /* "!" or an application tag: the text as a string */
    const char *t = tag + strlen(TAG_PREFIX);
    bool too_big;
    int bv;
    if (strcmp(t, "null") == 0) {
        if (!is_null_text(n->text))
            return fail(b, n->line, "\"%s\" tagged !!null is not null", n->text);
        n->type = TK_YAML_NULL;
    } else if (strcmp(t, "bool") == 0) {
        if ((bv = bool_text(n->text)) < 0)
            return fail(b, n->line, "\"%s\" tagged !!bool is not true or false", n->text);
        n->type = TK_YAML_BOOL;
        n->boolean = bv == 1;
    } else if (strcmp(t, "int") == 0) {
        if (int_text(n->text, &n->integer, &too_big) != TK_OK)
            return fail(b, n->line, "\"%s\" tagged !!int is not a 64-bit integer", n->text);
        n->type = TK_YAML_INT;
    } else if (strcmp(t, "float") == 0) {
        if (float_text(n->text, &n->real) != TK_OK)
            return fail(b, n->line, "\"%s\" tagged !!float is not a finite number", n->text);
        n->type = TK_YAML_FLOAT;
    } else if (strcmp(t, "merge") == 0) {
        n->merge_key = true;
    }
    return TK_OK;
}

/* --- tree building --- */

static int attach(builder_t *b, tk_yaml_node_t *n)
{
    if (b->depth == 0) {
        b->doc->root = n;
        return TK_OK;
    }
    tk_yaml_node_t *parent = b->stack[b->depth - 1];
    if (parent->kind == TK_YAML_MAPPING && parent->nitems % 2 == 0 && n->kind != TK_YAML_SCALAR)
        return fail(b, n->line, "mapping keys must be scalars, not %s", tk_yaml_describe(n));
    if (grow((void **)&parent->items, &parent->cap, parent->nitems + 1, sizeof(*parent->items)))
        return oom(b);
    parent->items[parent->nitems++] = n;
    return TK_OK;
}

static int remember_anchor(builder_t *b, const yaml_char_t *anchor, tk_yaml_node_t *n)
{
    if (anchor == NULL)
        return TK_OK;
    if (grow((void **)&b->anchored, &b->anchored_cap, b->nanchored + 1, sizeof(*b->anchored)))
        return oom(b);
    b->anchored[b->nanchored] = n;
    /* A later anchor of the same name replaces the earlier one (YAML 1.2 section 3.2.2.2). */
    if (json_object_set_new(b->anchor_index, (const char *)anchor,
                            json_integer((json_int_t)b->nanchored)) != 0)
        return oom(b);
    b->nanchored++;
    return TK_OK;
}

/* Account for child `c` in the height and expanded weight of container `n`. */
static void add_weight(tk_yaml_node_t *n, const tk_yaml_node_t *c)
{
    if (c->height + 1 > n->height)
        n->height = c->height + 1;
    n->weight += c->weight;
    if (n->weight > TK_YAML_MAX_NODES + 1)
        n->weight = TK_YAML_MAX_NODES + 1; /* saturate */
}

/* Apply merge keys and reject duplicate keys of a mapping that just ended. */
static int finish_mapping(builder_t *b, tk_yaml_node_t *m)
{
    json_t *seen = json_object();
    tk_yaml_node_t **out = NULL;
    size_t nout = 0, cap = 0;
    int rc = TK_OK;
    if (seen == NULL)
        return oom(b);
    /* Own keys first. */
    for (size_t i = 0; i + 1 < m->nitems && rc == TK_OK; i += 2) {
        tk_yaml_node_t *k = m->items[i];
        if (k->merge_key)
            continue;
        if (json_object_get(seen, k->text) != NULL) {
            rc = fail(b, k->line, "duplicate key \"%s\" in the mapping that starts at line %zu",
                      k->text, m->line);
            break;
        }
        if (json_object_set_new(seen, k->text, json_true()) != 0 ||
            grow((void **)&out, &cap, nout + 2, sizeof(*out)) != TK_OK) {
            rc = oom(b);
            break;
        }
        out[nout++] = k;
        out[nout++] = m->items[i + 1];
    }
    /* Then what merge keys bring in, earlier sources first. */
    for (size_t i = 0; i + 1 < m->nitems && rc == TK_OK; i += 2) {
        if (!m->items[i]->merge_key)
            continue;
        tk_yaml_node_t *v = m->items[i + 1];
        size_t nsrc = v->kind == TK_YAML_SEQUENCE ? v->nitems : 1;
        for (size_t s = 0; s < nsrc && rc == TK_OK; s++) {
            tk_yaml_node_t *src = v->kind == TK_YAML_SEQUENCE ? v->items[s] : v;
            if (src->kind != TK_YAML_MAPPING) {
                rc = fail(b, src->line,
                          "the value of a merge key (<<) must be a mapping or a list of "
                          "mappings, not %s",
                          tk_yaml_describe(src));
                break;
            }
            for (size_t j = 0; j < src->count; j++) {
                tk_yaml_node_t *k = src->items[2 * j];
                if (json_object_get(seen, k->text) != NULL)
                    continue;
                if (json_object_set_new(seen, k->text, json_true()) != 0 ||
                    grow((void **)&out, &cap, nout + 2, sizeof(*out)) != TK_OK) {
                    rc = oom(b);
                    break;
                }
                out[nout++] = k;
                out[nout++] = src->items[2 * j + 1];
            }
        }
    }
    json_decref(seen);
    if (rc != TK_OK) {
        free(out);
        return rc;
    }
    free(m->items);
    m->items = out;
    m->nitems = nout;
    m->cap = cap;
    m->count = nout / 2;
    m->height = 1;
    m->weight = 1;
    for (size_t i = 0; i < nout; i++)
        add_weight(m, out[i]);
    return TK_OK;
}

/* A sequence or mapping ended: finish it, check the limits, attach it to its parent. */
static int close_container(builder_t *b, const yaml_event_t *ev)
{
    tk_yaml_node_t *n = b->stack[--b->depth];
    int rc;
    if (n->kind == TK_YAML_MAPPING) {
        if ((rc = finish_mapping(b, n)) != TK_OK)
            return rc;
    } else {
        n->count = n->nitems;
        for (size_t i = 0; i < n->nitems; i++)
            add_weight(n, n->items[i]);
    }
    if (n->height > TK_YAML_MAX_DEPTH)
        return fail(b, ev->end_mark.line + 1, "nesting (aliases included) deeper than %d levels",
                    TK_YAML_MAX_DEPTH);
    if (n->weight > TK_YAML_MAX_NODES)
        return fail(b, n->line, "aliases expand to more than %d nodes", TK_YAML_MAX_NODES);
    if ((rc = remember_anchor(b, (const yaml_char_t *)n->anchor, n)) != TK_OK)
        return rc;
    free(n->anchor);
    n->anchor = NULL;
    return attach(b, n);
}

static int open_container(builder_t *b, const yaml_event_t *ev, tk_yaml_kind_t kind,
                          const yaml_char_t *anchor)
{
    if (b->depth >= TK_YAML_MAX_DEPTH)
        return fail(b, ev->start_mark.line + 1, "nesting deeper than %d levels", TK_YAML_MAX_DEPTH);
    tk_yaml_node_t *n = node_new(b, kind, &ev->start_mark);
    if (n == NULL)
        return oom(b);
    if (anchor != NULL && (n->anchor = strdup((const char *)anchor)) == NULL)
        return oom(b);
    if (grow((void **)&b->stack, &b->stack_cap, b->depth + 1, sizeof(*b->stack)))
        return oom(b);
    b->stack[b->depth++] = n;
    return TK_OK;
}

static int on_scalar(builder_t *b, const yaml_event_t *ev)
{
    const char *value = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(value, '\0', len) != NULL)
        return fail(b, ev->start_mark.line + 1, "scalars must not contain NUL characters");
    tk_yaml_node_t *n = node_new(b, TK_YAML_SCALAR, &ev->start_mark);
    if (n == NULL || (n->text = malloc(len + 1)) == NULL)
        return oom(b);
    memcpy(n->text, value, len);
    n->text[len] = '\0';
    n->len = len;
    int rc = resolve_scalar(b, n, (const char *)ev->data.scalar.tag, ev->data.scalar.style);
    if (rc == TK_OK)
        rc = remember_anchor(b, ev->data.scalar.anchor, n);
    return rc == TK_OK ? attach(b, n) : rc;
}

static int on_alias(builder_t *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    json_t *idx = json_object_get(b->anchor_index, name);
    if (idx == NULL)
        return fail(b, ev->start_mark.line + 1, "unknown alias \"*%s\"", name);
    tk_yaml_node_t *target = b->anchored[json_integer_value(idx)];
    if (target->merge_key)
        return fail(b, ev->start_mark.line + 1, "an alias cannot stand for a merge key");
    return attach(b, target);
}

static int on_event(builder_t *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1)
            return fail(b, ev->start_mark.line + 1,
                        "the file holds more than one YAML document (only one is allowed)");
        return TK_OK;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return open_container(b, ev, TK_YAML_SEQUENCE, ev->data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT:
        return open_container(b, ev, TK_YAML_MAPPING, ev->data.mapping_start.anchor);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return close_container(b, ev);
    default:
        return TK_OK;
    }
}

/* Turn libyaml's error into ours. */
static int syntax_error(builder_t *b, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return oom(b);
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_READER_ERROR) {
        return tk_error_set(b->err, TK_EPARSE,
                            "%s: could not parse YAML: %s at byte %zu (the file must be UTF-8 or "
                            "UTF-16 text)",
                            b->origin, problem, p->problem_offset);
    }
    if (p->context != NULL)
        return fail(b, p->problem_mark.line + 1, "%s at column %zu (%s at line %zu)", problem,
                    p->problem_mark.column + 1, p->context, p->context_mark.line + 1);
    return fail(b, p->problem_mark.line + 1, "%s at column %zu", problem,
                p->problem_mark.column + 1);
}

int tk_yaml_doc_parse(const char *text, size_t len, const char *origin, tk_yaml_doc_t **out,
                      tk_error_t *err)
{
    *out = NULL;
    builder_t b = {.origin = origin ? origin : "<string>", .err = err};
    b.doc = calloc(1, sizeof(*b.doc));
    b.anchor_index = json_object();
    if (b.doc == NULL || b.anchor_index == NULL) {
        free(b.doc);
        json_decref(b.anchor_index);
        return oom(&b);
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        free(b.doc);
        json_decref(b.anchor_index);
        return oom(&b);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = TK_OK;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = syntax_error(&b, &parser);
            break;
        }
        rc = on_event(&b, &ev);
        bool end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (rc != TK_OK || end)
            break;
    }
    yaml_parser_delete(&parser);
    free(b.stack); /* containers still open on error are freed with the document */
    free(b.anchored);
    json_decref(b.anchor_index);
    if (rc != TK_OK) {
        tk_yaml_doc_free(b.doc);
        return rc;
    }
    *out = b.doc;
    return TK_OK;
}

void tk_yaml_doc_free(tk_yaml_doc_t *doc)
{
    if (doc == NULL)
        return;
    tk_yaml_node_t *n = doc->all;
    while (n != NULL) {
        tk_yaml_node_t *next = n->next;
        free(n->text);
        free(n->items);
        free(n->anchor);
        free(n);
        n = next;
    }
    free(doc);
}

const tk_yaml_node_t *tk_yaml_doc_root(const tk_yaml_doc_t *doc)
{
    return doc ? doc->root : NULL;
}

bool tk_yaml_is_null(const tk_yaml_node_t *n)
{
    return n == NULL || (n->kind == TK_YAML_SCALAR && n->type == TK_YAML_NULL);
}

const tk_yaml_node_t *tk_yaml_get(const tk_yaml_node_t *map, const char *key)
{
    if (map == NULL || map->kind != TK_YAML_MAPPING)
        return NULL;
    for (size_t i = 0; i < map->count; i++)
        if (strcmp(map->items[2 * i]->text, key) == 0)
            return map->items[2 * i + 1];
    return NULL;
}

const char *tk_yaml_describe(const tk_yaml_node_t *n)
{
    if (n == NULL)
        return "nothing";
    switch (n->kind) {
    case TK_YAML_SEQUENCE:
        return "a list";
    case TK_YAML_MAPPING:
        return "a mapping";
    case TK_YAML_SCALAR:
        break;
    }
    switch (n->type) {
    case TK_YAML_NULL:
        return "null";
    case TK_YAML_BOOL:
        return "a boolean";
    case TK_YAML_INT:
        return "an integer";
    case TK_YAML_FLOAT:
        return "a number";
    case TK_YAML_STRING:
        break;
    }
    return "a string";
}

json_t *tk_yaml_to_json(const tk_yaml_node_t *n)
{
    if (n->kind == TK_YAML_SCALAR) {
        switch (n->type) {
        case TK_YAML_NULL:
            return json_null();
        case TK_YAML_BOOL:
            return json_boolean(n->boolean);
        case TK_YAML_INT:
            return json_integer((json_int_t)n->integer);
        case TK_YAML_FLOAT:
            return json_real(n->real);
        case TK_YAML_STRING:
            break;
        }
        return json_stringn(n->text, n->len);
    }
    json_t *out = n->kind == TK_YAML_SEQUENCE ? json_array() : json_object();
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n->count; i++) {
        int rc;
        if (n->kind == TK_YAML_SEQUENCE) {
            rc = json_array_append_new(out, tk_yaml_to_json(n->items[i]));
        } else {
            rc = json_object_set_new(out, n->items[2 * i]->text,
                                     tk_yaml_to_json(n->items[2 * i + 1]));
        }
        if (rc != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
