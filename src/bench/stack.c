/*
 * stack.c - server, workers and HTTP client for the e2e and throughput suites (stack.h).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/stack.h"
#include "common/clock.h"
#include "common/error_int.h"
#include "orchestration/server.h"
#include "worker/service.h"

struct tk_bench_stack_s {
    tk_bench_t *b;
    char *db_url;
    tk_config_t server_cfg;
    tk_server_t *server;
    char url[64];
    tk_config_t worker_cfg[TK_BENCH_MAX_WORKERS];
    tk_worker_service_t *workers[TK_BENCH_MAX_WORKERS];
    int nworkers;
    pid_t children[TK_BENCH_MAX_WORKERS];
    int nchildren;
};

/* The run's settings plus `extra` (key, value pairs, NULL-terminated), loaded into cfg. */
static int load_config(tk_bench_stack_t *s, tk_config_t *cfg, const char *const *extra)
{
    tk_cli_sets_t sets = {0};
    bool ok = true, level_given = getenv("TASKER_LOG_LEVEL") != NULL;
    const tk_cli_sets_t *user = s->b->opts.sets;
    for (int i = 0; ok && user != NULL && i < user->n; i++) {
        ok = tk_cli_sets_add(&sets, user->key[i], user->value[i]);
        level_given = level_given || strcmp(user->key[i], "log.level") == 0;
    }
    if (ok && !level_given)
        ok = tk_cli_sets_add(&sets, "log.level", "warn");
    if (ok)
        ok = tk_cli_sets_add(&sets, "database.url", s->db_url);
    for (int i = 0; ok && extra[i] != NULL; i += 2)
        ok = tk_cli_sets_add(&sets, extra[i], extra[i + 1]);
    int rc = ok ? tk_cli_config_load(cfg, s->b->opts.config_path, &sets) : TK_EINVAL;
    tk_cli_sets_free(&sets);
    return rc;
}

int tk_bench_stack_start(tk_bench_t *b, const char *db_url, tk_bench_stack_t **out)
{
    *out = NULL;
    tk_bench_stack_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->db_url = strdup(db_url)) == NULL) {
        free(s);
        tk_cli_fail("out of memory");
        return TK_ENOMEM;
    }
    s->b = b;
    static const char *const extra[] = {"server.bind", "127.0.0.1", "server.port", "0", NULL};
    int rc = load_config(s, &s->server_cfg, extra);
    tk_error_t err;
    if (rc == TK_OK) {
        rc = tk_server_start(&s->server_cfg, &s->server, &err);
        if (rc != TK_OK)
            tk_cli_fail("could not start the orchestration server: %s", err.message);
    }
    if (rc != TK_OK) {
        tk_bench_stack_free(s);
        return rc;
    }
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u", tk_server_port(s->server));
    *out = s;
    return TK_OK;
}

const char *tk_bench_stack_url(const tk_bench_stack_t *s)
{
    return s->url;
}

int tk_bench_stack_add_worker(tk_bench_stack_t *s, const char *templates, const char *id,
                              const char *const *extra_ns, int nextra)
{
    if (s->nworkers == TK_BENCH_MAX_WORKERS) {
        tk_cli_fail("too many workers (at most %d)", TK_BENCH_MAX_WORKERS);
        return TK_EINVAL;
    }
    tk_config_t *cfg = &s->worker_cfg[s->nworkers];
    const char *extra[] = {"worker.templates", templates, "worker.id", id, NULL};
    int rc = load_config(s, cfg, extra);
    tk_error_t err;
    if (rc == TK_OK) {
        rc = tk_worker_service_start(cfg, extra_ns, nextra, false, &s->workers[s->nworkers], &err);
        if (rc != TK_OK)
            tk_cli_fail("could not start worker %s: %s", id, err.message);
    }
    if (rc != TK_OK) {
        tk_config_free(cfg);
        return rc;
    }
    s->nworkers++;
    return TK_OK;
}

/* environ with `set` ("NAME=value") replacing or adding entries: a malloc'ed array whose
 * strings are environ's or set's (free only the array). */
static char **build_env(const char *const *set, int nset)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + (size_t)nset + 1, sizeof(char *));
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        for (int j = 0; j < nset && !replaced; j++) {
            size_t len = (size_t)(strchr(set[j], '=') - set[j]) + 1;
            replaced = strncmp(environ[i], set[j], len) == 0;
        }
        if (!replaced)
            env[k++] = environ[i];
    }
    for (int j = 0; j < nset; j++)
        env[k++] = (char *)set[j];
    env[k] = NULL;
    return env;
}

int tk_bench_stack_add_child(tk_bench_stack_t *s, const char *const *argv, const char *const *env,
                             const char *id, const char *log_path, pid_t *pid_out)
{
    if (s->nchildren == TK_BENCH_MAX_WORKERS) {
        tk_cli_fail("too many worker processes");
        return TK_EINVAL;
    }
    /* Everything the child needs is prepared here: after fork() in a threaded process the
     * child may only make async-signal-safe calls. */
    char *vars[4] = {NULL, NULL, NULL, NULL};
    const char *set[32];
    int nset = 0;
    if (asprintf(&vars[0], "DATABASE_URL=%s", s->db_url) < 0 ||
        asprintf(&vars[1], "TASKER_WORKER_ID=%s", id) < 0) {
        free(vars[0]);
        tk_cli_fail("out of memory");
        return TK_ENOMEM;
    }
    set[nset++] = vars[0];
    set[nset++] = vars[1];
    set[nset++] = "TASKER_WORKER_PORT=0";
    if (getenv("TASKER_LOG_LEVEL") == NULL)
        set[nset++] = "TASKER_LOG_LEVEL=warn";
    for (int i = 0; env != NULL && env[i] != NULL && nset < 31; i++)
        if (strchr(env[i], '=') != NULL)
            set[nset++] = env[i];
    char **envp = build_env(set, nset);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    sigset_t none;
    sigemptyset(&none);
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = envp != NULL && fd >= 0 && null >= 0 ? fork() : -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        dup2(null, STDIN_FILENO);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        execvpe(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    int saved = errno;
    free(envp);
    free(vars[0]);
    free(vars[1]);
    if (fd >= 0)
        close(fd);
    if (null >= 0)
        close(null);
    if (pid < 0) {
        tk_cli_fail("could not start %s: %s", argv[0], strerror(saved));
        return TK_ESYS;
    }
    s->children[s->nchildren++] = pid;
    if (pid_out != NULL)
        *pid_out = pid;
    return TK_OK;
}

static void stop_child(pid_t pid)
{
    kill(pid, SIGTERM);
    int64_t deadline = tk_clock_ms() + 10000;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return;
        if (tk_clock_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return;
        }
        tk_sleep_ms(20);
    }
}

/* Index of child `pid` in s->children, or -1. */
static int child_index(const tk_bench_stack_t *s, pid_t pid)
{
    for (int i = 0; i < s->nchildren; i++)
        if (s->children[i] == pid)
            return i;
    return -1;
}

static void forget_child(tk_bench_stack_t *s, int i)
{
    s->children[i] = s->children[--s->nchildren];
}

bool tk_bench_stack_child_alive(tk_bench_stack_t *s, pid_t pid)
{
    int i = child_index(s, pid);
    if (i < 0)
        return false;
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return true;
    forget_child(s, i);
    return false;
}

void tk_bench_stack_stop_child(tk_bench_stack_t *s, pid_t pid)
{
    int i = child_index(s, pid);
    if (i < 0)
        return;
    stop_child(pid);
    forget_child(s, i);
}

void tk_bench_stack_stop_workers(tk_bench_stack_t *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        tk_worker_service_stop(s->workers[i]);
        tk_config_free(&s->worker_cfg[i]);
        s->workers[i] = NULL;
    }
    s->nworkers = 0;
    for (int i = 0; i < s->nchildren; i++)
        stop_child(s->children[i]);
    s->nchildren = 0;
}

void tk_bench_stack_free(tk_bench_stack_t *s)
{
    if (s == NULL)
        return;
    tk_bench_stack_stop_workers(s);
    tk_server_stop(s->server);
    tk_config_free(&s->server_cfg);
    free(s->db_url);
    free(s);
}

/* ---- keep-alive HTTP client ----------------------------------------------------------------- */

struct tk_bench_http_s {
    CURL *curl;
    struct curl_slist *headers;
    char base[256];
    char *buf;
    size_t len, cap;
    char curl_err[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    tk_bench_http_t *h = arg;
    size_t add = size * n;
    if (h->len + add + 1 > h->cap) {
        size_t cap = h->cap ? h->cap : 16384;
        while (cap < h->len + add + 1)
            cap *= 2;
        char *buf = realloc(h->buf, cap);
        if (buf == NULL)
            return 0;
        h->buf = buf;
        h->cap = cap;
    }
    memcpy(h->buf + h->len, data, add);
    h->len += add;
    h->buf[h->len] = '\0';
    return add;
}

tk_bench_http_t *tk_bench_http_new(const char *base_url)
{
    pthread_once(&curl_once, curl_init);
    tk_bench_http_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    snprintf(h->base, sizeof(h->base), "%s", base_url);
    h->curl = curl_easy_init();
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    h->headers = curl_slist_append(h->headers, "Accept: application/json");
    h->headers = curl_slist_append(h->headers, "Expect:");
    if (h->curl == NULL || h->headers == NULL) {
        tk_bench_http_free(h);
        return NULL;
    }
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->curl_err);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
    return h;
}

void tk_bench_http_free(tk_bench_http_t *h)
{
    if (h == NULL)
        return;
    if (h->curl != NULL)
        curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    free(h->buf);
    free(h);
}

static int perform(tk_bench_http_t *h, const char *path, const char *body, long timeout_ms,
                   long *status, tk_error_t *err)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", h->base, path);
    h->len = 0;
    if (h->buf != NULL)
        h->buf[0] = '\0';
    h->curl_err[0] = '\0';
    curl_easy_setopt(h->curl, CURLOPT_URL, url);
    if (body != NULL)
        curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, body);
    else
        curl_easy_setopt(h->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    CURLcode rc = curl_easy_perform(h->curl);
    if (rc != CURLE_OK)
        return tk_error_set(err, rc == CURLE_OPERATION_TIMEDOUT ? TK_ETIMEDOUT : TK_ECONN,
                            "%s %s: %s", body ? "POST" : "GET", url,
                            h->curl_err[0] ? h->curl_err : curl_easy_strerror(rc));
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, status);
    return TK_OK;
}

int tk_bench_http_post(tk_bench_http_t *h, const char *path, const char *body, long timeout_ms,
                       long *status, tk_error_t *err)
{
    return perform(h, path, body, timeout_ms, status, err);
}

int tk_bench_http_get(tk_bench_http_t *h, const char *path, long timeout_ms, long *status,
                      tk_error_t *err)
{
    return perform(h, path, NULL, timeout_ms, status, err);
}

const char *tk_bench_http_body(const tk_bench_http_t *h)
{
    return h->buf != NULL ? h->buf : "";
}
