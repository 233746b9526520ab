/*
 * template.h - task templates: Tasker's YAML format parsed, validated and normalized.
 *
 * A template is a named, versioned DAG of steps (reference/tasker-user-surface.md section 1).
 * Loading one parses the YAML (see yaml_tree.h for how scalars are typed), checks it, and
 * builds the normalized JSON document that is stored in named_tasks.configuration and read
 * by tasker.register_template / tasker.create_task. Its shape, always the same:
 *
 *   {"name": "...", "namespace_name": "...", "version": "...",
 *    "description": "..." | null,
 *    "identity_strategy": "strict" | "caller_provided" | "always_unique",  (only if given)
 *    "metadata": {...}, "input_schema": {...}, "lifecycle": {...},       (each only if given)
 *    "steps": [{"name": "...", "description": "..." | null,
 *               "handler": {"callable": "...", "initialization": {...},
 *                           "method": "...", "resolver": "..."},         (last two if given)
 *               "dependencies": ["parent", ...],   (always; from dependencies or depends_on)
 *               "retry": {"retryable": true, "max_attempts": 3,         (always, defaults)
 *                         "backoff": "...", "backoff_base_ms": N, "max_backoff_ms": N},
 *                                                  (backoff keys only if given; stored only)
 *               "timeout_seconds": N}, ...]}      (only if given)
 *
 * Steps and dependencies keep the file's order. metadata, input_schema, lifecycle and
 * handler.initialization are converted from YAML as they are. Keys tasker does not use yet
 * (environments, publishes_events, domain_events, system_dependencies, system_dependency,
 * result_schema, composition, ...) and unknown keys are ignored and not stored, as in Tasker
 * (no deny-unknown-fields).
 *
 * Validation (every problem is reported, see tk_template_load_file_ex: the template's keys,
 * then each step's, then dependencies and cycles):
 * name 1..255 characters; namespace_name [A-Za-z_][A-Za-z0-9_]*, at most 29 characters (the
 * queue worker_<namespace>_queue must fit); version 1..50 characters; description at most
 * 255; identity_strategy one of the three; metadata, input_schema, lifecycle mappings
 * (lifecycle's known keys checked for type and range); steps a non-empty list. Per step:
 * name 1..255 characters and unique; handler.callable 1..500 characters; handler.method and
 * handler.resolver at most 255; handler.initialization a mapping; dependencies or
 * depends_on (not both) a list of distinct names of other steps of the template;
 * retry.retryable true/false; retry.max_attempts an integer >= 0; retry.backoff
 * none|linear|exponential|fibonacci; timeout_seconds a positive integer; type (or
 * step_type) "standard" (decision, deferred_convergence, batchable and batch_worker are not
 * supported yet). The dependencies must form a DAG: cycles are named
 * (up to 5), e.g. `steps form a cycle: a -> b -> c -> a (each step depends on the next)`.
 * String keys accept any scalar as its text (`version: 1.10` is "1.10"); integer and
 * boolean keys want real YAML integers and booleans (`max_attempts: "3"` is refused).
 *
 * Messages start with the origin (the file path as given): `x.yaml: step "charge": unknown
 * dependency "validate_ordr" (line 12)`. Codes: TK_EPARSE for YAML that cannot be parsed
 * (message with line and column), TK_EINVAL for a template that breaks a rule above,
 * TK_ENOTFOUND / TK_EIO when the file cannot be read, TK_ENOMEM.
 *
 * A loaded template is immutable: any number of threads may read it at once. A set is
 * built by one thread; once complete, any number may read it.
 */
#ifndef TK_TEMPLATE_TEMPLATE_H
#define TK_TEMPLATE_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "db/conn.h"
#include "tasker/error.h"

/* Limits of the format (character counts, UTF-8). */
#define TK_TEMPLATE_NAME_MAX        255
#define TK_TEMPLATE_NAMESPACE_MAX   29
#define TK_TEMPLATE_VERSION_MAX     50
#define TK_TEMPLATE_DESCRIPTION_MAX 255
#define TK_TEMPLATE_CALLABLE_MAX    500

/* Retry defaults of a step that does not say (Tasker's). */
#define TK_TEMPLATE_DEFAULT_RETRYABLE    true
#define TK_TEMPLATE_DEFAULT_MAX_ATTEMPTS 3

/* Largest template file read (bytes). */
#define TK_TEMPLATE_FILE_MAX (16 * 1024 * 1024)

typedef struct tk_template_s tk_template_t;

/* One step, read-only. Every pointer is owned by the template that holds the step. */
typedef struct tk_template_step_s {
    const char *name;
    const char *description;         /* NULL when absent */
    const char *callable;            /* handler.callable */
    const char *method;              /* handler.method; NULL when absent ("call") */
    const char *resolver;            /* handler.resolver; NULL when absent */
    const json_t *initialization;    /* handler.initialization: a JSON object, never NULL */
    const char *const *dependencies; /* names of the parent steps, in the file's order */
    size_t dependency_count;
    bool retryable;
    int max_attempts;    /* >= 0; total attempts including the first */
    int timeout_seconds; /* > 0, or 0 when not given */
} tk_template_step_t;

/* Receives each problem found while loading, as a complete message ("<origin>: ..."). */
typedef void tk_template_problem_fn(const char *message, void *arg);

/* Load and validate the template in file `path`. On success *out is the template (free with
 * tk_template_free()); on failure *out = NULL and err holds the first problem, with
 * err->detail saying how many more there were. */
int tk_template_load_file(const char *path, tk_template_t **out, tk_error_t *err);

/* Same, and also call report(message, arg) for every problem found (report may be NULL). */
int tk_template_load_file_ex(const char *path, tk_template_problem_fn *report, void *arg,
                             tk_template_t **out, tk_error_t *err);

/* Load from `len` bytes of YAML in memory; `origin` names it in messages (NULL: "<string>").
 * report/arg as for tk_template_load_file_ex (report may be NULL). */
int tk_template_load_string(const char *yaml, size_t len, const char *origin,
                            tk_template_problem_fn *report, void *arg, tk_template_t **out,
                            tk_error_t *err);

/* Free a template. Accepts NULL. */
void tk_template_free(tk_template_t *t);

/* Identity and description. Strings owned by `t`; description is NULL when absent. */
const char *tk_template_name(const tk_template_t *t);
const char *tk_template_namespace(const tk_template_t *t);
const char *tk_template_version(const tk_template_t *t);
const char *tk_template_description(const tk_template_t *t);
/* identity_strategy as written, or NULL when absent (the database then uses "strict"). */
const char *tk_template_identity_strategy(const tk_template_t *t);
/* Where the template came from: the path (or origin) given to the loader. */
const char *tk_template_origin(const tk_template_t *t);

/* Steps in the file's order: i in [0, tk_template_step_count(t)). */
size_t tk_template_step_count(const tk_template_t *t);
const tk_template_step_t *tk_template_step(const tk_template_t *t, size_t i);
/* The step called `name`, or NULL. */
const tk_template_step_t *tk_template_step_find(const tk_template_t *t, const char *name);

/* The normalized JSON document (shape above). Owned by `t`: do not modify or free it;
 * json_incref() it to keep it longer than `t`. */
const json_t *tk_template_json(const tk_template_t *t);

/* Store `t` in the database: tasker.register_template(normalized JSON), which upserts the
 * namespace, the named task (configuration = the JSON), its step names and the namespace's
 * worker queue, in one round trip. Registering the same JSON again changes nothing.
 * TK_OK or a database error (message "could not register template <ns>/<name> <version>:
 * ...", SQLSTATE kept). */
int tk_template_register(tk_conn_t *c, const tk_template_t *t, tk_error_t *err);

/* --- sets of templates (a template directory) --- */

typedef struct tk_template_set_s tk_template_set_t;

/* List the template files under `dir`: every *.yml and *.yaml file, recursively (following
 * symbolic links, except one back to a directory being listed; names starting with "." are
 * skipped: hidden files, .git, editor backups), sorted by
 * path (strcmp). Paths are `dir` + "/" + the relative path. On success *files is a
 * malloc'ed array of *count malloc'ed strings (free with tk_template_files_free());
 * TK_ENOTFOUND if `dir` does not exist, TK_EINVAL if it is not a directory, TK_EIO. */
int tk_template_files(const char *dir, char ***files, size_t *count, tk_error_t *err);

/* Free what tk_template_files() returned. Accepts NULL. */
void tk_template_files_free(char **files, size_t count);

/* An empty set. TK_OK or TK_ENOMEM. Free with tk_template_set_free(). */
int tk_template_set_new(tk_template_set_t **out);

/* Free the set and its templates. Accepts NULL. */
void tk_template_set_free(tk_template_set_t *s);

/* Add `t` to the set, which takes ownership of it in every case (on failure `t` is freed).
 * TK_ECONFLICT if the set already holds a template with the same (namespace, name,
 * version): "<origin>: template <ns>/<name> version <v> is already defined in <origin>". */
int tk_template_set_add(tk_template_set_t *s, tk_template_t *t, tk_error_t *err);

/* Load every template file under `dir` (tk_template_files order) into a new set. The first
 * invalid file fails the whole load (its message names it), as does the same (namespace,
 * name, version) in two files (TK_ECONFLICT). An empty directory gives an empty set.
 * Free the set with tk_template_set_free(). */
int tk_template_load_dir(const char *dir, tk_template_set_t **out, tk_error_t *err);

/* Templates in the order they were added. */
size_t tk_template_set_count(const tk_template_set_t *s);
const tk_template_t *tk_template_set_get(const tk_template_set_t *s, size_t i);

/* The template with this identity, or NULL. */
const tk_template_t *tk_template_set_find(const tk_template_set_t *s, const char *namespace_name,
                                          const char *name, const char *version);

/* The distinct namespaces of the set's templates, sorted (strcmp): the queues a worker
 * serving these templates consumes. *count gets their number. Owned by the set, valid until
 * it changes. */
const char *const *tk_template_set_namespaces(const tk_template_set_t *s, size_t *count);

/* Register every template of the set, in order; stops at the first error. */
int tk_template_set_register(tk_conn_t *c, const tk_template_set_t *s, tk_error_t *err);

#endif
