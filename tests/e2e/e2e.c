/*
 * e2e.c - process and HTTP helpers for the end-to-end tests (see e2e.h).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/json_util.h"
#include "e2e.h"

static char test_name[64] = "e2e";

void e2e_init(const char *name)
{
    snprintf(test_name, sizeof(test_name), "%s", name);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
}

const char *e2e_source_path(const char *relative)
{
    static char path[1024];
    const char *root = getenv("TK_SOURCE_DIR");
    if (root == NULL)
        fail_msg("TK_SOURCE_DIR is not set: run through ctest");
    snprintf(path, sizeof(path), "%s/%s", root, relative);
    return path;
}

const char *e2e_build_path(const char *relative)
{
    static char path[1024];
    const char *bin = getenv("TASKER_BIN");
    if (bin == NULL)
        fail_msg("TASKER_BIN is not set: run through ctest");
    const char *slash = strrchr(bin, '/');
    snprintf(path, sizeof(path), "%.*s/%s", slash ? (int)(slash - bin) : 1, slash ? bin : ".",
             relative);
    return path;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Spawn `bin` with argv, stderr to the log file, and read its first stdout line (the
 * banner, which ends in ":<port>" or ":<port>/health"). */
static e2e_proc_t spawn_program(const char *label, const char *bin, const char *const *argv)
{
    mkdir("e2e-logs", 0755);
    char log[256];
    snprintf(log, sizeof(log), "e2e-logs/%s-%s.log", test_name, label);
    int out[2];
    if (pipe(out) != 0)
        fail_msg("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* a failed test exits early: take the process along */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        dup2(out[1], 1);
        close(out[0]);
        const char *args[64] = {bin};
        int n = 1;
        for (; argv[n - 1] != NULL && n < 63; n++)
            args[n] = argv[n - 1];
        args[n] = NULL;
        execvp(bin, (char *const *)args);
        _exit(127);
    }
    close(out[1]);
    e2e_proc_t p = {.pid = pid};
    snprintf(p.label, sizeof(p.label), "%s", label);
    char banner[512] = "";
    size_t len = 0;
    long long deadline = now_ms() + 30000;
    while (len < sizeof(banner) - 1 && strchr(banner, '\n') == NULL && now_ms() < deadline) {
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        if (poll(&pfd, 1, 200) <= 0)
            continue;
        ssize_t got = read(out[0], banner + len, sizeof(banner) - 1 - len);
        if (got <= 0)
            break;
        len += (size_t)got;
        banner[len] = '\0';
    }
    close(out[0]); /* later writes to stdout are dropped (SIGPIPE is ignored by tasker) */
    const char *colon = strrchr(banner, ':');
    if (strchr(banner, '\n') == NULL || colon == NULL)
        fail_msg("%s did not start (banner \"%s\"); see build/tests/%s", label, banner, log);
    p.port = (int)strtol(colon + 1, NULL, 10);
    return p;
}

static e2e_proc_t spawn(const char *label, const char *const *argv)
{
    const char *bin = getenv("TASKER_BIN");
    if (bin == NULL)
        fail_msg("TASKER_BIN is not set: run through ctest");
    return spawn_program(label, bin, argv);
}

e2e_proc_t e2e_start_program(const char *label, const char *const *argv)
{
    return spawn_program(label, argv[0], argv + 1);
}

static e2e_proc_t start(const char *label, const char *const *base, const char *const *extra)
{
    const char *argv[64];
    int n = 0;
    for (; base[n] != NULL; n++)
        argv[n] = base[n];
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return spawn(label, argv);
}

e2e_proc_t e2e_start_server(const char *db_url, const char *label, const char *const *extra)
{
    const char *base[] = {"server", "--database-url", db_url, "--port", "0", NULL};
    return start(label, base, extra);
}

e2e_proc_t e2e_start_worker(const char *db_url, const char *templates, const char *label,
                            const char *const *extra)
{
    const char *base[] = {"worker", "--database-url", db_url, "--templates", templates, "--port",
                          "0",      "--id",           label,  NULL};
    return start(label, base, extra);
}

static int reap(pid_t pid, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    int status;
    while (now_ms() < deadline) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        usleep(10000);
    }
    return -1;
}

void e2e_stop(e2e_proc_t *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    int status = reap(p->pid, 15000);
    if (status == -1) {
        kill(p->pid, SIGKILL);
        reap(p->pid, 5000);
        fail_msg("%s did not stop within 15 s of SIGTERM", p->label);
    }
    p->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s exited with status %d", p->label, status);
}

void e2e_kill(e2e_proc_t *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    reap(p->pid, 5000);
    p->pid = 0;
}

typedef struct buf_s {
    char *data;
    size_t len;
} buf_t;

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    buf_t *b = arg;
    char *grown = realloc(b->data, b->len + size * n + 1);
    if (grown == NULL)
        return 0;
    memcpy(grown + b->len, data, size * n);
    b->data = grown;
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

char *e2e_http_text(int port, const char *method, const char *path, const char *body, long *status)
{
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *curl = curl_easy_init();
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    buf_t b = {NULL, 0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    if (body != NULL)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return b.data;
}

json_t *e2e_http(int port, const char *method, const char *path, const char *body, long *status)
{
    char *text = e2e_http_text(port, method, path, body, status);
    json_t *doc = text ? tk_json_parse(text, strlen(text)) : NULL;
    free(text);
    return doc;
}

json_t *e2e_create_task(int port, const char *ns, const char *name, const char *context,
                        int wait_ms, long expect_status)
{
    char path[64], *body = NULL;
    snprintf(path, sizeof(path), wait_ms > 0 ? "/v1/tasks?wait_ms=%d" : "/v1/tasks", wait_ms);
    if (asprintf(&body,
                 "{\"namespace\":\"%s\",\"name\":\"%s\",\"version\":\"1.0.0\",\"context\":%s,"
                 "\"initiator\":\"e2e\",\"source_system\":\"tests\",\"reason\":\"e2e test\"}",
                 ns, name, context) < 0)
        fail_msg("out of memory");
    long status;
    json_t *doc = e2e_http(port, "POST", path, body, &status);
    if (status != expect_status) {
        char *text = doc ? json_dumps(doc, 0) : NULL;
        fail_msg("POST %s %s/%s: status %ld, expected %ld: %s", path, ns, name, status,
                 expect_status, text ? text : "(no JSON)");
    }
    free(body);
    return doc;
}

json_t *e2e_get_task(int port, const char *task_uuid, int wait_ms)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/tasks/%s?wait_ms=%d", task_uuid, wait_ms);
    long status;
    json_t *doc = e2e_http(port, "GET", path, NULL, &status);
    if (status != 200 || doc == NULL)
        fail_msg("GET %s: status %ld", path, status);
    return doc;
}

json_t *e2e_task_step(json_t *task, const char *name)
{
    size_t i;
    json_t *step;
    json_array_foreach(json_object_get(task, "steps"), i, step)
    {
        const char *n = json_string_value(json_object_get(step, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return step;
    }
    return NULL;
}

json_t *e2e_step_result(int port, const char *task_uuid, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/tasks/%s/workflow_steps", task_uuid);
    long status;
    json_t *steps = e2e_http(port, "GET", path, NULL, &status);
    if (status != 200)
        fail_msg("GET %s: status %ld", path, status);
    size_t i;
    json_t *step, *found = NULL;
    json_array_foreach(steps, i, step)
    {
        const char *n = json_string_value(json_object_get(step, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            found = json_incref(json_object_get(json_object_get(step, "results"), "result"));
    }
    json_decref(steps);
    return found;
}

const char *e2e_unique(void)
{
    static char buf[64];
    static int counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, sizeof(buf), "%d-%ld-%ld-%d", (int)getpid(), (long)ts.tv_sec, ts.tv_nsec,
             ++counter);
    return buf;
}

void e2e_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

long e2e_worker_metric(int port, const char *series)
{
    long status;
    char *text = e2e_http_text(port, "GET", "/metrics", NULL, &status);
    assert_int_equal(status, 200);
    char name[256];
    snprintf(name, sizeof(name), "\n%s ", series);
    const char *line = text ? strstr(text, name) : NULL;
    if (line == NULL)
        fail_msg("no %s in the worker's metrics", series);
    long n = strtol(line + strlen(name), NULL, 10);
    free(text);
    return n;
}
