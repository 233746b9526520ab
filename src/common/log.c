/*
 * log.c - JSON-lines logger behind tasker/log.h.
 *
 * A line is assembled in a stack buffer and written with a single write(2), so lines from
 * several threads or processes sharing a file never interleave (up to the buffer size; longer
 * messages are cut and marked with "truncated":true).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/json_esc.h"
#include "tasker/log.h"

volatile int tk_log_threshold = TK_LOG_INFO;
static volatile int log_fd = 2;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void tk_log_set_level(tk_log_level_t level)
{
    tk_log_threshold = (int)level;
}

int tk_log_level_parse(const char *name, tk_log_level_t *out)
{
    if (name == NULL)
        return TK_EINVAL;
    for (int i = 0; i <= TK_LOG_TRACE; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (tk_log_level_t)i;
            return TK_OK;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = TK_LOG_WARN;
        return TK_OK;
    }
    return TK_EINVAL;
}

void tk_log_set_fd(int fd)
{
    log_fd = fd;
}

/* Append `"key":"value"` (escaped) if value is not NULL. The line stays valid JSON when the
 * buffer runs out: the value is cut at a character boundary and its quote is still closed,
 * using the spare bytes kept beyond line->cap. */
static void add_field(tk_json_esc_t *line, const char *key, const char *value)
{
    if (value == NULL || line->truncated)
        return;
    if (line->cap - line->len < strlen(key) + 8) {
        line->truncated = true;
        return;
    }
    tk_json_esc_raw(line, ",\"");
    tk_json_esc_raw(line, key);
    tk_json_esc_raw(line, "\":\"");
    tk_json_esc_str(line, value);
    line->buf[line->len++] = '"'; /* within the spare bytes if the value was cut */
}

void tk_log_write(tk_log_level_t level, const char *component, const tk_log_ids_t *ids,
                  const char *extra_json, const char *fmt, ...)
{
    char buf[8192];
    char msg[4096];
    char ts[40];
    struct timespec now;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);

    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    tk_json_esc_t line;
    /* Keep 32 bytes spare for the truncation marker and the closing "}\n". */
    tk_json_esc_init(&line, buf, sizeof(buf) - 32);
    tk_json_esc_raw(&line, "{\"ts\":\"");
    tk_json_esc_raw(&line, ts);
    tk_json_esc_raw(&line, "\"");
    add_field(&line, "level",
              level_names[(unsigned)level <= TK_LOG_TRACE ? (unsigned)level : TK_LOG_TRACE]);
    add_field(&line, "component", component ? component : "tasker");
    if (ids != NULL) {
        add_field(&line, "correlation_id", ids->correlation_id);
        add_field(&line, "task_uuid", ids->task_uuid);
        add_field(&line, "step_uuid", ids->step_uuid);
    }
    add_field(&line, "msg", msg);
    /* Members of extra_json: drop its braces and splice the rest in. */
    if (extra_json != NULL) {
        size_t len = strlen(extra_json);
        if (len > 2 && extra_json[0] == '{' && extra_json[len - 1] == '}') {
            if (!line.truncated && len - 1 <= line.cap - line.len) {
                tk_json_esc_raw(&line, ",");
                tk_json_esc_rawn(&line, extra_json + 1, len - 2);
            } else {
                line.truncated = true;
            }
        }
    }
    if (line.truncated) {
        line.truncated = false;
        line.cap = sizeof(buf) - 2;
        tk_json_esc_raw(&line, ",\"truncated\":true");
    }
    size_t used = line.len;
    buf[used++] = '}';
    buf[used++] = '\n';
    ssize_t rc = write(log_fd, buf, used);
    (void)rc; /* nowhere to report a failure to log */
}
