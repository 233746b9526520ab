/*
 * conn.c - PostgreSQL connection with lazily prepared statements (see conn.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error_int.h"
#include "db/conn.h"

#define SEARCH_PATH_OPTION "-c search_path=tasker,tasker_mq,public"
#define EARLY_MAX          8 /* statements sent early whose rows are not yet taken */

struct tk_conn_s {
    PGconn *pg;
    char *url;
    char *app_name;
    const tk_stmt_t **prepared; /* statements prepared on this session */
    int nprepared;
    int cap_prepared;
    int early_pending; /* statements sent by tk_conn_send_early whose commit is not yet taken */
    /* statements sent early whose rows are not yet taken, oldest first: the statement when it
     * was prepared on the way (its Parse went before it), else NULL */
    const tk_stmt_t *early_parsed[EARLY_MAX];
    int early_first, early_rows;
};

/* Build the options string: the user's own options (from the URL), then ours. */
static char *merged_options(const char *url)
{
    const char *user_opts = NULL;
    PQconninfoOption *info = PQconninfoParse(url, NULL);
    if (info != NULL) {
        for (PQconninfoOption *o = info; o->keyword != NULL; o++)
            if (strcmp(o->keyword, "options") == 0 && o->val != NULL && o->val[0] != '\0')
                user_opts = o->val;
    }
    size_t n = strlen(SEARCH_PATH_OPTION) + (user_opts ? strlen(user_opts) + 1 : 0) + 1;
    char *opts = malloc(n);
    if (opts != NULL)
        snprintf(opts, n, "%s%s%s", user_opts ? user_opts : "", user_opts ? " " : "",
                 SEARCH_PATH_OPTION);
    PQconninfoFree(info);
    return opts;
}

/* Connect c->pg from c->url. */
static int do_connect(tk_conn_t *c, tk_error_t *err)
{
    char *opts = merged_options(c->url);
    if (opts == NULL)
        return tk_error_set(err, TK_ENOMEM, "could not connect: out of memory");
    const char *keys[] = {"dbname", "options", "application_name", "connect_timeout", NULL};
    const char *vals[] = {c->url, opts, c->app_name, "10", NULL};
    c->pg = PQconnectdbParams(keys, vals, 1);
    free(opts);
    if (c->pg == NULL)
        return tk_error_set(err, TK_ENOMEM, "could not connect: out of memory");
    if (PQstatus(c->pg) != CONNECTION_OK) {
        const char *why = PQerrorMessage(c->pg);
        size_t len = strlen(why);
        while (len > 0 && (why[len - 1] == '\n' || why[len - 1] == ' '))
            len--;
        tk_error_set(err, TK_ECONN, "could not connect to the database: %.*s", (int)len, why);
        PQfinish(c->pg);
        c->pg = NULL;
        return TK_ECONN;
    }
    return TK_OK;
}

int tk_conn_open(const char *url, const char *app_name, tk_conn_t **out, tk_error_t *err)
{
    *out = NULL;
    if (url == NULL || url[0] == '\0')
        return tk_error_set(err, TK_EINVAL, "cannot connect: no database URL given");
    tk_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return tk_error_set(err, TK_ENOMEM, "could not connect: out of memory");
    c->url = strdup(url);
    c->app_name = strdup(app_name ? app_name : "tasker");
    if (c->url == NULL || c->app_name == NULL) {
        tk_conn_close(c);
        return tk_error_set(err, TK_ENOMEM, "could not connect: out of memory");
    }
    int rc = do_connect(c, err);
    if (rc != TK_OK) {
        tk_conn_close(c);
        return rc;
    }
    *out = c;
    return TK_OK;
}

void tk_conn_close(tk_conn_t *c)
{
    if (c == NULL)
        return;
    if (c->pg != NULL)
        PQfinish(c->pg);
    free(c->prepared);
    free(c->url);
    free(c->app_name);
    free(c);
}

PGconn *tk_conn_pg(tk_conn_t *c)
{
    return c->pg;
}

bool tk_conn_is_ok(const tk_conn_t *c)
{
    return c->pg != NULL && PQstatus(c->pg) == CONNECTION_OK;
}

int tk_conn_reset(tk_conn_t *c, tk_error_t *err)
{
    if (c->pg != NULL)
        PQfinish(c->pg);
    c->pg = NULL;
    c->nprepared = 0;
    c->early_pending = c->early_rows = 0;
    return do_connect(c, err);
}

/* Map a SQLSTATE to a TK_E* code. */
static int code_for_sqlstate(const char *state)
{
    static const struct {
        const char *state;
        int code;
    } map[] = {
        {"23505", TK_ECONFLICT}, {"TK001", TK_ETRANSITION}, {"TK002", TK_ETRANSITION},
        {"P0002", TK_ENOTFOUND}, {"22P02", TK_EINVAL},      {"22023", TK_EINVAL},
        {"57014", TK_ETIMEDOUT}, {"57P01", TK_ECONN},       {"57P02", TK_ECONN},
        {"57P03", TK_ECONN},
    };
    if (state == NULL)
        return TK_EDB;
    if (strncmp(state, "08", 2) == 0)
        return TK_ECONN;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(state, map[i].state) == 0)
            return map[i].code;
    return TK_EDB;
}

int tk_conn_error_from_result(PGconn *pg, const PGresult *res, tk_error_t *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    int code = code_for_sqlstate(state);
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK)
        code = TK_ECONN;
    if (msg == NULL) {
        msg = pg ? PQerrorMessage(pg) : "no connection";
        if (msg[0] == '\0')
            msg = tk_strerror(code);
    }
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    tk_error_set(err, code, "%.*s", (int)len, msg);
    tk_error_set_sqlstate(err, state);
    if (res != NULL)
        tk_error_set_detail(err, PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
    return code;
}

/* Check a result: TK_OK for command/tuples results, else the mapped error (res is kept). */
static int check_result(tk_conn_t *c, PGresult *res, tk_error_t *err)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY)
        return TK_OK;
    return tk_conn_error_from_result(c->pg, res, err);
}

int tk_conn_exec(tk_conn_t *c, const char *sql, tk_error_t *err)
{
    if (c->pg == NULL)
        return tk_error_set(err, TK_ECONN, "could not run query: not connected");
    PGresult *res = PQexec(c->pg, sql);
    int rc = check_result(c, res, err);
    PQclear(res);
    /* A multi-command string returns only the last result; drain nothing more here. */
    return rc;
}

int tk_conn_warm_up(tk_conn_t *c, tk_error_t *err)
{
    return tk_conn_exec(c, "SELECT tasker.warm_up()", err);
}

static bool is_prepared(const tk_conn_t *c, const tk_stmt_t *stmt)
{
    for (int i = 0; i < c->nprepared; i++)
        if (c->prepared[i] == stmt)
            return true;
    return false;
}

/* Count `stmt` as prepared on this session. */
static int remember(tk_conn_t *c, const tk_stmt_t *stmt, tk_error_t *err)
{
    if (c->nprepared == c->cap_prepared) {
        int cap = c->cap_prepared ? c->cap_prepared * 2 : 16;
        const tk_stmt_t **p = realloc(c->prepared, (size_t)cap * sizeof(*p));
        if (p == NULL)
            return tk_error_set(err, TK_ENOMEM, "could not prepare statement: out of memory");
        c->prepared = p;
        c->cap_prepared = cap;
    }
    c->prepared[c->nprepared++] = stmt;
    return TK_OK;
}

static void forget(tk_conn_t *c, const tk_stmt_t *stmt)
{
    for (int i = 0; i < c->nprepared; i++)
        if (c->prepared[i] == stmt) {
            c->prepared[i] = c->prepared[--c->nprepared];
            return;
        }
}

static int prepare(tk_conn_t *c, const tk_stmt_t *stmt, tk_error_t *err)
{
    int rc = remember(c, stmt, err);
    if (rc != TK_OK)
        return rc;
    PGresult *res = PQprepare(c->pg, stmt->name, stmt->sql, stmt->nparams, NULL);
    rc = check_result(c, res, err);
    PQclear(res);
    if (rc != TK_OK)
        forget(c, stmt);
    return rc;
}

int tk_conn_query(tk_conn_t *c, const tk_stmt_t *stmt, const char *const *params, PGresult **out,
                  tk_error_t *err)
{
    *out = NULL;
    if (c->pg == NULL)
        return tk_error_set(err, TK_ECONN, "could not run \"%s\": not connected", stmt->name);
    if (!is_prepared(c, stmt)) {
        int rc = prepare(c, stmt, err);
        if (rc != TK_OK)
            return rc;
    }
    PGresult *res = PQexecPrepared(c->pg, stmt->name, stmt->nparams, params, NULL, NULL, 0);
    int rc = check_result(c, res, err);
    if (rc != TK_OK) {
        PQclear(res);
        return rc;
    }
    *out = res;
    return TK_OK;
}

int tk_conn_run(tk_conn_t *c, const tk_stmt_t *stmt, const char *const *params, tk_error_t *err)
{
    PGresult *res;
    int rc = tk_conn_query(c, stmt, params, &res, err);
    PQclear(res);
    return rc;
}

/* --- early rows ---------------------------------------------------------------------------- */

/* A statement could not be sent whole: the session's state is unknown, so it is dropped and
 * reconnected on next use (the pool resets a connection that is not ok). */
static int send_failed(tk_conn_t *c, tk_error_t *err)
{
    int rc = tk_conn_error_from_result(c->pg, NULL, err);
    PQfinish(c->pg);
    c->pg = NULL;
    c->early_pending = c->early_rows = 0;
    return rc == TK_EDB ? TK_ECONN : rc;
}

int tk_conn_send_early(tk_conn_t *c, const tk_stmt_t *stmt, const char *const *params,
                       tk_error_t *err)
{
    if (c->pg == NULL)
        return tk_error_set(err, TK_ECONN, "could not run \"%s\": not connected", stmt->name);
    if (c->early_rows == EARLY_MAX)
        return tk_error_set(err, TK_EINVAL, "could not run \"%s\": %d statements in flight",
                            stmt->name, EARLY_MAX);
    /* a statement new to this session is prepared in the same pipeline, just before it */
    bool parse = !is_prepared(c, stmt);
    if (parse && remember(c, stmt, err) != TK_OK)
        return err->code;
    if ((PQpipelineStatus(c->pg) == PQ_PIPELINE_OFF && !PQenterPipelineMode(c->pg)) ||
        (parse && !PQsendPrepare(c->pg, stmt->name, stmt->sql, stmt->nparams, NULL)) ||
        !PQsendQueryPrepared(c->pg, stmt->name, stmt->nparams, params, NULL, NULL, 0) ||
        !PQsendFlushRequest(c->pg) || !PQpipelineSync(c->pg) || PQflush(c->pg) != 0)
        return send_failed(c, err);
    c->early_parsed[(c->early_first + c->early_rows++) % EARLY_MAX] = parse ? stmt : NULL;
    c->early_pending++;
    return TK_OK;
}

int tk_conn_take_rows(tk_conn_t *c, PGresult **out, tk_error_t *err)
{
    *out = NULL;
    if (c->early_rows == 0)
        return tk_error_set(err, TK_EINVAL, "no statement sent early has rows to take");
    const tk_stmt_t *parsed = c->early_parsed[c->early_first];
    c->early_first = (c->early_first + 1) % EARLY_MAX;
    c->early_rows--;
    int rc = TK_OK;
    if (parsed != NULL) {
        PGresult *res = PQgetResult(c->pg);
        rc = check_result(c, res, err);
        PQclear(res);
        PQclear(PQgetResult(c->pg)); /* NULL: the end of the Parse's results */
        if (rc != TK_OK)
            forget(c, parsed);
    }
    PGresult *res = PQgetResult(c->pg);
    if (rc == TK_OK)
        rc = check_result(c, res, err); /* (after a failed Parse: PGRES_PIPELINE_ABORTED) */
    PGresult *end = PQgetResult(c->pg); /* NULL: the end of this statement's results */
    if (end != NULL) {
        PQclear(end);
        if (rc == TK_OK)
            rc = tk_error_set(err, TK_EDB, "unexpected second result of one statement");
    }
    if (rc != TK_OK) {
        PQclear(res);
        return rc;
    }
    *out = res;
    return TK_OK;
}

int tk_conn_take_commit(tk_conn_t *c, tk_error_t *err)
{
    int rc = TK_OK;
    if (c->early_pending == 0)
        return tk_error_set(err, TK_EINVAL, "no statement sent early has a commit to take");
    if (c->early_rows == c->early_pending) {
        /* its rows were never taken: they go with it (a failed statement fails its commit) */
        PGresult *rows;
        rc = tk_conn_take_rows(c, &rows, err);
        PQclear(rows);
    }
    for (int nulls = 0;;) {
        PGresult *res = PQgetResult(c->pg);
        if (res == NULL) {
            /* between results; a broken connection gives no Sync ever */
            if (PQstatus(c->pg) != CONNECTION_OK || ++nulls > 2) {
                if (rc == TK_OK)
                    rc = tk_conn_error_from_result(c->pg, NULL, err);
                break;
            }
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        /* an error raised at commit (a deferred trigger) comes before the Sync */
        if (rc == TK_OK && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            rc = tk_conn_error_from_result(c->pg, res, err);
        PQclear(res);
    }
    if (c->early_pending > 0)
        c->early_pending--;
    if (c->early_pending == 0 && PQstatus(c->pg) == CONNECTION_OK && !PQexitPipelineMode(c->pg)) {
        /* results left over that nobody will read: start afresh on next use */
        PQfinish(c->pg);
        c->pg = NULL;
        if (rc == TK_OK)
            rc = tk_error_set(err, TK_ECONN, "connection left in an unknown state");
    }
    return rc;
}

int tk_conn_early_pending(const tk_conn_t *c)
{
    return c->early_pending;
}
