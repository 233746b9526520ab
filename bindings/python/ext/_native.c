/*
 * _native.c - tasker._native, the C half of the Python binding: a thin layer over the
 * embedding API (tasker/worker.h) and the step accessors (tasker/handler.h). Everything
 * else (handler classes, resolution, result conversion, the CLI) is Python in tasker/.
 *
 *   Worker(settings, handlers, namespaces=None, config_path=None, serve_health=True)
 *       starts a host worker (tk_host_worker_start) serving `handlers` (callable names);
 *       .id, .port, .next(timeout_ms=-1) -> Step | None, .done(step), .stop()
 *   Step    one claimed step: ids, attempt, the JSON texts, succeed_json/fail/set_* (among
 *       them set_error_code) and log
 *   template_steps(path), config(config_path, settings), log(level, component, message),
 *   log_enabled(level), clock_ms(), Error, Stopped, LOG_* levels
 *
 * Threads: any number of Python threads may call next() at once. next() releases the GIL
 * while it waits. In the main thread it waits in slices of POLL_SLICE_MS, checking for
 * signals in between, so that Ctrl-C is noticed (signal handlers run only there); other
 * threads wait for their whole timeout in one call. done() reports the step's result, so it
 * releases the GIL too. stop() closes the host worker
 * (tk_host_worker_close: the waits in progress and any about to begin return at once), waits
 * until no thread is inside tk_host_worker_next (which must not run when the host worker is
 * freed), then stops it with the GIL released so that handlers still running in Python
 * threads can finish and hand their steps back.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/json_util.h"
#include "tasker/log.h"
#include "tasker/worker.h"
#include "template/template.h"

/* Longest one wait inside next() in the main thread: bounds how late a signal is noticed. */
#define POLL_SLICE_MS 100

static unsigned long main_thread_ident; /* threading.main_thread().ident, read at import */

static PyObject *native_error;   /* tasker._native.Error(RuntimeError), .code = TK_E* */
static PyObject *native_stopped; /* tasker._native.Stopped: the worker is stopping */

/* ---- strings -------------------------------------------------------------------------- */

/* A NULL-terminated array of malloc'ed copies of a sequence of str (None: empty). */
static char **strv_from(PyObject *seq, const char *what)
{
    Py_ssize_t n = 0;
    PyObject *fast = NULL;
    if (seq != NULL && seq != Py_None) {
        fast = PySequence_Fast(seq, what);
        if (fast == NULL)
            return NULL;
        n = PySequence_Fast_GET_SIZE(fast);
    }
    char **v = calloc((size_t)n + 1, sizeof(char *));
    if (v == NULL) {
        Py_XDECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        const char *s = PyUnicode_Check(item) ? PyUnicode_AsUTF8(item) : NULL;
        if (s == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "%s must be strings", what);
            goto fail;
        }
        v[i] = strdup(s);
        if (v[i] == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    Py_XDECREF(fast);
    return v;
fail:
    for (Py_ssize_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    Py_XDECREF(fast);
    return NULL;
}

static void strv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

static PyObject *raise_tk(int code, const char *message)
{
    PyObject *exc = PyObject_CallFunction(native_error, "s", message);
    if (exc != NULL) {
        PyObject *c = PyLong_FromLong(code);
        if (c != NULL)
            PyObject_SetAttrString(exc, "code", c);
        Py_XDECREF(c);
        PyErr_SetObject(native_error, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

/* ---- Worker --------------------------------------------------------------------------- */

typedef enum { W_RUNNING, W_STOPPING, W_STOPPED } wstate_t;

typedef struct {
    PyObject ob_base;
    tk_host_worker_t *w;
    pthread_mutex_t lock; /* guards state and polling */
    pthread_cond_t idle;  /* polling dropped to 0 */
    int polling;          /* threads inside tk_host_worker_next */
    wstate_t state;
    bool initialized;
    char **settings, **handlers, **namespaces; /* kept for the host worker's lifetime */
    char *config_path;
    char *id;
} WorkerObject;

typedef struct {
    PyObject ob_base;
    WorkerObject *worker; /* strong reference */
    tk_step_t *step;      /* NULL once handed back */
} StepObject;

static PyTypeObject *WorkerType; /* heap types, created at import */
static PyTypeObject *StepType;

static PyObject *worker_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"settings",    "handlers",     "namespaces",
                             "config_path", "serve_health", NULL};
    PyObject *settings = NULL, *handlers = NULL, *namespaces = NULL;
    const char *config_path = NULL;
    int serve_health = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|Ozp", kwlist, &settings, &handlers,
                                     &namespaces, &config_path, &serve_health))
        return NULL;
    WorkerObject *self = (WorkerObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->idle, NULL);
    self->initialized = true;
    self->state = W_STOPPED;
    self->settings = strv_from(settings, "settings");
    self->handlers = self->settings ? strv_from(handlers, "handlers") : NULL;
    self->namespaces = self->handlers ? strv_from(namespaces, "namespaces") : NULL;
    if (self->namespaces == NULL)
        goto fail;
    if (config_path != NULL && (self->config_path = strdup(config_path)) == NULL) {
        PyErr_NoMemory();
        goto fail;
    }

    tk_host_worker_opts_t opts = {
        .config_path = self->config_path,
        .settings = (const char *const *)self->settings,
        .host_handlers = (const char *const *)self->handlers,
        .namespaces = self->namespaces[0] ? (const char *const *)self->namespaces : NULL,
        .serve_health = serve_health != 0,
    };
    tk_error_t err;
    PyThreadState *ts = PyEval_SaveThread();
    int rc = tk_host_worker_start(&opts, &self->w, &err);
    PyEval_RestoreThread(ts);
    if (rc != TK_OK) {
        raise_tk(rc, err.message);
        goto fail;
    }
    self->id = strdup(tk_host_worker_id(self->w));
    self->state = W_RUNNING;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

/* Stop the host worker (GIL released by the caller). */
static void worker_stop_nogil(WorkerObject *self)
{
    pthread_mutex_lock(&self->lock);
    if (self->state != W_RUNNING) {
        pthread_mutex_unlock(&self->lock);
        return;
    }
    self->state = W_STOPPING;      /* next() refuses new waits from now on */
    tk_host_worker_close(self->w); /* and the waits in progress, or about to begin, end */
    while (self->polling > 0)
        pthread_cond_wait(&self->idle, &self->lock);
    pthread_mutex_unlock(&self->lock);
    /* Steps with Python threads are waited for: done() stays usable until this returns. */
    tk_host_worker_stop(self->w);
    pthread_mutex_lock(&self->lock);
    self->w = NULL;
    self->state = W_STOPPED;
    pthread_mutex_unlock(&self->lock);
}

static void worker_dealloc(WorkerObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    if (self->initialized) {
        if (self->state == W_RUNNING) {
            PyThreadState *ts = PyEval_SaveThread();
            worker_stop_nogil(self);
            PyEval_RestoreThread(ts);
        }
        pthread_cond_destroy(&self->idle);
        pthread_mutex_destroy(&self->lock);
    }
    strv_free(self->settings);
    strv_free(self->handlers);
    strv_free(self->namespaces);
    free(self->config_path);
    free(self->id);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *step_wrap(WorkerObject *worker, tk_step_t *step)
{
    StepObject *s = PyObject_New(StepObject, StepType);
    if (s == NULL) {
        tk_host_worker_done(worker->w, step); /* reported as a retryable handler_error */
        return NULL;
    }
    Py_INCREF(worker);
    s->worker = worker;
    s->step = step;
    return (PyObject *)s;
}

static PyObject *worker_next(WorkerObject *self, PyObject *args)
{
    int timeout_ms = -1;
    if (!PyArg_ParseTuple(args, "|i:next", &timeout_ms))
        return NULL;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : tk_clock_ms() + timeout_ms;
    bool sliced = PyThread_get_thread_ident() == main_thread_ident;
    for (;;) {
        pthread_mutex_lock(&self->lock);
        if (self->state != W_RUNNING) {
            pthread_mutex_unlock(&self->lock);
            PyErr_SetString(native_stopped, "the worker is stopping");
            return NULL;
        }
        self->polling++;
        pthread_mutex_unlock(&self->lock);

        int slice = -1; /* other threads without a timeout: until a step, stop() or a wake */
        if (timeout_ms >= 0 || sliced) {
            int64_t left = deadline - tk_clock_ms();
            int64_t cap = sliced ? POLL_SLICE_MS : INT_MAX;
            slice = left <= 0 ? 0 : (int)(left < cap ? left : cap);
        }
        tk_step_t *step = NULL;
        PyThreadState *ts = PyEval_SaveThread();
        int rc = tk_host_worker_next(self->w, slice, &step);
        pthread_mutex_lock(&self->lock);
        if (--self->polling == 0)
            pthread_cond_broadcast(&self->idle);
        pthread_mutex_unlock(&self->lock);
        PyEval_RestoreThread(ts);

        if (rc == TK_OK)
            return step_wrap(self, step);
        if (rc == TK_ESHUTDOWN) {
            PyErr_SetString(native_stopped, "the worker is stopping");
            return NULL;
        }
        if (PyErr_CheckSignals() < 0)
            return NULL;
        if (tk_clock_ms() >= deadline)
            Py_RETURN_NONE;
    }
}

static PyObject *worker_done(WorkerObject *self, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, StepType) || ((StepObject *)arg)->worker != self) {
        PyErr_SetString(PyExc_TypeError, "done() takes a Step of this worker");
        return NULL;
    }
    StepObject *s = (StepObject *)arg;
    if (s->step == NULL)
        Py_RETURN_NONE;
    /* Until stop() returns, the host worker waits for this step, so it is still there. */
    pthread_mutex_lock(&self->lock);
    tk_host_worker_t *w = self->state != W_STOPPED ? self->w : NULL;
    pthread_mutex_unlock(&self->lock);
    tk_step_t *step = s->step;
    s->step = NULL; /* before the GIL is released: another thread may look at s */
    if (w != NULL) {
        Py_BEGIN_ALLOW_THREADS /* the result is reported from here: a database round trip */
            tk_host_worker_done(w, step);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyObject *worker_stop(WorkerObject *self, PyObject *unused)
{
    (void)unused;
    PyThreadState *ts = PyEval_SaveThread();
    worker_stop_nogil(self);
    PyEval_RestoreThread(ts);
    Py_RETURN_NONE;
}

static PyObject *worker_get_id(WorkerObject *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(self->id ? self->id : "");
}

/* The port the health endpoint listens on (the one chosen for worker.port=0); None when the
 * worker serves none or is stopped. */
static PyObject *worker_get_port(WorkerObject *self, void *closure)
{
    (void)closure;
    pthread_mutex_lock(&self->lock);
    int port = self->state == W_RUNNING ? tk_host_worker_port(self->w) : 0;
    pthread_mutex_unlock(&self->lock);
    if (port <= 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(port);
}

static PyObject *worker_get_running(WorkerObject *self, void *closure)
{
    (void)closure;
    pthread_mutex_lock(&self->lock);
    bool running = self->state == W_RUNNING;
    pthread_mutex_unlock(&self->lock);
    return PyBool_FromLong(running);
}

static PyMethodDef worker_methods[] = {
    {"next", (PyCFunction)worker_next, METH_VARARGS,
     "next(timeout_ms=-1) -> Step or None: wait for a step (None on timeout); raises Stopped "
     "once stop() began"},
    {"done", (PyCFunction)worker_done, METH_O,
     "done(step): hand a step back after ending it (a step without an outcome is reported as "
     "a retryable handler_error)"},
    {"stop", (PyCFunction)worker_stop, METH_NOARGS,
     "stop(): stop claiming, wait for steps held by Python threads, free the worker"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef worker_getset[] = {
    {"id", (getter)worker_get_id, NULL, "the worker id (lease owner)", NULL},
    {"port", (getter)worker_get_port, NULL,
     "the port /health listens on (None: not served, or stopped)", NULL},
    {"running", (getter)worker_get_running, NULL, "False once stop() began", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot worker_slots[] = {
    {Py_tp_dealloc, (void *)worker_dealloc},
    {Py_tp_doc, (void *)"Worker(settings, handlers, namespaces=None, config_path=None, "
                        "serve_health=True): a running host worker (tasker/worker.h)"},
    {Py_tp_methods, worker_methods},
    {Py_tp_getset, worker_getset},
    {Py_tp_new, (void *)worker_new},
    {0, NULL},
};

static PyType_Spec worker_spec = {
    .name = "tasker._native.Worker",
    .basicsize = sizeof(WorkerObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = worker_slots,
};

/* ---- JSON <-> Python ------------------------------------------------------------------- */

/* A jansson value as a new Python object (dict, list, str, int, float, bool, None). */
static PyObject *from_json(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        PyObject *d = PyDict_New();
        const char *key;
        json_t *item;
        json_object_foreach((json_t *)v, key, item)
        {
            PyObject *pv = d ? from_json(item) : NULL;
            if (pv == NULL || PyDict_SetItemString(d, key, pv) < 0) {
                Py_XDECREF(pv);
                Py_XDECREF(d);
                return NULL;
            }
            Py_DECREF(pv);
        }
        return d;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        PyObject *l = PyList_New((Py_ssize_t)n);
        for (size_t i = 0; l != NULL && i < n; i++) {
            PyObject *pv = from_json(json_array_get(v, i));
            if (pv == NULL)
                Py_CLEAR(l);
            else
                PyList_SET_ITEM(l, (Py_ssize_t)i, pv);
        }
        return l;
    }
    case JSON_STRING:
        return PyUnicode_DecodeUTF8(json_string_value(v), (Py_ssize_t)json_string_length(v), NULL);
    case JSON_INTEGER:
        return PyLong_FromLongLong((long long)json_integer_value(v));
    case JSON_REAL:
        return PyFloat_FromDouble(json_real_value(v));
    case JSON_TRUE:
        Py_RETURN_TRUE;
    case JSON_FALSE:
        Py_RETURN_FALSE;
    case JSON_NULL:
    default:
        Py_RETURN_NONE;
    }
}

/* A Python object as a new jansson value, with json.dumps(allow_nan=False)'s rules: dicts
 * (keys str, int, float, bool or None, turned into strings), lists and tuples, str, int,
 * float, bool, None, and their subclasses. Anything else raises TypeError, NaN and
 * infinities ValueError; a str that is not valid Unicode raises UnicodeEncodeError. Integers
 * beyond 64 bits become reals, as tasker reads them from JSON text. */
static json_t *to_json(PyObject *o);

static const char *key_text(PyObject *k, PyObject **owned)
{
    *owned = NULL;
    if (PyUnicode_Check(k))
        return PyUnicode_AsUTF8(k);
    if (k == Py_None)
        return "null";
    if (PyBool_Check(k))
        return k == Py_True ? "true" : "false";
    if (PyFloat_Check(k) && !isfinite(PyFloat_AS_DOUBLE(k))) {
        PyErr_SetString(PyExc_ValueError, "out of range float values are not JSON compliant");
        return NULL;
    }
    if (PyLong_Check(k) || PyFloat_Check(k)) {
        /* the base type's repr, as json.dumps (an IntEnum key is its number) */
        *owned = PyLong_Check(k) ? PyLong_Type.tp_repr(k) : PyFloat_Type.tp_repr(k);
        return *owned ? PyUnicode_AsUTF8(*owned) : NULL;
    }
    PyErr_Format(PyExc_TypeError, "keys must be str, int, float, bool or None, not %s",
                 Py_TYPE(k)->tp_name);
    return NULL;
}

static json_t *to_json_inner(PyObject *o)
{
    if (o == Py_None)
        return json_null();
    if (PyBool_Check(o))
        return json_boolean(o == Py_True);
    if (PyUnicode_Check(o)) {
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(o, &len);
        return text ? json_stringn(text, (size_t)len) : NULL;
    }
    if (PyLong_Check(o)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow == 0)
            return v == -1 && PyErr_Occurred() ? NULL : json_integer((json_int_t)v);
        double d = PyLong_AsDouble(o);
        return d == -1.0 && PyErr_Occurred() ? NULL : json_real(d);
    }
    if (PyFloat_Check(o)) {
        double d = PyFloat_AS_DOUBLE(o);
        if (!isfinite(d)) {
            PyErr_Format(PyExc_ValueError, "out of range float values are not JSON compliant");
            return NULL;
        }
        return json_real(d);
    }
    if (PyDict_Check(o)) {
        json_t *obj = json_object();
        PyObject *k, *v;
        Py_ssize_t pos = 0;
        while (obj != NULL && PyDict_Next(o, &pos, &k, &v)) {
            Py_INCREF(k);
            Py_INCREF(v);
            PyObject *owned;
            const char *key = key_text(k, &owned);
            json_t *jv = key ? to_json(v) : NULL;
            int rc = jv ? json_object_set_new(obj, key, jv) : -1;
            Py_XDECREF(owned);
            Py_DECREF(k);
            Py_DECREF(v);
            if (rc != 0) {
                if (!PyErr_Occurred())
                    PyErr_NoMemory();
                json_decref(obj);
                return NULL;
            }
        }
        return obj;
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        json_t *arr = json_array();
        /* the size is read again each time: converting an item may run code (a key's repr) */
        for (Py_ssize_t i = 0; arr != NULL && i < PySequence_Fast_GET_SIZE(o); i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(o, i);
            Py_INCREF(item);
            json_t *jv = to_json(item);
            Py_DECREF(item);
            if (jv == NULL || json_array_append_new(arr, jv) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        return arr;
    }
    PyErr_Format(PyExc_TypeError, "Object of type %s is not JSON serializable",
                 Py_TYPE(o)->tp_name);
    return NULL;
}

static json_t *to_json(PyObject *o)
{
    if (Py_EnterRecursiveCall(" while converting a result to JSON"))
        return NULL;
    json_t *v = to_json_inner(o);
    Py_LeaveRecursiveCall();
    if (v == NULL && !PyErr_Occurred())
        PyErr_NoMemory();
    return v;
}

/* ---- Step ----------------------------------------------------------------------------- */

/* The live step, or NULL with RuntimeError set. */
static tk_step_t *live(StepObject *s)
{
    if (s->step != NULL) {
        pthread_mutex_lock(&s->worker->lock);
        bool stopped = s->worker->state == W_STOPPED;
        pthread_mutex_unlock(&s->worker->lock);
        if (!stopped)
            return s->step;
    }
    PyErr_SetString(PyExc_RuntimeError,
                    "this step was already handed back; it cannot be used after its handler");
    return NULL;
}

static void step_dealloc(StepObject *s)
{
    PyTypeObject *type = Py_TYPE(s);
    if (s->step != NULL) {
        /* a handler that lost its step: reported as a retryable handler_error */
        PyObject *r = worker_done(s->worker, (PyObject *)s);
        Py_XDECREF(r);
    }
    Py_XDECREF(s->worker);
    PyObject_Free(s);
    Py_DECREF(type);
}

typedef const char *(*str_getter)(const tk_step_t *);

static PyObject *step_str(StepObject *s, str_getter get)
{
    tk_step_t *step = live(s);
    if (step == NULL)
        return NULL;
    const char *v = get(step);
    return PyUnicode_FromString(v ? v : "");
}

#define STEP_STR_GETTER(name, fn)                                                                  \
    static PyObject *step_get_##name(StepObject *s, void *closure)                                 \
    {                                                                                              \
        (void)closure;                                                                             \
        return step_str(s, fn);                                                                    \
    }
STEP_STR_GETTER(task_uuid, tk_step_task_uuid)
STEP_STR_GETTER(step_uuid, tk_step_uuid)
STEP_STR_GETTER(correlation_id, tk_step_correlation_id)
STEP_STR_GETTER(name, tk_step_name)
STEP_STR_GETTER(namespace, tk_step_namespace)
STEP_STR_GETTER(task_name, tk_step_task_name)
STEP_STR_GETTER(task_version, tk_step_task_version)
STEP_STR_GETTER(handler_name, tk_step_handler_name)

static PyObject *step_get_attempt(StepObject *s, void *closure)
{
    (void)closure;
    tk_step_t *step = live(s);
    return step ? PyLong_FromLong(tk_step_attempt(step)) : NULL;
}

static PyObject *step_get_max_attempts(StepObject *s, void *closure)
{
    (void)closure;
    tk_step_t *step = live(s);
    return step ? PyLong_FromLong(tk_step_max_attempts(step)) : NULL;
}

static PyObject *step_get_deadline_ms(StepObject *s, void *closure)
{
    (void)closure;
    tk_step_t *step = live(s);
    return step ? PyLong_FromLongLong((long long)tk_step_deadline_ms(step)) : NULL;
}

static PyObject *step_get_live(StepObject *s, void *closure)
{
    (void)closure;
    bool ok = s->step != NULL;
    if (ok) {
        pthread_mutex_lock(&s->worker->lock);
        ok = s->worker->state != W_STOPPED;
        pthread_mutex_unlock(&s->worker->lock);
    }
    return PyBool_FromLong(ok);
}

typedef const char *(*json_getter)(tk_step_t *);

static PyObject *step_json(StepObject *s, json_getter get)
{
    tk_step_t *step = live(s);
    return step ? PyUnicode_FromString(get(step)) : NULL;
}

static PyObject *step_context_json(StepObject *s, PyObject *unused)
{
    (void)unused;
    return step_json(s, tk_step_context_json);
}

static PyObject *step_config_json(StepObject *s, PyObject *unused)
{
    (void)unused;
    return step_json(s, tk_step_config_json);
}

static PyObject *step_dependencies_json(StepObject *s, PyObject *unused)
{
    (void)unused;
    return step_json(s, tk_step_dependencies_json);
}

static PyObject *step_parents_json(StepObject *s, PyObject *unused)
{
    (void)unused;
    return step_json(s, tk_step_parents_json);
}

typedef const json_t *(*value_getter)(const tk_step_t *);

static PyObject *step_value(StepObject *s, value_getter get)
{
    tk_step_t *step = live(s);
    return step ? from_json(get(step)) : NULL;
}

static PyObject *step_context(StepObject *s, PyObject *unused)
{
    (void)unused;
    return step_value(s, tk_step_context);
}

static PyObject *step_config(StepObject *s, PyObject *unused)
{
    (void)unused;
    return step_value(s, tk_step_config);
}

static PyObject *step_dependencies(StepObject *s, PyObject *unused)
{
    (void)unused;
    return step_value(s, tk_step_dependencies);
}

static PyObject *step_parents(StepObject *s, PyObject *unused)
{
    (void)unused;
    return step_value(s, tk_step_parents);
}

/* info() -> (task_uuid, step_uuid, correlation_id, name, namespace, task_name,
 * task_version, handler_name, attempt, max_attempts): everything a context needs at once. */
static PyObject *step_info(StepObject *s, PyObject *unused)
{
    (void)unused;
    tk_step_t *step = live(s);
    if (step == NULL)
        return NULL;
    return Py_BuildValue("(ssssssssii)", tk_step_task_uuid(step), tk_step_uuid(step),
                         tk_step_correlation_id(step), tk_step_name(step), tk_step_namespace(step),
                         tk_step_task_name(step), tk_step_task_version(step),
                         tk_step_handler_name(step), tk_step_attempt(step),
                         tk_step_max_attempts(step));
}

/* succeed(result) -> bool: succeed with a Python value converted to JSON (None: {}).
 * Raises TypeError / ValueError (the step keeps no outcome) when it cannot be converted;
 * False when the step already has an outcome. */
static PyObject *step_succeed(StepObject *s, PyObject *result)
{
    tk_step_t *step = live(s);
    if (step == NULL)
        return NULL;
    json_t *v = result == Py_None ? json_object() : to_json(result);
    if (v == NULL)
        return NULL;
    return PyBool_FromLong(tk_step_succeed(step, v) == TK_OK);
}

static PyObject *step_succeed_json(StepObject *s, PyObject *args)
{
    const char *text;
    if (!PyArg_ParseTuple(args, "s:succeed_json", &text))
        return NULL;
    tk_step_t *step = live(s);
    return step ? PyBool_FromLong(tk_step_succeed_json(step, text) == TK_OK) : NULL;
}

static PyObject *step_fail(StepObject *s, PyObject *args)
{
    const char *error_type, *message;
    int retryable;
    if (!PyArg_ParseTuple(args, "zsp:fail", &error_type, &message, &retryable))
        return NULL;
    tk_step_t *step = live(s);
    return step ? PyBool_FromLong(tk_step_fail(step, error_type, message, retryable != 0) == TK_OK)
                : NULL;
}

static PyObject *step_set_retry_after(StepObject *s, PyObject *args)
{
    double seconds;
    if (!PyArg_ParseTuple(args, "d:set_retry_after", &seconds))
        return NULL;
    tk_step_t *step = live(s);
    if (step == NULL)
        return NULL;
    tk_step_set_retry_after(step, seconds);
    Py_RETURN_NONE;
}

/* set_error_code(code): after fail(), the failure's metadata.error_code (None removes it). */
static PyObject *step_set_error_code(StepObject *s, PyObject *args)
{
    const char *code;
    if (!PyArg_ParseTuple(args, "z:set_error_code", &code))
        return NULL;
    tk_step_t *step = live(s);
    if (step == NULL)
        return NULL;
    tk_step_set_error_code(step, code);
    Py_RETURN_NONE;
}

static PyObject *step_set_metadata_json(StepObject *s, PyObject *args)
{
    const char *text;
    if (!PyArg_ParseTuple(args, "s:set_metadata_json", &text))
        return NULL;
    tk_step_t *step = live(s);
    return step ? PyBool_FromLong(tk_step_set_metadata_json(step, text) == TK_OK) : NULL;
}

static PyObject *step_set_backtrace_json(StepObject *s, PyObject *args)
{
    const char *text;
    if (!PyArg_ParseTuple(args, "s:set_backtrace_json", &text))
        return NULL;
    tk_step_t *step = live(s);
    return step ? PyBool_FromLong(tk_step_set_backtrace_json(step, text) == TK_OK) : NULL;
}

/* log(level, message, extra_json=None): a "handler" line with the step's ids. With
 * extra_json (a JSON object as text, which must include step_name and handler if wanted)
 * the line carries those members instead of tk_step_log's. */
static PyObject *step_log(StepObject *s, PyObject *args)
{
    int level;
    const char *message, *extra = NULL;
    if (!PyArg_ParseTuple(args, "is|z:log", &level, &message, &extra))
        return NULL;
    tk_step_t *step = live(s);
    if (step == NULL)
        return NULL;
    if (level < TK_LOG_ERROR)
        level = TK_LOG_ERROR;
    if (level > tk_log_threshold)
        Py_RETURN_NONE;
    if (extra == NULL) {
        tk_step_log(step, (tk_log_level_t)level, "%s", message);
    } else {
        tk_log_ids_t ids = {tk_step_correlation_id(step), tk_step_task_uuid(step),
                            tk_step_uuid(step)};
        tk_log_write((tk_log_level_t)level, "handler", &ids, extra, "%s", message);
    }
    Py_RETURN_NONE;
}

static PyMethodDef step_methods[] = {
    {"context_json", (PyCFunction)step_context_json, METH_NOARGS, "the task context as JSON"},
    {"config_json", (PyCFunction)step_config_json, METH_NOARGS, "handler.initialization as JSON"},
    {"dependencies_json", (PyCFunction)step_dependencies_json, METH_NOARGS,
     "{ancestor step name: result} as JSON"},
    {"parents_json", (PyCFunction)step_parents_json, METH_NOARGS,
     "the direct parents' names as a JSON array"},
    {"context", (PyCFunction)step_context, METH_NOARGS, "the task context (a dict)"},
    {"config", (PyCFunction)step_config, METH_NOARGS, "handler.initialization (a dict)"},
    {"dependencies", (PyCFunction)step_dependencies, METH_NOARGS, "{ancestor step name: result}"},
    {"parents", (PyCFunction)step_parents, METH_NOARGS, "the direct parents' names (a list)"},
    {"info", (PyCFunction)step_info, METH_NOARGS,
     "(task_uuid, step_uuid, correlation_id, name, namespace, task_name, task_version, "
     "handler_name, attempt, max_attempts)"},
    {"succeed", (PyCFunction)step_succeed, METH_O,
     "succeed(result) -> bool: succeed with a JSON-serialisable value (None: {}); raises "
     "TypeError/ValueError when it is not serialisable"},
    {"succeed_json", (PyCFunction)step_succeed_json, METH_VARARGS,
     "succeed_json(text) -> bool: succeed with a JSON result (False: not JSON or already ended)"},
    {"fail", (PyCFunction)step_fail, METH_VARARGS,
     "fail(error_type, message, retryable) -> bool (False: already ended)"},
    {"set_retry_after", (PyCFunction)step_set_retry_after, METH_VARARGS,
     "set_retry_after(seconds): after fail(), wait at least this long before the next attempt"},
    {"set_error_code", (PyCFunction)step_set_error_code, METH_VARARGS,
     "set_error_code(code): after fail(), the failure's metadata.error_code (None: none)"},
    {"set_metadata_json", (PyCFunction)step_set_metadata_json, METH_VARARGS,
     "set_metadata_json(text) -> bool: metadata.custom (a JSON object)"},
    {"set_backtrace_json", (PyCFunction)step_set_backtrace_json, METH_VARARGS,
     "set_backtrace_json(text) -> bool: error.backtrace (a JSON array of strings)"},
    {"log", (PyCFunction)step_log, METH_VARARGS,
     "log(level, message, extra_json=None): a structured log line with the step's ids"},
    {NULL, NULL, 0, NULL},
};

#define GETTER(name, doc)                                                                          \
    {                                                                                              \
#name, (getter)step_get_##name, NULL, doc, NULL                                            \
    }
static PyGetSetDef step_getset[] = {
    GETTER(task_uuid, "the task's uuid"),
    GETTER(step_uuid, "the step's uuid"),
    GETTER(correlation_id, "the task's correlation id"),
    GETTER(name, "the step's name"),
    GETTER(namespace, "the task's namespace"),
    GETTER(task_name, "the task's (template's) name"),
    GETTER(task_version, "the task's (template's) version"),
    GETTER(handler_name, "handler.callable"),
    GETTER(attempt, "this attempt, 1 for the first run"),
    GETTER(max_attempts, "retry.max_attempts"),
    GETTER(deadline_ms, "clock_ms() after which the worker reports a timeout"),
    GETTER(live, "False once handed back with done()"),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot step_slots[] = {
    {Py_tp_dealloc, (void *)step_dealloc},
    {Py_tp_doc, (void *)"one claimed step, valid until Worker.done()"},
    {Py_tp_methods, step_methods},
    {Py_tp_getset, step_getset},
    {0, NULL},
};

/* Not instantiable from Python (Py_TPFLAGS_DISALLOW_INSTANTIATION): steps come from next(). */
static PyType_Spec step_spec = {
    .name = "tasker._native.Step",
    .basicsize = sizeof(StepObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = step_slots,
};

/* ---- module functions ----------------------------------------------------------------- */

static int dict_set_str(PyObject *d, const char *key, const char *value)
{
    PyObject *v = value ? PyUnicode_FromString(value) : Py_NewRef(Py_None);
    if (v == NULL)
        return -1;
    int rc = PyDict_SetItemString(d, key, v);
    Py_DECREF(v);
    return rc;
}

/* template_steps(path) -> [{namespace, task, version, step, callable, method, resolver}] for
 * the template file or directory `path` ("" gives []). Raises Error naming the bad file. */
static PyObject *native_template_steps(PyObject *module, PyObject *args)
{
    (void)module;
    const char *path;
    if (!PyArg_ParseTuple(args, "s:template_steps", &path))
        return NULL;
    PyObject *list = PyList_New(0);
    if (list == NULL || path[0] == '\0')
        return list;
    tk_template_set_t *set = NULL;
    tk_template_t *one = NULL;
    tk_error_t err;
    struct stat sb;
    PyThreadState *ts = PyEval_SaveThread();
    int rc = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) ? tk_template_load_dir(path, &set, &err)
                                                         : tk_template_load_file(path, &one, &err);
    PyEval_RestoreThread(ts);
    if (rc != TK_OK) {
        Py_DECREF(list);
        return raise_tk(rc, err.message);
    }
    size_t ntemplates = set ? tk_template_set_count(set) : 1;
    for (size_t t = 0; t < ntemplates; t++) {
        const tk_template_t *tpl = set ? tk_template_set_get(set, t) : one;
        for (size_t i = 0; i < tk_template_step_count(tpl); i++) {
            const tk_template_step_t *st = tk_template_step(tpl, i);
            PyObject *d = PyDict_New();
            if (d == NULL || dict_set_str(d, "namespace", tk_template_namespace(tpl)) < 0 ||
                dict_set_str(d, "task", tk_template_name(tpl)) < 0 ||
                dict_set_str(d, "version", tk_template_version(tpl)) < 0 ||
                dict_set_str(d, "origin", tk_template_origin(tpl)) < 0 ||
                dict_set_str(d, "step", st->name) < 0 ||
                dict_set_str(d, "callable", st->callable) < 0 ||
                dict_set_str(d, "method", st->method) < 0 ||
                dict_set_str(d, "resolver", st->resolver) < 0 || PyList_Append(list, d) < 0) {
                Py_XDECREF(d);
                Py_DECREF(list);
                list = NULL;
                goto done;
            }
            Py_DECREF(d);
        }
    }
done:
    tk_template_set_free(set);
    tk_template_free(one);
    return list;
}

/* config(config_path=None, settings=()) -> {key: value as text}: the effective
 * configuration as the worker will see it (file, TASKER_* environment, then settings). */
static PyObject *native_config(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kwlist[] = {"config_path", "settings", NULL};
    const char *config_path = NULL;
    PyObject *settings_seq = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|zO:config", kwlist, &config_path,
                                     &settings_seq))
        return NULL;
    char **settings = strv_from(settings_seq, "settings");
    if (settings == NULL)
        return NULL;
    tk_config_t cfg;
    tk_error_t err;
    int rc = tk_config_load(&cfg, config_path, &err);
    for (size_t i = 0; rc == TK_OK && settings[i] != NULL; i++) {
        char *eq = strchr(settings[i], '=');
        if (eq == NULL || eq == settings[i]) {
            char msg[600];
            snprintf(msg, sizeof(msg), "cannot use setting \"%.500s\": expected key=value",
                     settings[i]);
            tk_config_free(&cfg);
            strv_free(settings);
            return raise_tk(TK_EINVAL, msg);
        }
        *eq = '\0';
        rc = tk_config_set(&cfg, settings[i], eq + 1, &err);
        *eq = '=';
    }
    strv_free(settings);
    if (rc == TK_OK)
        rc = tk_config_validate(&cfg, &err);
    if (rc != TK_OK) {
        tk_config_free(&cfg);
        return raise_tk(rc, err.message);
    }
    PyObject *d = PyDict_New();
    size_t n;
    const tk_config_key_t *keys = tk_config_keys(&n);
    for (size_t i = 0; d != NULL && i < n; i++) {
        char value[4096];
        if (tk_config_get(&cfg, keys[i].key, value, sizeof(value), &err) == TK_OK &&
            dict_set_str(d, keys[i].key, value) < 0)
            Py_CLEAR(d);
    }
    tk_config_free(&cfg);
    return d;
}

static PyObject *native_log(PyObject *module, PyObject *args)
{
    (void)module;
    int level;
    const char *component, *message;
    if (!PyArg_ParseTuple(args, "izs:log", &level, &component, &message))
        return NULL;
    tk_host_log((tk_log_level_t)(level < TK_LOG_ERROR ? TK_LOG_ERROR : level), component, message);
    Py_RETURN_NONE;
}

/* log_ids(level, component, correlation_id, task_uuid, step_uuid, extra_json, message): a
 * line with explicit ids (for a step's logger used after its step was handed back). */
static PyObject *native_log_ids(PyObject *module, PyObject *args)
{
    (void)module;
    int level;
    const char *component, *message, *extra;
    tk_log_ids_t ids;
    if (!PyArg_ParseTuple(args, "izzzzzs:log_ids", &level, &component, &ids.correlation_id,
                          &ids.task_uuid, &ids.step_uuid, &extra, &message))
        return NULL;
    if (level < TK_LOG_ERROR)
        level = TK_LOG_ERROR;
    if (level <= tk_log_threshold)
        tk_log_write((tk_log_level_t)level, component ? component : "handler", &ids, extra, "%s",
                     message);
    Py_RETURN_NONE;
}

static PyObject *native_log_enabled(PyObject *module, PyObject *args)
{
    (void)module;
    int level;
    if (!PyArg_ParseTuple(args, "i:log_enabled", &level))
        return NULL;
    return PyBool_FromLong(level <= tk_log_threshold);
}

static PyObject *native_log_set_level(PyObject *module, PyObject *args)
{
    (void)module;
    const char *name;
    if (!PyArg_ParseTuple(args, "s:log_set_level", &name))
        return NULL;
    tk_log_level_t level;
    if (tk_log_level_parse(name, &level) != TK_OK) {
        PyErr_Format(PyExc_ValueError, "unknown log level \"%s\"", name);
        return NULL;
    }
    tk_log_set_level(level);
    Py_RETURN_NONE;
}

/* dumps(obj) -> str: obj converted as Step.succeed() converts results, as compact JSON.
 * loads(text) -> obj: text parsed as tasker parses JSON, converted as Step.context() is.
 * For tests and diagnostics of the conversion rules. */
static PyObject *native_dumps(PyObject *module, PyObject *obj)
{
    (void)module;
    json_t *v = to_json(obj);
    if (v == NULL)
        return NULL;
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (text == NULL)
        return PyErr_NoMemory();
    PyObject *out = PyUnicode_FromString(text);
    free(text);
    return out;
}

static PyObject *native_loads(PyObject *module, PyObject *args)
{
    (void)module;
    const char *text;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "s#:loads", &text, &len))
        return NULL;
    json_t *v = tk_json_parse(text, (size_t)len);
    if (v == NULL) {
        PyErr_SetString(PyExc_ValueError, "not JSON");
        return NULL;
    }
    PyObject *out = from_json(v);
    json_decref(v);
    return out;
}

static PyObject *native_clock_ms(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyLong_FromLongLong((long long)tk_clock_ms());
}

static PyMethodDef module_methods[] = {
    {"template_steps", (PyCFunction)native_template_steps, METH_VARARGS,
     "template_steps(path) -> list of step dicts of the templates in a file or directory"},
    {"config", (PyCFunction)(void (*)(void))native_config, METH_VARARGS | METH_KEYWORDS,
     "config(config_path=None, settings=()) -> {key: text}: the effective configuration"},
    {"log", (PyCFunction)native_log, METH_VARARGS,
     "log(level, component, message): a structured log line"},
    {"log_ids", (PyCFunction)native_log_ids, METH_VARARGS,
     "log_ids(level, component, correlation_id, task_uuid, step_uuid, extra_json, message)"},
    {"log_enabled", (PyCFunction)native_log_enabled, METH_VARARGS,
     "log_enabled(level) -> bool: lines of this level are written"},
    {"log_set_level", (PyCFunction)native_log_set_level, METH_VARARGS,
     "log_set_level(name): error, warn, info, debug or trace"},
    {"dumps", (PyCFunction)native_dumps, METH_O,
     "dumps(obj) -> str: obj as JSON, converted as results are (tests, diagnostics)"},
    {"loads", (PyCFunction)native_loads, METH_VARARGS,
     "loads(text) -> obj: JSON parsed and converted as step inputs are (tests, diagnostics)"},
    {"clock_ms", (PyCFunction)native_clock_ms, METH_NOARGS,
     "clock_ms() -> int: CLOCK_MONOTONIC milliseconds (the clock of Step.deadline_ms)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tasker._native",
    .m_doc = "libtasker's host-worker API for tasker's Python binding",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__native(void);

PyMODINIT_FUNC PyInit__native(void)
{
    /* the thread whose next() must watch for signals (see the file's comment) */
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *main_thread = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    PyObject *ident = main_thread ? PyObject_GetAttrString(main_thread, "ident") : NULL;
    main_thread_ident = ident ? PyLong_AsUnsignedLong(ident) : 0;
    Py_XDECREF(ident);
    Py_XDECREF(main_thread);
    Py_XDECREF(threading);
    if (PyErr_Occurred())
        return NULL;
    WorkerType = (PyTypeObject *)PyType_FromSpec(&worker_spec);
    StepType = (PyTypeObject *)PyType_FromSpec(&step_spec);
    if (WorkerType == NULL || StepType == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL)
        return NULL;
    native_error = PyErr_NewExceptionWithDoc("tasker._native.Error",
                                             "a libtasker call failed; .code is the TK_E* code",
                                             PyExc_RuntimeError, NULL);
    native_stopped = PyErr_NewExceptionWithDoc("tasker._native.Stopped", "the worker is stopping",
                                               PyExc_Exception, NULL);
    if (native_error == NULL || native_stopped == NULL ||
        PyModule_AddObjectRef(m, "Error", native_error) < 0 ||
        PyModule_AddObjectRef(m, "Stopped", native_stopped) < 0 ||
        PyModule_AddObjectRef(m, "Worker", (PyObject *)WorkerType) < 0 ||
        PyModule_AddObjectRef(m, "Step", (PyObject *)StepType) < 0 ||
        PyModule_AddIntConstant(m, "LOG_ERROR", TK_LOG_ERROR) < 0 ||
        PyModule_AddIntConstant(m, "LOG_WARN", TK_LOG_WARN) < 0 ||
        PyModule_AddIntConstant(m, "LOG_INFO", TK_LOG_INFO) < 0 ||
        PyModule_AddIntConstant(m, "LOG_DEBUG", TK_LOG_DEBUG) < 0 ||
        PyModule_AddIntConstant(m, "LOG_TRACE", TK_LOG_TRACE) < 0 ||
        PyModule_AddIntConstant(m, "POLL_SLICE_MS", POLL_SLICE_MS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
