/*
 * tasker_native.c - the Ruby extension under the TaskerCore library: TaskerCore::Native,
 * a thin wrapper of the embedding API (tasker/worker.h) and of the step accessors
 * (tasker/handler.h). Everything else (handler classes, results, errors) is Ruby, in
 * bindings/ruby/lib.
 *
 *   TaskerCore::Native::Worker.new(config_path, settings, host_handlers, namespaces, health)
 *     #id, #port, #run_next(timeout_ms) { |step| } -> true | nil (timed out / interrupted) |
 *     false (closing), #next / #done (the same in two calls), #close, #stop, #running?
 *   TaskerCore::Native::Step   ids and names, #context/#config/#dependencies/#dependency/
 *     #parents (Ruby objects), the *_json texts, #succeed(value), #fail_step,
 *     #set_error_code, ...; valid until the worker takes it back
 *   TaskerCore::Native.log(level, component, message), .log_threshold, .round_trip(value)
 *
 * Threads and the GVL: waiting for a step releases the GVL, with an unblocking function, so
 * Ctrl-C, Thread#kill and Thread#raise reach a waiting thread: the unblocking function sets
 * the wait's `interrupted` flag and ends the waits in progress (tk_host_worker_wake), and the
 * woken thread sees the flag. An interrupt that lands between the flag check and the start of
 * tk_host_worker_next() is not seen by that wake, so the wait is still cut into slices of
 * NEXT_SLICE_MS, which bound how late such an interrupt can be (one wake-up a second costs
 * nothing that matters). Handing a step back (#done) reports its result, so it releases the
 * GVL too. Everything else runs with the GVL held (the calls are short and never wait for
 * Ruby). Documents cross as Ruby objects converted from and to jansson values here: no JSON
 * text is written or parsed per step.
 *
 * Stopping safely: tk_host_worker_stop() frees the worker, so no thread may be inside
 * tk_host_worker_next() then. Worker#close and #stop close the host worker
 * (tk_host_worker_close: waits in progress and any later one return at once), and #stop then
 * waits (without the GVL) until no thread is inside one before stopping the runtime. #done
 * after #stop only invalidates the step. State changes are recorded inside the functions run
 * without the GVL: an interrupt checked when the GVL is taken back may unwind the caller.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ruby.h>
#include <ruby/encoding.h>
#include <ruby/thread.h>

#include "tasker/handler.h"
#include "tasker/log.h"
#include "tasker/worker.h"

/* Longest single wait inside Worker#next: how late Ctrl-C or Thread#kill can be when it
 * lands just as the wait begins (otherwise tk_host_worker_wake ends the wait at once). */
#define NEXT_SLICE_MS 1000

static VALUE mTaskerCore, mNative, cWorker, cStep, eNativeError;

/* --- Worker ---------------------------------------------------------------------------- */

typedef struct rb_worker_s {
    tk_host_worker_t *w; /* NULL before start and after stop */
    char **strings;      /* copies of settings, handlers and namespaces (one allocation each) */
    size_t nstrings;
    pthread_mutex_t lock; /* guards in_next, and closing against in_next */
    pthread_cond_t idle;  /* signalled when in_next drops to 0 */
    int in_next;          /* threads inside tk_host_worker_next */
    atomic_bool closing;  /* #close or #stop called: #next returns false */
    bool stopping;        /* #stop began (read and written with the GVL held) */
} rb_worker_t;

static void worker_free(void *p)
{
    rb_worker_t *rw = p;
    /* A worker still running when its Ruby object is collected (at exit, or never stopped)
     * is left running: stopping it here could block the garbage collector for the handler
     * timeout. */
    if (rw->w == NULL) {
        for (size_t i = 0; i < rw->nstrings; i++)
            free(rw->strings[i]);
        free(rw->strings);
        pthread_cond_destroy(&rw->idle);
        pthread_mutex_destroy(&rw->lock);
        xfree(rw);
    }
}

static size_t worker_memsize(const void *p)
{
    (void)p;
    return sizeof(rb_worker_t);
}

static const rb_data_type_t worker_type = {
    .wrap_struct_name = "TaskerCore::Native::Worker",
    .function = {.dfree = worker_free, .dsize = worker_memsize},
    .flags = RUBY_TYPED_FREE_IMMEDIATELY,
};

static VALUE worker_alloc(VALUE klass)
{
    rb_worker_t *rw;
    VALUE obj = TypedData_Make_Struct(klass, rb_worker_t, &worker_type, rw);
    pthread_mutex_init(&rw->lock, NULL);
    pthread_cond_init(&rw->idle, NULL);
    atomic_init(&rw->closing, false);
    return obj;
}

static rb_worker_t *get_worker(VALUE self)
{
    rb_worker_t *rw;
    TypedData_Get_Struct(self, rb_worker_t, &worker_type, rw);
    return rw;
}

static rb_worker_t *get_running_worker(VALUE self)
{
    rb_worker_t *rw = get_worker(self);
    if (rw->w == NULL)
        rb_raise(eNativeError, "the worker is not running");
    return rw;
}

/* Copy an Array of Strings (or nil) into a NULL-terminated vector whose strings are owned
 * by rw (freed with it). */
static const char **copy_strings(rb_worker_t *rw, VALUE ary)
{
    if (NIL_P(ary))
        return NULL;
    Check_Type(ary, T_ARRAY);
    long n = RARRAY_LEN(ary);
    const char **vec = calloc((size_t)n + 1, sizeof(*vec));
    char **grown = realloc(rw->strings, (rw->nstrings + (size_t)n + 1) * sizeof(*grown));
    if (vec == NULL || grown == NULL) {
        free(vec);
        if (grown != NULL)
            rw->strings = grown;
        rb_raise(rb_eNoMemError, "out of memory");
    }
    rw->strings = grown;
    rw->strings[rw->nstrings++] = (char *)vec; /* the vector itself, freed with the strings */
    for (long i = 0; i < n; i++) {
        VALUE s = rb_ary_entry(ary, i);
        const char *text = StringValueCStr(s);
        char *copy = strdup(text);
        if (copy == NULL)
            rb_raise(rb_eNoMemError, "out of memory");
        rw->strings[rw->nstrings++] = copy;
        vec[i] = copy;
    }
    return vec;
}

typedef struct start_call_s {
    rb_worker_t *rw;
    tk_host_worker_opts_t opts;
    tk_error_t err;
    int rc;
} start_call_t;

/* Every nogvl function below records its effect on rb_worker_t itself: an interrupt checked
 * when the GVL is taken back may raise before the caller's next line runs. */
static void *start_nogvl(void *arg)
{
    start_call_t *c = arg;
    tk_host_worker_t *w = NULL;
    c->rc = tk_host_worker_start(&c->opts, &w, &c->err);
    pthread_mutex_lock(&c->rw->lock);
    c->rw->w = w;
    pthread_mutex_unlock(&c->rw->lock);
    return NULL;
}

/* Worker.new(config_path, settings, host_handlers, namespaces, serve_health): starts the
 * runtime (loads the configuration, registers the templates, connects). config_path and
 * namespaces may be nil. Raises Native::Error. */
static VALUE worker_initialize(VALUE self, VALUE config_path, VALUE settings, VALUE handlers,
                               VALUE namespaces, VALUE serve_health)
{
    rb_worker_t *rw = get_worker(self);
    if (rw->w != NULL)
        rb_raise(eNativeError, "the worker is already running");
    start_call_t c;
    memset(&c, 0, sizeof(c));
    c.rw = rw;
    if (!NIL_P(config_path)) {
        VALUE path = rb_ary_new_from_args(1, config_path);
        c.opts.config_path = copy_strings(rw, path)[0];
    }
    c.opts.settings = copy_strings(rw, settings);
    c.opts.host_handlers = copy_strings(rw, handlers);
    c.opts.namespaces = copy_strings(rw, namespaces);
    c.opts.serve_health = RTEST(serve_health);
    /* start connects to PostgreSQL and registers templates: let other Ruby threads run */
    rb_thread_call_without_gvl(start_nogvl, &c, NULL, NULL);
    if (c.rc != TK_OK)
        rb_raise(eNativeError, "%s", c.err.message[0] ? c.err.message : tk_strerror(c.rc));
    return self;
}

static VALUE worker_id(VALUE self)
{
    return rb_utf8_str_new_cstr(tk_host_worker_id(get_running_worker(self)->w));
}

/* port: the port the health endpoint listens on (the one chosen for worker.port=0), or nil
 * when the worker serves none. */
static VALUE worker_port(VALUE self)
{
    int port = tk_host_worker_port(get_running_worker(self)->w);
    return port > 0 ? INT2NUM(port) : Qnil;
}

typedef struct next_call_s {
    rb_worker_t *rw;
    int timeout_ms;
    atomic_bool interrupted;
    tk_step_t *step;
    int rc;
} next_call_t;

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *next_nogvl(void *arg)
{
    next_call_t *c = arg;
    int64_t deadline = c->timeout_ms < 0 ? INT64_MAX : monotonic_ms() + c->timeout_ms;
    c->rc = TK_ETIMEDOUT;
    while (!atomic_load(&c->interrupted) && !atomic_load(&c->rw->closing)) {
        int64_t left = deadline - monotonic_ms();
        if (left <= 0)
            break;
        c->rc = tk_host_worker_next(c->rw->w, left > NEXT_SLICE_MS ? NEXT_SLICE_MS : (int)left,
                                    &c->step);
        if (c->rc != TK_ETIMEDOUT)
            break;
    }
    return NULL;
}

/* The unblocking function: runs on the interrupting thread while this wait's thread is
 * inside next_nogvl (so rw->w is alive: #stop waits for in_next to drop to 0). */
static void next_ubf(void *arg)
{
    next_call_t *c = arg;
    atomic_store(&c->interrupted, true);
    tk_host_worker_wake(c->rw->w);
}

static VALUE step_wrap(VALUE worker, tk_step_t *step);

/* Wait for a step without the GVL. TK_OK with *step, TK_ETIMEDOUT (also when interrupted),
 * or TK_ESHUTDOWN when closing. RB_NOGVL_INTR_FAIL: interrupts are not checked on the way
 * back (that could unwind past the bookkeeping and drop a step in hand); the callers check
 * them when they have no step. */
static int wait_step(rb_worker_t *rw, int timeout_ms, tk_step_t **step)
{
    next_call_t c = {.rw = rw, .timeout_ms = timeout_ms, .rc = TK_ETIMEDOUT};
    atomic_init(&c.interrupted, false);
    *step = NULL;
    /* closing is tested under the lock that #stop takes to wait for in_next == 0, so no
     * thread can enter tk_host_worker_next once #stop has seen it empty */
    pthread_mutex_lock(&rw->lock);
    bool closed = rw->w == NULL || atomic_load(&rw->closing);
    if (!closed)
        rw->in_next++;
    pthread_mutex_unlock(&rw->lock);
    if (closed)
        return TK_ESHUTDOWN;
    rb_nogvl(next_nogvl, &c, next_ubf, &c, RB_NOGVL_INTR_FAIL);
    pthread_mutex_lock(&rw->lock);
    if (--rw->in_next == 0)
        pthread_cond_broadcast(&rw->idle);
    pthread_mutex_unlock(&rw->lock);
    if (c.rc == TK_OK && c.step != NULL) {
        *step = c.step;
        return TK_OK;
    }
    return c.rc == TK_ESHUTDOWN || atomic_load(&rw->closing) ? TK_ESHUTDOWN : TK_ETIMEDOUT;
}

/* next(timeout_ms): a Step, nil when nothing came (timed out or interrupted), or false once
 * the worker is closing or stopped. timeout_ms < 0 waits until one of those. The caller must
 * hand the step back with #done even if it is killed: prefer #run_next. */
static VALUE worker_next(VALUE self, VALUE timeout)
{
    tk_step_t *step;
    int rc = wait_step(get_worker(self), NUM2INT(timeout), &step);
    if (rc == TK_OK)
        return step_wrap(self, step);
    if (rc == TK_ESHUTDOWN)
        return Qfalse;
    rb_thread_check_ints(); /* Thread#kill, Thread#raise, signals */
    return Qnil;
}

static VALUE worker_done(VALUE self, VALUE step);

typedef struct run_next_s {
    VALUE self, step;
} run_next_t;

static VALUE run_next_body(VALUE arg)
{
    return rb_yield(((run_next_t *)arg)->step);
}

static VALUE run_next_ensure(VALUE arg)
{
    run_next_t *r = (run_next_t *)arg;
    return worker_done(r->self, r->step);
}

/* run_next(timeout_ms) { |step| ... }: wait as #next; with a step, yield it and hand it back
 * afterwards whatever happens (exception, Thread#kill): no Ruby code runs between taking
 * the step and the ensure. true after a step, nil when none came, false when closing. */
static VALUE worker_run_next(VALUE self, VALUE timeout)
{
    rb_need_block();
    tk_step_t *step;
    int rc = wait_step(get_worker(self), NUM2INT(timeout), &step);
    if (rc == TK_OK) {
        run_next_t r = {self, step_wrap(self, step)};
        rb_ensure(run_next_body, (VALUE)&r, run_next_ensure, (VALUE)&r);
        RB_GC_GUARD(r.step);
        return Qtrue;
    }
    if (rc == TK_ESHUTDOWN)
        return Qfalse;
    rb_thread_check_ints();
    return Qnil;
}

/* close: no new steps; threads in #next return false at once. */
static VALUE worker_close(VALUE self)
{
    rb_worker_t *rw = get_worker(self);
    pthread_mutex_lock(&rw->lock);
    atomic_store(&rw->closing, true);
    if (rw->w != NULL && !rw->stopping) /* (#stop frees rw->w only after setting stopping) */
        tk_host_worker_close(rw->w);
    pthread_mutex_unlock(&rw->lock);
    return Qnil;
}

static void *stop_nogvl(void *arg)
{
    rb_worker_t *rw = arg;
    pthread_mutex_lock(&rw->lock);
    atomic_store(&rw->closing, true);
    tk_host_worker_close(rw->w); /* every wait, and any about to begin, returns at once */
    while (rw->in_next > 0)
        pthread_cond_wait(&rw->idle, &rw->lock);
    tk_host_worker_t *w = rw->w;
    pthread_mutex_unlock(&rw->lock);
    tk_host_worker_stop(w);
    pthread_mutex_lock(&rw->lock);
    rw->w = NULL;
    pthread_mutex_unlock(&rw->lock);
    return NULL;
}

/* stop: close, wait for threads to leave #next, then stop the runtime (steps not yet handed to
 * Ruby fail as worker_stopping and are retried; steps being handled are waited for up to the
 * handler timeout). The GVL is released so handlers still running can finish. Idempotent. */
static VALUE worker_stop(VALUE self)
{
    rb_worker_t *rw = get_worker(self);
    if (rw->w == NULL || rw->stopping)
        return Qnil;
    rw->stopping = true;
    rb_thread_call_without_gvl(stop_nogvl, rw, NULL, NULL);
    return Qnil;
}

static VALUE worker_running_p(VALUE self)
{
    return get_worker(self)->w != NULL ? Qtrue : Qfalse;
}

/* --- JSON <-> Ruby --------------------------------------------------------------------- */

/* A jansson value as a Ruby object: Hash (frozen, deduplicated String keys, as JSON.parse
 * makes them), Array, String (UTF-8), Integer, Float, true, false, nil. Converting here
 * instead of JSON.parse on the text saves encoding and parsing on every step. */
static VALUE json_to_ruby(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        VALUE h = rb_hash_new();
        const char *key;
        size_t key_len;
        json_t *value;
        json_object_keylen_foreach((json_t *)v, key, key_len, value)
        {
            rb_hash_aset(h, rb_enc_interned_str(key, (long)key_len, rb_utf8_encoding()),
                         json_to_ruby(value));
        }
        return h;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        VALUE a = rb_ary_new_capa((long)n);
        for (size_t i = 0; i < n; i++)
            rb_ary_push(a, json_to_ruby(json_array_get(v, i)));
        return a;
    }
    case JSON_STRING:
        return rb_utf8_str_new(json_string_value(v), (long)json_string_length(v));
    case JSON_INTEGER:
        return LL2NUM(json_integer_value(v));
    case JSON_REAL:
        return DBL2NUM(json_real_value(v));
    case JSON_TRUE:
        return Qtrue;
    case JSON_FALSE:
        return Qfalse;
    case JSON_NULL:
    default:
        return Qnil;
    }
}

#define CONV_MAX_DEPTH 100

/* State of one Ruby -> JSON conversion: where we are (for the message) and what went wrong. */
typedef struct conv_s {
    char path[256];
    size_t path_len;
    int depth;
    bool big;          /* an Integer beyond 64 bits: use the JSON text path to keep it exact */
    char problem[512]; /* "" while all is well */
} conv_t;

static json_t *ruby_to_json(VALUE v, conv_t *c);

static void conv_fail(conv_t *c, const char *what)
{
    if (c->problem[0] == '\0')
        snprintf(c->problem, sizeof(c->problem), "%s %s",
                 c->path_len ? c->path + (c->path[0] == '.') : "the value", what);
}

/* Append text to the path (cut at its size); returns the length to restore. */
static size_t path_push(conv_t *c, const char *text, size_t len)
{
    size_t saved = c->path_len;
    size_t room = sizeof(c->path) - 1 - c->path_len;
    if (len > room)
        len = room;
    memcpy(c->path + c->path_len, text, len);
    c->path_len += len;
    c->path[c->path_len] = '\0';
    return saved;
}

static size_t path_push_key(conv_t *c, VALUE key)
{
    char text[72];
    int n = snprintf(text, sizeof(text), ".%.*s",
                     (int)(RSTRING_LEN(key) > 64 ? 64 : RSTRING_LEN(key)), RSTRING_PTR(key));
    return path_push(c, text, n > 0 ? (size_t)n : 0);
}

static size_t path_push_index(conv_t *c, long index)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "[%ld]", index);
    return path_push(c, text, n > 0 ? (size_t)n : 0);
}

static void path_pop(conv_t *c, size_t saved)
{
    c->path_len = saved;
    c->path[saved] = '\0';
}

/* A Ruby String as UTF-8 bytes (NULL with a problem when it cannot be). */
static VALUE utf8_string(VALUE str, conv_t *c)
{
    rb_encoding *enc = rb_enc_get(str);
    if (enc != rb_utf8_encoding() && enc != rb_usascii_encoding() &&
        rb_enc_str_coderange(str) != ENC_CODERANGE_7BIT) {
        if (enc == rb_ascii8bit_encoding()) {
            conv_fail(c, "is binary data (an ASCII-8BIT String), not text");
            return Qnil;
        }
        str = rb_str_conv_enc(str, enc, rb_utf8_encoding());
    }
    if (rb_enc_str_coderange(str) == ENC_CODERANGE_BROKEN) {
        conv_fail(c, "is not valid UTF-8");
        return Qnil;
    }
    return str;
}

typedef struct hash_iter_s {
    json_t *obj;
    conv_t *c;
} hash_iter_t;

static int hash_entry(VALUE key, VALUE value, VALUE arg)
{
    hash_iter_t *it = (hash_iter_t *)arg;
    conv_t *c = it->c;
    if (RB_TYPE_P(key, T_SYMBOL))
        key = rb_sym2str(key);
    if (!RB_TYPE_P(key, T_STRING)) {
        char what[160];
        snprintf(what, sizeof(what), "has a key of class %s; keys must be strings",
                 rb_obj_classname(key));
        conv_fail(c, what);
        return ST_STOP;
    }
    size_t saved = path_push_key(c, key);
    VALUE k = utf8_string(key, c);
    json_t *j = NIL_P(k) ? NULL : ruby_to_json(value, c);
    if (j != NULL && json_object_setn_new(it->obj, RSTRING_PTR(k), (size_t)RSTRING_LEN(k), j) != 0)
        conv_fail(c, "could not be stored");
    path_pop(c, saved);
    return c->problem[0] ? ST_STOP : ST_CONTINUE;
}

static json_t *ruby_to_json(VALUE v, conv_t *c)
{
    if (c->depth >= CONV_MAX_DEPTH) {
        conv_fail(c, "is nested more than 100 levels deep (a cycle?)");
        return NULL;
    }
    json_t *out = NULL;
    switch (rb_type(v)) {
    case T_NIL:
        return json_null();
    case T_TRUE:
        return json_true();
    case T_FALSE:
        return json_false();
    case T_FIXNUM:
        return json_integer((json_int_t)FIX2LONG(v));
    case T_BIGNUM:
        if (rb_absint_numwords(v, 63, NULL) <= 1) /* |v| < 2^63 */
            return json_integer((json_int_t)NUM2LL(v));
        c->big = true;
        return json_real(rb_big2dbl(v));
    case T_FLOAT: {
        double d = RFLOAT_VALUE(v);
        if (!isfinite(d)) {
            conv_fail(c, d != d ? "is NaN, which JSON cannot represent"
                                : "is Infinity, which JSON cannot represent");
            return NULL;
        }
        return json_real(d);
    }
    case T_SYMBOL:
        v = rb_sym2str(v);
        /* fall through */
    case T_STRING: {
        VALUE s = utf8_string(v, c);
        if (NIL_P(s))
            return NULL;
        out = json_stringn(RSTRING_PTR(s), (size_t)RSTRING_LEN(s));
        if (out == NULL)
            conv_fail(c, "is not valid UTF-8");
        return out;
    }
    case T_ARRAY: {
        out = json_array();
        c->depth++;
        for (long i = 0; out != NULL && i < RARRAY_LEN(v) && !c->problem[0]; i++) {
            size_t saved = path_push_index(c, i);
            json_t *item = ruby_to_json(rb_ary_entry(v, i), c);
            if (item != NULL)
                json_array_append_new(out, item);
            path_pop(c, saved);
        }
        c->depth--;
        break;
    }
    case T_HASH: {
        out = json_object();
        hash_iter_t it = {out, c};
        c->depth++;
        if (out != NULL)
            rb_hash_foreach(v, hash_entry, (VALUE)&it);
        c->depth--;
        break;
    }
    default: {
        char what[160];
        snprintf(what, sizeof(what), "is a %s", rb_obj_classname(v));
        conv_fail(c, what);
        return NULL;
    }
    }
    if (out == NULL)
        conv_fail(c, "could not be converted: out of memory");
    if (c->problem[0]) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* Convert for storing: the JSON value, or NULL with *result set to the problem (a String)
 * or :text (exact only as JSON text: an Integer beyond 64 bits). */
static json_t *convert_value(VALUE value, VALUE *result)
{
    conv_t c;
    memset(&c, 0, sizeof(c));
    json_t *j = ruby_to_json(value, &c);
    if (j == NULL) {
        *result = rb_utf8_str_new_cstr(c.problem);
        return NULL;
    }
    if (c.big) {
        json_decref(j);
        *result = ID2SYM(rb_intern("text"));
        return NULL;
    }
    *result = Qnil;
    return j;
}

/* --- Step ------------------------------------------------------------------------------ */

typedef struct rb_step_s {
    tk_step_t *step; /* NULL once handed back */
    VALUE worker;
} rb_step_t;

static void step_mark(void *p)
{
    rb_gc_mark(((rb_step_t *)p)->worker);
}

static void step_free(void *p)
{
    xfree(p); /* the tk_step_t belongs to the runtime */
}

static size_t step_memsize(const void *p)
{
    (void)p;
    return sizeof(rb_step_t);
}

static const rb_data_type_t step_type = {
    .wrap_struct_name = "TaskerCore::Native::Step",
    .function = {.dmark = step_mark, .dfree = step_free, .dsize = step_memsize},
    .flags = RUBY_TYPED_FREE_IMMEDIATELY,
};

static VALUE step_wrap(VALUE worker, tk_step_t *step)
{
    rb_step_t *rs;
    VALUE obj = TypedData_Make_Struct(cStep, rb_step_t, &step_type, rs);
    rs->step = step;
    rs->worker = worker;
    return obj;
}

static rb_step_t *get_step_data(VALUE self)
{
    rb_step_t *rs;
    TypedData_Get_Struct(self, rb_step_t, &step_type, rs);
    return rs;
}

static tk_step_t *get_step(VALUE self)
{
    rb_step_t *rs = get_step_data(self);
    if (rs->step == NULL)
        rb_raise(eNativeError, "the step was already handed back to the worker");
    return rs->step;
}

typedef struct done_call_s {
    tk_host_worker_t *w;
    tk_step_t *step;
} done_call_t;

static void *done_nogvl(void *arg)
{
    done_call_t *c = arg;
    tk_host_worker_done(c->w, c->step);
    return NULL;
}

/* done(step): hand the step back and report its result (a step without an outcome fails as
 * handler_error), without the GVL: it is a database round trip. The runtime keeps the host
 * worker for as long as a step is out (#stop waits for it, or leaves the worker allocated),
 * so rw->w read under the lock stays usable after it is released. */
static VALUE worker_done(VALUE self, VALUE step)
{
    rb_worker_t *rw = get_worker(self);
    rb_step_t *rs = get_step_data(step);
    if (rs->step == NULL)
        return Qnil;
    done_call_t c = {.step = rs->step};
    rs->step = NULL;
    pthread_mutex_lock(&rw->lock);
    c.w = rw->w;
    pthread_mutex_unlock(&rw->lock);
    if (c.w != NULL)
        rb_thread_call_without_gvl(done_nogvl, &c, NULL, NULL);
    return Qnil;
}

static VALUE str_or_nil(const char *s)
{
    return s != NULL ? rb_utf8_str_new_cstr(s) : Qnil;
}

#define STEP_STRING(fn, getter)                                                                    \
    static VALUE fn(VALUE self)                                                                    \
    {                                                                                              \
        return str_or_nil(getter(get_step(self)));                                                 \
    }

STEP_STRING(step_task_uuid, tk_step_task_uuid)
STEP_STRING(step_uuid, tk_step_uuid)
STEP_STRING(step_correlation_id, tk_step_correlation_id)
STEP_STRING(step_name, tk_step_name)
STEP_STRING(step_namespace, tk_step_namespace)
STEP_STRING(step_task_name, tk_step_task_name)
STEP_STRING(step_task_version, tk_step_task_version)
STEP_STRING(step_handler_name, tk_step_handler_name)
STEP_STRING(step_context_json, tk_step_context_json)
STEP_STRING(step_config_json, tk_step_config_json)
STEP_STRING(step_dependencies_json, tk_step_dependencies_json)
STEP_STRING(step_parents_json, tk_step_parents_json)

static VALUE step_attempt(VALUE self)
{
    return INT2NUM(tk_step_attempt(get_step(self)));
}

static VALUE step_max_attempts(VALUE self)
{
    return INT2NUM(tk_step_max_attempts(get_step(self)));
}

static VALUE step_deadline_ms(VALUE self)
{
    return LL2NUM(tk_step_deadline_ms(get_step(self)));
}

static VALUE step_valid_p(VALUE self)
{
    return get_step_data(self)->step != NULL ? Qtrue : Qfalse;
}

/* The documents as Ruby objects (converted on each call; the library caches them). */
static VALUE step_context(VALUE self)
{
    return json_to_ruby(tk_step_context(get_step(self)));
}

static VALUE step_config(VALUE self)
{
    return json_to_ruby(tk_step_config(get_step(self)));
}

static VALUE step_dependencies(VALUE self)
{
    return json_to_ruby(tk_step_dependencies(get_step(self)));
}

static VALUE step_parents(VALUE self)
{
    return json_to_ruby(tk_step_parents(get_step(self)));
}

/* dependency(name): one ancestor's result, or nil. */
static VALUE step_dependency(VALUE self, VALUE name)
{
    const json_t *v = tk_step_dependency(get_step(self), StringValueCStr(name));
    return v != NULL ? json_to_ruby(v) : Qnil;
}

/* succeed(value): end the step with `value` as its result. nil when done; otherwise the
 * outcome is not set and the answer is a String saying what JSON cannot hold, :text when
 * the value is exact only as JSON text (use succeed_json), or false when an outcome was
 * already set. */
static VALUE step_succeed(VALUE self, VALUE value)
{
    tk_step_t *step = get_step(self);
    VALUE answer;
    json_t *j = convert_value(value, &answer);
    if (j == NULL)
        return answer;
    return tk_step_succeed(step, j) == TK_OK ? Qnil : Qfalse;
}

/* set_metadata(hash): metadata.custom; answers as succeed. */
static VALUE step_set_metadata(VALUE self, VALUE value)
{
    tk_step_t *step = get_step(self);
    if (!RB_TYPE_P(value, T_HASH))
        return rb_utf8_str_new_cstr("metadata must be a Hash");
    VALUE answer;
    json_t *j = convert_value(value, &answer);
    if (j == NULL)
        return answer;
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int rc = text != NULL ? tk_step_set_metadata_json(step, text) : TK_ENOMEM;
    free(text);
    return rc == TK_OK ? Qnil : Qfalse;
}

/* succeed_json(text): true, or false when text is not JSON or an outcome was already set. */
static VALUE step_succeed_json(VALUE self, VALUE json)
{
    tk_step_t *step = get_step(self);
    return tk_step_succeed_json(step, StringValueCStr(json)) == TK_OK ? Qtrue : Qfalse;
}

/* fail_step(error_type, message, retryable): true, or false when an outcome was already set. */
static VALUE step_fail(VALUE self, VALUE error_type, VALUE message, VALUE retryable)
{
    tk_step_t *step = get_step(self);
    const char *type = NIL_P(error_type) ? NULL : StringValueCStr(error_type);
    const char *msg = NIL_P(message) ? NULL : StringValueCStr(message);
    return tk_step_fail(step, type, msg, RTEST(retryable)) == TK_OK ? Qtrue : Qfalse;
}

static VALUE step_set_retry_after(VALUE self, VALUE seconds)
{
    tk_step_set_retry_after(get_step(self), NUM2DBL(seconds));
    return Qnil;
}

/* set_error_code(code): after #fail_step, the failure's metadata.error_code (nil removes it). */
static VALUE step_set_error_code(VALUE self, VALUE code)
{
    tk_step_t *step = get_step(self);
    tk_step_set_error_code(step, NIL_P(code) ? NULL : StringValueCStr(code));
    return Qnil;
}

static VALUE step_set_metadata_json(VALUE self, VALUE json)
{
    tk_step_t *step = get_step(self);
    return tk_step_set_metadata_json(step, StringValueCStr(json)) == TK_OK ? Qtrue : Qfalse;
}

static VALUE step_set_backtrace_json(VALUE self, VALUE json)
{
    tk_step_t *step = get_step(self);
    return tk_step_set_backtrace_json(step, StringValueCStr(json)) == TK_OK ? Qtrue : Qfalse;
}

static tk_log_level_t level_of(VALUE level)
{
    int l = NUM2INT(level);
    return (tk_log_level_t)(l < TK_LOG_ERROR ? TK_LOG_ERROR : l > TK_LOG_TRACE ? TK_LOG_TRACE : l);
}

/* log(level, message): a "handler" line with the step's ids (levels as tasker/log.h). */
static VALUE step_log(VALUE self, VALUE level, VALUE message)
{
    tk_step_t *step = get_step(self);
    tk_log_level_t l = level_of(level);
    if ((int)l > tk_log_threshold)
        return Qnil;
    StringValue(message);
    tk_step_log(step, l, "%.*s", (int)RSTRING_LEN(message), RSTRING_PTR(message));
    return Qnil;
}

/* --- Module functions ------------------------------------------------------------------ */

/* Native.log(level, component, message): a JSON line on tasker's log. */
static VALUE native_log(VALUE mod, VALUE level, VALUE component, VALUE message)
{
    (void)mod;
    tk_log_level_t l = level_of(level);
    if ((int)l > tk_log_threshold)
        return Qnil;
    tk_host_log(l, StringValueCStr(component), StringValueCStr(message));
    return Qnil;
}

/* Native.round_trip(value): value converted to JSON and back as a step would store and read
 * it; or the problem String, or :text (for tests of the conversions). */
static VALUE native_round_trip(VALUE mod, VALUE value)
{
    (void)mod;
    VALUE answer;
    json_t *j = convert_value(value, &answer);
    if (j == NULL)
        return answer;
    VALUE back = json_to_ruby(j);
    json_decref(j);
    return back;
}

/* Native.log_threshold: the most verbose level written (0 error .. 4 trace). */
static VALUE native_log_threshold(VALUE mod)
{
    (void)mod;
    return INT2NUM(tk_log_threshold);
}

__attribute__((visibility("default"))) void Init_tasker_native(void);

void Init_tasker_native(void)
{
    mTaskerCore = rb_define_module("TaskerCore");
    mNative = rb_define_module_under(mTaskerCore, "Native");
    eNativeError = rb_define_class_under(mNative, "Error", rb_eStandardError);

    rb_define_module_function(mNative, "log", native_log, 3);
    rb_define_module_function(mNative, "log_threshold", native_log_threshold, 0);
    rb_define_module_function(mNative, "round_trip", native_round_trip, 1);
    rb_define_const(mNative, "SLICE_MS", INT2NUM(NEXT_SLICE_MS));

    cWorker = rb_define_class_under(mNative, "Worker", rb_cObject);
    rb_define_alloc_func(cWorker, worker_alloc);
    rb_define_method(cWorker, "initialize", worker_initialize, 5);
    rb_define_method(cWorker, "id", worker_id, 0);
    rb_define_method(cWorker, "port", worker_port, 0);
    rb_define_method(cWorker, "next", worker_next, 1);
    rb_define_method(cWorker, "done", worker_done, 1);
    rb_define_method(cWorker, "run_next", worker_run_next, 1);
    rb_define_method(cWorker, "close", worker_close, 0);
    rb_define_method(cWorker, "stop", worker_stop, 0);
    rb_define_method(cWorker, "running?", worker_running_p, 0);

    cStep = rb_define_class_under(mNative, "Step", rb_cObject);
    rb_undef_alloc_func(cStep);
    rb_define_method(cStep, "task_uuid", step_task_uuid, 0);
    rb_define_method(cStep, "step_uuid", step_uuid, 0);
    rb_define_method(cStep, "correlation_id", step_correlation_id, 0);
    rb_define_method(cStep, "name", step_name, 0);
    rb_define_method(cStep, "namespace_name", step_namespace, 0);
    rb_define_method(cStep, "task_name", step_task_name, 0);
    rb_define_method(cStep, "task_version", step_task_version, 0);
    rb_define_method(cStep, "handler_name", step_handler_name, 0);
    rb_define_method(cStep, "context_json", step_context_json, 0);
    rb_define_method(cStep, "config_json", step_config_json, 0);
    rb_define_method(cStep, "dependencies_json", step_dependencies_json, 0);
    rb_define_method(cStep, "parents_json", step_parents_json, 0);
    rb_define_method(cStep, "attempt", step_attempt, 0);
    rb_define_method(cStep, "max_attempts", step_max_attempts, 0);
    rb_define_method(cStep, "deadline_ms", step_deadline_ms, 0);
    rb_define_method(cStep, "valid?", step_valid_p, 0);
    rb_define_method(cStep, "context", step_context, 0);
    rb_define_method(cStep, "config", step_config, 0);
    rb_define_method(cStep, "dependencies", step_dependencies, 0);
    rb_define_method(cStep, "dependency", step_dependency, 1);
    rb_define_method(cStep, "parents", step_parents, 0);
    rb_define_method(cStep, "succeed", step_succeed, 1);
    rb_define_method(cStep, "set_metadata", step_set_metadata, 1);
    rb_define_method(cStep, "succeed_json", step_succeed_json, 1);
    rb_define_method(cStep, "fail_step", step_fail, 3);
    rb_define_method(cStep, "set_retry_after", step_set_retry_after, 1);
    rb_define_method(cStep, "set_error_code", step_set_error_code, 1);
    rb_define_method(cStep, "set_metadata_json", step_set_metadata_json, 1);
    rb_define_method(cStep, "set_backtrace_json", step_set_backtrace_json, 1);
    rb_define_method(cStep, "log", step_log, 2);
}
