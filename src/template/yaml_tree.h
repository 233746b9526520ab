/*
 * yaml_tree.h - one YAML document as a small read-only tree, for the template loader.
 *
 * Built from libyaml's event stream so that every node keeps its position (for messages) and
 * its scalar's exact text, style and tag. Scalars are resolved with the YAML 1.2 core schema,
 * as Tasker's serde_yaml does:
 *   null   ~, null, Null, NULL, or nothing at all
 *   bool   true, True, TRUE, false, False, FALSE (not yes/no/on/off: those stay strings)
 *   int    [-+]?[0-9]+, 0x[0-9a-fA-F]+, 0o[0-7]+ (a decimal too large for int64 is a float)
 *   float  [-+]?(.[0-9]+|[0-9]+(.[0-9]*)?)([eE][-+]?[0-9]+)?
 *   string anything else, every quoted or block scalar, and .inf/.nan (JSON has no such
 *          numbers); explicit tags !!str, !!int, !!float, !!bool, !!null are honoured
 * Aliases point at the anchored node (shared, not copied); merge keys (<<) are applied when a
 * mapping ends: its own keys first, then the merged mappings' keys it does not have, earlier
 * sources winning. Limits, checked while parsing: nesting depth (aliases included) of
 * TK_YAML_MAX_DEPTH, and TK_YAML_MAX_NODES nodes once aliases are expanded (so a "billion
 * laughs" document is refused instead of converted). Errors (all TK_EPARSE, or TK_ENOMEM):
 * libyaml syntax errors with line and column, a second document in the stream, duplicate
 * keys, non-scalar keys, unknown aliases, NUL characters in a scalar, the limits above.
 *
 * Not thread-safe per document; separate documents are independent.
 */
#ifndef TK_TEMPLATE_YAML_TREE_H
#define TK_TEMPLATE_YAML_TREE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tasker/error.h"

#define TK_YAML_MAX_DEPTH 256
#define TK_YAML_MAX_NODES 1000000

typedef enum {
    TK_YAML_SCALAR,
    TK_YAML_SEQUENCE,
    TK_YAML_MAPPING,
} tk_yaml_kind_t;

/* Resolved type of a scalar. */
typedef enum {
    TK_YAML_NULL,
    TK_YAML_BOOL,
    TK_YAML_INT,
    TK_YAML_FLOAT,
    TK_YAML_STRING,
} tk_yaml_type_t;

typedef struct tk_yaml_node_s tk_yaml_node_t;
struct tk_yaml_node_s {
    tk_yaml_kind_t kind;
    size_t line;   /* 1-based position of the node's first character */
    size_t column; /* 1-based */
    /* Scalars: the text exactly as written (NUL-terminated, no NUL inside) and its type. */
    char *text;
    size_t len;
    tk_yaml_type_t type;
    bool boolean;    /* TK_YAML_BOOL */
    int64_t integer; /* TK_YAML_INT */
    double real;     /* TK_YAML_FLOAT */
    /* Sequences: items[0..count). Mappings: count pairs, items[2i] the key (always a scalar),
     * items[2i+1] its value. */
    tk_yaml_node_t **items;
    size_t count;
    /* Private to the parser. */
    size_t nitems, cap, height, weight;
    bool merge_key;
    char *anchor;
    tk_yaml_node_t *next;
};

typedef struct tk_yaml_doc_s tk_yaml_doc_t;

/* Parse `len` bytes of YAML (UTF-8, -16 with BOM). `origin` (e.g. the file name) starts every
 * message: "<origin>: line L: could not parse YAML: <problem> at column C (<context> at line
 * K)". On success *out holds the document, whose root may be NULL for an empty stream; free
 * it with tk_yaml_doc_free(). On failure *out = NULL and err says why. */
int tk_yaml_doc_parse(const char *text, size_t len, const char *origin, tk_yaml_doc_t **out,
                      tk_error_t *err);

/* Free a document and every node in it. Accepts NULL. */
void tk_yaml_doc_free(tk_yaml_doc_t *doc);

/* The root node, or NULL for a stream without a document. */
const tk_yaml_node_t *tk_yaml_doc_root(const tk_yaml_doc_t *doc);

/* True for a scalar that resolved to null (and for a NULL node). */
bool tk_yaml_is_null(const tk_yaml_node_t *n);

/* The value of `key` in mapping `map` (merges applied), or NULL when `map` is not a mapping
 * or has no such key. */
const tk_yaml_node_t *tk_yaml_get(const tk_yaml_node_t *map, const char *key);

/* A short description of what `n` is, for messages: "a string", "a list", "a mapping",
 * "an integer", "a number", "a boolean", "null". */
const char *tk_yaml_describe(const tk_yaml_node_t *n);

/* `n` converted to JSON: null, true/false, integers, reals, strings, arrays and objects
 * (mapping keys become their scalar's text). A new reference, or NULL if out of memory. */
json_t *tk_yaml_to_json(const tk_yaml_node_t *n);

#endif
