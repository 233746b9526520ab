/*
 * log.h - structured logging: one JSON object per line on stderr (or a chosen fd).
 *
 * Every line has "ts" (UTC, milliseconds), "level", "component" and "msg", plus "task_uuid",
 * "step_uuid" and "correlation_id" when the caller passes them, so one task can be followed
 * across processes with grep. The level is checked before any argument is formatted.
 * The threshold and destination are process-wide; writing is thread-safe (one write(2) per
 * line).
 */
#ifndef TASKER_LOG_H
#define TASKER_LOG_H

#include "tasker/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TK_LOG_ERROR = 0,
    TK_LOG_WARN = 1,
    TK_LOG_INFO = 2,
    TK_LOG_DEBUG = 3,
    TK_LOG_TRACE = 4
} tk_log_level_t;

/* Identifiers that tie a line to a task or step; any field may be NULL. */
typedef struct tk_log_ids_s {
    const char *correlation_id;
    const char *task_uuid;
    const char *step_uuid;
} tk_log_ids_t;

/* Current threshold: lines above it are dropped before formatting. Read-only for callers. */
TK_API extern volatile int tk_log_threshold;

/* Set the threshold. Default TK_LOG_INFO. */
TK_API void tk_log_set_level(tk_log_level_t level);

/* Parse "error", "warn", "info", "debug" or "trace" (case-insensitive). TK_OK or TK_EINVAL. */
TK_API int tk_log_level_parse(const char *name, tk_log_level_t *out);

/* Send lines to `fd` instead of stderr (2). */
TK_API void tk_log_set_fd(int fd);

/* Write one line. Prefer the TK_LOG macros, which skip the call below the threshold.
 * `ids` may be NULL; `extra_json`, if not NULL, is a pre-rendered JSON object whose members
 * are appended to the line (e.g. "{\"port\":5432}"). */
TK_API void tk_log_write(tk_log_level_t level, const char *component, const tk_log_ids_t *ids,
                         const char *extra_json, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define TK_LOG(level, component, ...)                                                              \
    do {                                                                                           \
        if ((int)(level) <= tk_log_threshold)                                                      \
            tk_log_write((level), (component), NULL, NULL, __VA_ARGS__);                           \
    } while (0)

#define TK_LOG_IDS(level, component, ids, ...)                                                     \
    do {                                                                                           \
        if ((int)(level) <= tk_log_threshold)                                                      \
            tk_log_write((level), (component), (ids), NULL, __VA_ARGS__);                          \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
