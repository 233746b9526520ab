/*
 * pgembed.c - a private PostgreSQL cluster: initdb, start, attach, stop (see pgembed.h).
 *
 * Design notes:
 * - The server is exec'ed directly (not through pg_ctl) in a new session, so Ctrl-C in the
 *   terminal reaches tasker, which then shuts the server down in order.
 * - Readiness is polled with PQping every 20 ms; the server's own postmaster.pid is the
 *   source of truth for "is it running" (pid on line 1, port on line 4), which is what lets a
 *   later process attach to or stop a server it did not start.
 * - Settings are passed as -c options on every start rather than written into
 *   postgresql.conf, so an upgraded tasker applies its current tuning to an old cluster.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error_int.h"
#include "common/parse.h"
#include "db/pgembed.h"
#include "tasker/log.h"

#define SOCKET_DIR       "/tmp"
#define SHADOW_ROOT      "/var/tmp/tasker-pg"
#define SUPERUSER        "tasker"
#define START_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS  60000

struct tk_pgembed_s {
    char *data_dir; /* resolved real path */
    char *log_path;
    char *url;
    int port;
    pid_t child; /* our child postmaster, or 0 when attached / detached */
    bool started_here;
};

/* Who runs initdb and the server: the current user, or "postgres" when we are root. */
typedef struct run_as_s {
    bool switch_user;
    uid_t uid;
    gid_t gid;
    const char *name;
} run_as_t;

static char *xstrdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xstrdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* snprintf for paths: false (and an empty string) when the result would not fit. */
static bool pathf(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool pathf(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        out[0] = '\0';
        return false;
    }
    return true;
}

static bool is_executable(const char *dir, const char *prog)
{
    char path[PATH_MAX];
    return pathf(path, sizeof(path), "%s/%s", dir, prog) && access(path, X_OK) == 0;
}

/* Directory with initdb and postgres: $TASKER_PG_BINDIR, else Debian's versioned paths. */
static int find_bindir(char *out, size_t size, tk_error_t *err)
{
    const char *env = getenv("TASKER_PG_BINDIR");
    if (env != NULL && env[0] != '\0') {
        if (!is_executable(env, "postgres") || !is_executable(env, "initdb"))
            return tk_error_set(
                err, TK_ESYS, "cannot use TASKER_PG_BINDIR=\"%s\": no postgres/initdb there", env);
        if (!pathf(out, size, "%s", env))
            return tk_error_set(err, TK_EINVAL, "cannot use TASKER_PG_BINDIR: path too long");
        return TK_OK;
    }
    for (int v = 20; v >= 13; v--) {
        pathf(out, size, "/usr/lib/postgresql/%d/bin", v);
        if (is_executable(out, "postgres") && is_executable(out, "initdb"))
            return TK_OK;
    }
    return tk_error_set(err, TK_ESYS,
                        "cannot find the PostgreSQL server (initdb, postgres): install "
                        "postgresql-15 or set TASKER_PG_BINDIR");
}

static int resolve_run_as(run_as_t *ra, tk_error_t *err)
{
    memset(ra, 0, sizeof(*ra));
    if (geteuid() != 0)
        return TK_OK;
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL)
        return tk_error_set(err, TK_ESYS,
                            "cannot run PostgreSQL as root and there is no \"postgres\" user: "
                            "install postgresql-15 or run as another user");
    ra->switch_user = true;
    ra->uid = pw->pw_uid;
    ra->gid = pw->pw_gid;
    ra->name = "postgres";
    return TK_OK;
}

/* In a forked child: become the run-as user. Returns false on failure. */
static bool child_become(const run_as_t *ra)
{
    if (!ra->switch_user)
        return true;
    return setgroups(0, NULL) == 0 && setgid(ra->gid) == 0 && setuid(ra->uid) == 0;
}

/* Can the run-as user search (traverse) `dir`? */
static bool user_can_reach(const run_as_t *ra, const char *dir)
{
    if (!ra->switch_user)
        return access(dir, X_OK) == 0;
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0)
        _exit(child_become(ra) && access(dir, X_OK | R_OK) == 0 ? 0 : 1);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* mkdir -p for the parent directories of `path` (mode 0755). */
static int make_parents(const char *path, tk_error_t *err)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return tk_error_set(err, TK_ESYS, "could not create directory \"%s\": %s", buf,
                                strerror(errno));
        *p = '/';
    }
    return TK_OK;
}

/* Path of the parent directory of `path` (static buffer semantics avoided: writes `out`). */
static void parent_of(const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash == NULL)
        snprintf(out, size, ".");
    else if (slash == out)
        out[1] = '\0';
    else
        *slash = '\0';
}

/* Make `data_dir` exist, owned by the run-as user, and write its real path into `real`. */
static int prepare_dir(const char *data_dir, const run_as_t *ra, char *real, size_t size,
                       tk_error_t *err)
{
    char abs[PATH_MAX], parent[PATH_MAX];
    if (data_dir[0] == '/') {
        if (!pathf(abs, sizeof(abs), "%s", data_dir))
            return tk_error_set(err, TK_EINVAL, "cannot use \"%s\": path too long", data_dir);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return tk_error_set(err, TK_ESYS, "could not get the current directory: %s",
                                strerror(errno));
        if (!pathf(abs, sizeof(abs), "%s/%s", cwd, data_dir))
            return tk_error_set(err, TK_EINVAL, "cannot use \"%s\": path too long", data_dir);
    }
    size_t len = strlen(abs);
    while (len > 1 && abs[len - 1] == '/')
        abs[--len] = '\0';

    int rc = make_parents(abs, err);
    if (rc != TK_OK)
        return rc;
    struct stat st;
    if (lstat(abs, &st) != 0) {
        parent_of(abs, parent, sizeof(parent));
        if (ra->switch_user && !user_can_reach(ra, parent)) {
            /* The postgres user cannot traverse to here: keep the cluster in /var/tmp and
             * leave a symlink at the requested path. */
            uint64_t h = 0xcbf29ce484222325ULL;
            for (const char *p = abs; *p; p++)
                h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
            char shadow[PATH_MAX];
            snprintf(shadow, sizeof(shadow), SHADOW_ROOT "/%016llx", (unsigned long long)h);
            if (mkdir(SHADOW_ROOT, 0755) != 0 && errno != EEXIST)
                return tk_error_set(err, TK_ESYS, "could not create \"%s\": %s", SHADOW_ROOT,
                                    strerror(errno));
            if (mkdir(shadow, 0700) != 0 && errno != EEXIST)
                return tk_error_set(err, TK_ESYS, "could not create \"%s\": %s", shadow,
                                    strerror(errno));
            if (symlink(shadow, abs) != 0)
                return tk_error_set(err, TK_ESYS, "could not link \"%s\" to \"%s\": %s", abs,
                                    shadow, strerror(errno));
            TK_LOG(TK_LOG_INFO, "pgembed",
                   "user postgres cannot reach %s; the cluster lives in %s (linked)", parent,
                   shadow);
        } else if (mkdir(abs, 0700) != 0) {
            return tk_error_set(err, TK_ESYS, "could not create directory \"%s\": %s", abs,
                                strerror(errno));
        }
    }
    if (realpath(abs, real) == NULL || strlen(real) >= size)
        return tk_error_set(err, TK_ESYS, "could not resolve \"%s\": %s", abs, strerror(errno));
    if (ra->switch_user && chown(real, ra->uid, ra->gid) != 0)
        return tk_error_set(err, TK_ESYS, "could not give \"%s\" to user postgres: %s", real,
                            strerror(errno));
    if (chmod(real, 0700) != 0)
        return tk_error_set(err, TK_ESYS, "could not set permissions on \"%s\": %s", real,
                            strerror(errno));
    return TK_OK;
}

/* Fork and exec argv as the run-as user with stdout/stderr going to log_fd. The child starts
 * a new session. Returns the child's pid or -1. */
static pid_t spawn(const char *const argv[], const run_as_t *ra, int log_fd, bool pdeathsig)
{
    static char *const envp[] = {"LC_ALL=C", "PATH=/usr/bin:/bin", NULL};
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* child: only async-signal-safe calls from here on */
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
        dup2(devnull, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    setsid();
    if (!child_become(ra))
        _exit(126);
    if (pdeathsig) {
        prctl(PR_SET_PDEATHSIG, SIGINT);
        if (getppid() != parent)
            _exit(0);
    }
    execve(argv[0], (char *const *)argv, envp);
    _exit(127);
}

/* Append the last lines of the log to err->message, to explain a failed start. */
static void add_log_tail(tk_error_t *err, const char *log_path)
{
    if (err == NULL)
        return;
    FILE *f = fopen(log_path, "r");
    if (f == NULL)
        return;
    char tail[1024] = "";
    if (fseek(f, -(long)(sizeof(tail) - 1), SEEK_END) != 0)
        rewind(f);
    size_t n = fread(tail, 1, sizeof(tail) - 1, f);
    tail[n] = '\0';
    fclose(f);
    /* keep the last three lines */
    int lines = 0;
    char *start = tail;
    for (char *p = tail + (n ? n - 1 : 0); p > tail; p--) {
        if (*p == '\n' && p[1] != '\0' && ++lines == 3) {
            start = p + 1;
            break;
        }
    }
    size_t used = strlen(err->message);
    snprintf(err->message + used, sizeof(err->message) - used, " (log %s: %s)", log_path, start);
    used = strlen(err->message);
    while (used > 0 && (err->message[used - 1] == '\n' || err->message[used - 1] == ' '))
        err->message[--used] = '\0';
}

static int run_initdb(const char *bindir, const char *dir, const run_as_t *ra, int log_fd,
                      bool durable, const char *log_path, tk_error_t *err)
{
    char initdb[PATH_MAX], pgdata[PATH_MAX + 3];
    if (!pathf(initdb, sizeof(initdb), "%s/initdb", bindir) ||
        !pathf(pgdata, sizeof(pgdata), "-D%s", dir))
        return tk_error_set(err, TK_EINVAL, "cannot run initdb: path too long");
    const char *argv[] = {initdb,   pgdata,       "-U" SUPERUSER, "--auth=trust",
                          "-EUTF8", "--locale=C", "--no-sync",    NULL};
    if (durable)
        argv[6] = NULL; /* let initdb fsync what it wrote */
    TK_LOG(TK_LOG_INFO, "pgembed", "creating a PostgreSQL cluster in %s", dir);
    pid_t pid = spawn(argv, ra, log_fd, false);
    if (pid < 0)
        return tk_error_set(err, TK_ESYS, "could not start initdb: %s", strerror(errno));
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        tk_error_set(err, TK_ESYS, "initdb failed in \"%s\"", dir);
        add_log_tail(err, log_path);
        return TK_ESYS;
    }
    return TK_OK;
}

/* Read postmaster.pid: the server's pid and port. TK_OK when the file exists and its process
 * is alive; TK_ENOTFOUND otherwise. */
static int read_pidfile(const char *dir, pid_t *pid, int *port)
{
    char path[PATH_MAX + 32], line[256];
    if (!pathf(path, sizeof(path), "%s/postmaster.pid", dir))
        return TK_ENOTFOUND;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return TK_ENOTFOUND;
    int64_t v = 0;
    *pid = 0;
    *port = 0;
    for (int i = 1; i <= 4 && fgets(line, sizeof(line), f) != NULL; i++) {
        line[strcspn(line, "\n")] = '\0';
        if (i == 1 && tk_parse_i64(line, 1, INT32_MAX, &v) == TK_OK)
            *pid = (pid_t)v;
        if (i == 4 && tk_parse_i64(line, 1, 65535, &v) == TK_OK)
            *port = (int)v;
    }
    fclose(f);
    if (*pid <= 0 || *port <= 0)
        return TK_ENOTFOUND;
    if (kill(*pid, 0) != 0 && errno == ESRCH)
        return TK_ENOTFOUND;
    return TK_OK;
}

/* A free TCP port on 127.0.0.1 (the kernel's choice), or -1. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

char *tk_pgembed_url_for(const tk_pgembed_t *pg, const char *dbname)
{
    return xstrdup_printf("postgresql:///%s?host=" SOCKET_DIR "&port=%d&user=" SUPERUSER, dbname,
                          pg->port);
}

/* Wait until the server answers on pg->port. Fails early if our child exited. */
static int wait_ready(tk_pgembed_t *pg, tk_error_t *err)
{
    char *url = tk_pgembed_url_for(pg, "postgres");
    if (url == NULL)
        return tk_error_set(err, TK_ENOMEM, "could not start PostgreSQL: out of memory");
    int64_t deadline = tk_clock_ms() + START_TIMEOUT_MS;
    int rc = TK_ETIMEDOUT;
    while (tk_clock_ms() < deadline) {
        if (PQping(url) == PQPING_OK) {
            rc = TK_OK;
            break;
        }
        int status;
        if (pg->child > 0 && waitpid(pg->child, &status, WNOHANG) == pg->child) {
            pg->child = 0;
            rc = TK_ESYS;
            break;
        }
        tk_sleep_ms(20);
    }
    free(url);
    if (rc != TK_OK) {
        tk_error_set(err, rc, "PostgreSQL did not start on port %d", pg->port);
        add_log_tail(err, pg->log_path);
    }
    return rc;
}

static int start_server(tk_pgembed_t *pg, const char *bindir, const run_as_t *ra, int log_fd,
                        const tk_pgembed_opts_t *o, tk_error_t *err)
{
    char postgres[PATH_MAX], pgdata[PATH_MAX + 3], port[32];
    const char *onoff = o->durable ? "on" : "off";
    char fsync_opt[32], sync_opt[40], fpw_opt[40];
    if (!pathf(postgres, sizeof(postgres), "%s/postgres", bindir) ||
        !pathf(pgdata, sizeof(pgdata), "-D%s", pg->data_dir))
        return tk_error_set(err, TK_EINVAL, "cannot start postgres: path too long");
    snprintf(port, sizeof(port), "port=%d", pg->port);
    snprintf(fsync_opt, sizeof(fsync_opt), "fsync=%s", onoff);
    snprintf(sync_opt, sizeof(sync_opt), "synchronous_commit=%s", onoff);
    snprintf(fpw_opt, sizeof(fpw_opt), "full_page_writes=%s", onoff);
    /* Tuning for a local development database: small, single host, short OLTP queries. */
    const char *argv[] = {postgres, pgdata,
                          "-c",     port,
                          "-c",     "listen_addresses=127.0.0.1",
                          "-c",     "unix_socket_directories=" SOCKET_DIR,
                          "-c",     "max_connections=200",
                          "-c",     "shared_buffers=128MB",
                          "-c",     fsync_opt,
                          "-c",     sync_opt,
                          "-c",     fpw_opt,
                          "-c",     "wal_level=minimal",
                          "-c",     "max_wal_senders=0",
                          "-c",     "max_wal_size=1GB",
                          "-c",     "checkpoint_timeout=15min",
                          "-c",     "jit=off",
                          "-c",     "max_parallel_workers_per_gather=0",
                          "-c",     "random_page_cost=1.1",
                          "-c",     "logging_collector=off",
                          "-c",     "log_min_messages=warning",
                          "-c",     "log_line_prefix=%m [%p] ",
                          "-c",     "dynamic_shared_memory_type=mmap",
                          NULL};
    pg->child = spawn(argv, ra, log_fd, o->stop_with_parent);
    if (pg->child < 0) {
        pg->child = 0;
        return tk_error_set(err, TK_ESYS, "could not start postgres: %s", strerror(errno));
    }
    return wait_ready(pg, err);
}

static bool sqlstate_is(const PGresult *res, const char *state)
{
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return s != NULL && strcmp(s, state) == 0;
}

/* Create database "tasker" if it does not exist. */
static int ensure_database(const tk_pgembed_t *pg, tk_error_t *err)
{
    char *url = tk_pgembed_url_for(pg, "postgres");
    if (url == NULL)
        return tk_error_set(err, TK_ENOMEM, "out of memory");
    PGconn *conn = PQconnectdb(url);
    free(url);
    int rc = TK_OK;
    if (PQstatus(conn) != CONNECTION_OK) {
        rc = tk_error_set(err, TK_ECONN, "could not connect to the new server: %s",
                          PQerrorMessage(conn));
    } else {
        PGresult *res = PQexec(conn, "SELECT 1 FROM pg_database WHERE datname = 'tasker'");
        bool exists = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
        PQclear(res);
        if (!exists) {
            res = PQexec(conn, "CREATE DATABASE tasker");
            if (PQresultStatus(res) != PGRES_COMMAND_OK && !sqlstate_is(res, "42P04"))
                rc = tk_error_set(err, TK_EDB, "could not create database \"tasker\": %s",
                                  PQresultErrorMessage(res));
            PQclear(res);
        }
    }
    PQfinish(conn);
    return rc;
}

int tk_pgembed_start(const tk_pgembed_opts_t *o, tk_pgembed_t **out, tk_error_t *err)
{
    char bindir[PATH_MAX], real[PATH_MAX], version_file[PATH_MAX + 16];
    run_as_t ra;
    *out = NULL;
    if (o == NULL || o->data_dir == NULL || o->data_dir[0] == '\0')
        return tk_error_set(err, TK_EINVAL, "cannot start PostgreSQL: no data directory given");
    if (o->attach_only && access(o->data_dir, F_OK) != 0)
        return tk_error_set(err, TK_ENOTFOUND, "there is no cluster in \"%s\"", o->data_dir);
    int rc = find_bindir(bindir, sizeof(bindir), err);
    if (rc == TK_OK)
        rc = resolve_run_as(&ra, err);
    if (rc == TK_OK)
        rc = prepare_dir(o->data_dir, &ra, real, sizeof(real), err);
    if (rc != TK_OK)
        return rc;

    tk_pgembed_t *pg = calloc(1, sizeof(*pg));
    if (pg == NULL)
        return tk_error_set(err, TK_ENOMEM, "out of memory");
    pg->data_dir = strdup(real);
    pg->log_path = o->log_path ? strdup(o->log_path) : xstrdup_printf("%s.log", o->data_dir);
    if (pg->data_dir == NULL || pg->log_path == NULL) {
        tk_pgembed_free(pg);
        return tk_error_set(err, TK_ENOMEM, "out of memory");
    }
    int log_fd = open(pg->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        rc = tk_error_set(err, TK_ESYS, "could not open log \"%s\": %s", pg->log_path,
                          strerror(errno));
        tk_pgembed_free(pg);
        return rc;
    }

    pathf(version_file, sizeof(version_file), "%s/PG_VERSION", real);
    pid_t running;
    if (o->attach_only && read_pidfile(real, &running, &pg->port) != TK_OK) {
        rc = tk_error_set(err, TK_ENOTFOUND, "no PostgreSQL server is running on \"%s\"", real);
    } else if (o->attach_only) {
        rc = wait_ready(pg, err);
        goto started;
    } else if (access(version_file, F_OK) != 0) {
        rc = run_initdb(bindir, real, &ra, log_fd, o->durable, pg->log_path, err);
    } else if (read_pidfile(real, &running, &pg->port) == TK_OK) {
        TK_LOG(TK_LOG_INFO, "pgembed", "reusing the PostgreSQL server already running on %s", real);
        rc = wait_ready(pg, err);
        goto started;
    }
    for (int attempt = 0; rc == TK_OK; attempt++) {
        pg->port = o->port > 0 ? o->port : free_port();
        if (pg->port <= 0) {
            rc = tk_error_set(err, TK_ESYS, "could not find a free port: %s", strerror(errno));
            break;
        }
        rc = start_server(pg, bindir, &ra, log_fd, o, err);
        pg->started_here = rc == TK_OK;
        /* An automatically chosen port may have been taken meanwhile: try another. */
        if (rc == TK_ESYS && o->port == 0 && attempt < 3)
            rc = TK_OK;
        else
            break;
    }
started:
    close(log_fd);
    if (rc == TK_OK)
        rc = ensure_database(pg, err);
    if (rc == TK_OK) {
        pg->url = tk_pgembed_url_for(pg, "tasker");
        if (pg->url == NULL)
            rc = tk_error_set(err, TK_ENOMEM, "out of memory");
    }
    if (rc != TK_OK) {
        tk_pgembed_free(pg);
        return rc;
    }
    *out = pg;
    return TK_OK;
}

const char *tk_pgembed_url(const tk_pgembed_t *pg)
{
    return pg->url;
}

int tk_pgembed_port(const tk_pgembed_t *pg)
{
    return pg->port;
}

bool tk_pgembed_started_here(const tk_pgembed_t *pg)
{
    return pg->started_here;
}

const char *tk_pgembed_log_path(const tk_pgembed_t *pg)
{
    return pg->log_path;
}

/* True once the server of `pid` is gone (its pid file removed, or the process ended). */
static bool server_gone(tk_pgembed_t *pg, pid_t pid)
{
    int status;
    if (pg->child == pid && waitpid(pid, &status, WNOHANG) == pid) {
        pg->child = 0;
        return true;
    }
    pid_t now;
    int port;
    return read_pidfile(pg->data_dir, &now, &port) != TK_OK || now != pid;
}

int tk_pgembed_stop(tk_pgembed_t *pg, tk_error_t *err)
{
    pid_t pid;
    int port;
    if (pg == NULL || read_pidfile(pg->data_dir, &pid, &port) != TK_OK)
        return TK_OK;  /* not running */
    kill(pid, SIGINT); /* fast shutdown: roll back open transactions, checkpoint, exit */
    int64_t deadline = tk_clock_ms() + STOP_TIMEOUT_MS;
    while (!server_gone(pg, pid)) {
        if (tk_clock_ms() > deadline) {
            kill(pid, SIGQUIT);
            return tk_error_set(err, TK_ETIMEDOUT, "PostgreSQL (pid %d) did not stop in time",
                                (int)pid);
        }
        tk_sleep_ms(10);
    }
    if (pg->child == pid) {
        int status;
        waitpid(pid, &status, 0);
        pg->child = 0;
    }
    return TK_OK;
}

void tk_pgembed_free(tk_pgembed_t *pg)
{
    if (pg == NULL)
        return;
    free(pg->data_dir);
    free(pg->log_path);
    free(pg->url);
    free(pg);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int tk_pgembed_remove(const char *data_dir, tk_error_t *err)
{
    char real[PATH_MAX];
    if (realpath(data_dir, real) == NULL)
        return errno == ENOENT ? TK_OK
                               : tk_error_set(err, TK_ESYS, "could not resolve \"%s\": %s",
                                              data_dir, strerror(errno));
    if (nftw(real, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return tk_error_set(err, TK_ESYS, "could not remove \"%s\": %s", real, strerror(errno));
    struct stat st;
    if (lstat(data_dir, &st) == 0 && S_ISLNK(st.st_mode))
        unlink(data_dir); /* the symlink to the /var/tmp placement */
    return TK_OK;
}
