"""Worker: a Python process serving tasker steps whose handlers are Python.

    import tasker
    w = tasker.Worker(templates="templates/", handlers_dir="handlers/",
                      database_url="postgresql://...")
    w.run()            # blocks until SIGINT/SIGTERM, then stops cleanly

The C library (libtasker, through tasker._native) does the work around the handlers: it
registers the templates, claims steps of their namespaces with a lease, renews leases,
enforces timeouts, reports results, and serves /health. Steps whose handler.callable
resolves to Python (tasker.registry) are handed to this process's poller threads, which run
the handler and end the step; built-in C handlers (builtin.*) and --plugin handlers of the
templates keep running on C threads of the same worker.

How a handler's outcome becomes the step's result:
  - a StepHandlerResult (self.success / self.failure, tasker.success / tasker.failure) is
    used as it is;
  - any other return value is a success with that result (a dict by convention; None
    counts as {});
  - an exception of tasker.errors (RetryableError, PermanentError and subclasses) is a
    failure with its class name as error_type, its message, its retryability, retry_after,
    error_code (metadata.error_code), metadata (metadata.custom), and its traceback as
    error.backtrace;
  - any other exception (a bug, or a library's ConnectionError...) is a failure with the
    exception's class name as error_type, its message and traceback, and retryable=True:
    unexpected failures are often transient, and the step's retry.max_attempts bounds the
    cost; raise PermanentError for what must not be retried;
  - a result or metadata that is not JSON-serialisable (or not valid JSON for tasker, such
    as NaN) is a permanent failure with error_type "SerializationError".

Threads: `threads` pollers (default: worker.max_concurrent_handlers, 10) each take a step,
run its handler and hand it back; worker.max_concurrent_handlers is set to the same number
so that no step waits for a Python thread while its lease and timeout run. Handlers of one
process share the GIL: CPU-bound handlers gain nothing from more threads, I/O-bound ones
do. A handler that overruns its timeout is reported as handler_timeout by the C runtime at
once; its thread is replaced (so the worker keeps its capacity) and exits when the handler
finally returns (its late result is dropped). Python cannot interrupt a running function:
long handlers should check context.remaining_ms().
"""

import importlib
import itertools
import json
import os
import signal
import sys
import threading
import traceback

from . import _native, registry
from .context import StepContext
from .errors import StepError
from .logger import set_current_step
from .result import StepHandlerResult

__all__ = ["Worker", "WorkerError", "import_handlers"]

WorkerError = _native.Error

_SUPERVISE_MS = 100  # how often the supervisor looks for threads stuck past a timeout
_thread_numbers = itertools.count(1)


def _log(level, message):
    _native.log(level, "python", message)


def import_handlers(handlers_dir):
    """Import every *.py module under `handlers_dir` (recursively; names starting with "."
    and __pycache__ skipped), after putting the directory first on sys.path so that
    "module.Class" callables resolve to the same modules. Returns the module names."""
    root = os.path.abspath(handlers_dir)
    if not os.path.isdir(root):
        raise WorkerError(f"handlers directory {handlers_dir!r} does not exist")
    if root not in sys.path:
        sys.path.insert(0, root)
    names = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel.replace(os.sep, ".") + "."
        for filename in sorted(filenames):
            if not filename.endswith(".py") or filename.startswith("."):
                continue
            stem = filename[:-3]
            if stem == "__init__":
                if not prefix:
                    continue
                name = prefix[:-1]
            else:
                name = prefix + stem
            if not all(part.isidentifier() for part in name.split(".")):
                continue
            try:
                importlib.import_module(name)
            except Exception as exc:
                raise WorkerError(
                    f"could not import handler module {os.path.join(dirpath, filename)}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            names.append(name)
    return names


def _backtrace(exc):
    """The traceback of `exc` as lines "file:line:in function", innermost last."""
    lines = [
        f"{fs.filename}:{fs.lineno}:in {fs.name}" for fs in traceback.extract_tb(exc.__traceback__)
    ]
    return lines or [f"{type(exc).__name__} (no traceback)"]


def _dumps(value):
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _serialization_failure(step, what, exc):
    step.fail(
        "SerializationError",
        f"the handler's {what} is not JSON-serialisable: {type(exc).__name__}: {exc}",
        False,
    )


def _set_metadata(step, metadata):
    """metadata (a dict) into metadata.custom. Raises TypeError / ValueError when it is not
    a dict or not JSON-serialisable."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, not {type(metadata).__name__}")
    step.set_metadata_json(_dumps(metadata))


def _text(exc):
    """str(exc), or its repr when that is empty; never raises."""
    try:
        return str(exc) or repr(exc)
    except Exception:  # a broken __str__
        return f"{type(exc).__name__} (its message could not be read)"


def _fail_metadata(step, metadata, error_code):
    """After step.fail(): error_code (metadata.error_code; str() of a non-string) and
    metadata (metadata.custom)."""
    if error_code is not None:
        try:
            step.set_error_code(error_code if isinstance(error_code, str) else _text(error_code))
        except (UnicodeError, ValueError) as e:  # a lone surrogate, a NUL character
            _log(_native.LOG_WARN, f"step {step.name}: error_code dropped: {e}")
    try:
        _set_metadata(step, metadata)
    except (TypeError, ValueError, RecursionError, OverflowError) as e:
        _log(_native.LOG_WARN, f"step {step.name}: failure metadata dropped: {e}")


def complete_step(step, outcome=None, exc=None):
    """End `step` with a handler's return value `outcome` or the exception `exc` it raised
    (the rules are in the module docstring)."""
    if exc is not None:
        if isinstance(exc, StepError):
            step.fail(exc.type_name, _text(exc), exc.retryable)
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool):
                step.set_retry_after(float(retry_after))
            _fail_metadata(step, exc.metadata, exc.error_code)
        else:
            step.fail(type(exc).__name__, _text(exc), True)
        step.set_backtrace_json(json.dumps(_backtrace(exc)))
        return

    if isinstance(outcome, StepHandlerResult):
        if outcome.success:
            result, metadata = outcome.result, outcome.metadata
        else:
            step.fail(
                outcome.error_type or "PermanentError",
                outcome.error_message or "step failed",
                outcome.retryable,
            )
            if outcome.retry_after is not None:
                step.set_retry_after(float(outcome.retry_after))
            _fail_metadata(step, outcome.metadata, outcome.error_code)
            return
    else:
        result, metadata = outcome, None
    try:
        ok = step.succeed(result)  # converted to JSON in C (None: {})
    except (TypeError, ValueError, RecursionError, OverflowError, UnicodeError) as e:
        _serialization_failure(step, "result", e)
        return
    if not ok:
        return  # already ended (the handler called step methods itself)
    try:
        _set_metadata(step, metadata)
    except (TypeError, ValueError, RecursionError, OverflowError) as e:
        # the success is recorded already; say why its metadata is missing
        _log(_native.LOG_WARN, f"step {step.name}: metadata dropped, not serialisable: {e}")


class _Handlers:
    """The callables this worker runs: name -> Resolved, plus per-step handler.method."""

    def __init__(self):
        self.by_name = {}
        self.methods = {}  # (namespace, task, version, step) -> method
        self._bound = {}  # (name, method) -> function

    def function(self, name, method):
        key = (name, method)
        fn = self._bound.get(key)
        if fn is None:
            fn = self.by_name[name].bound(method)
            self._bound[key] = fn
        return fn


class _Poller(threading.Thread):
    """One thread taking steps and running their handlers."""

    def __init__(self, worker):
        super().__init__(name=f"tasker-python-{next(_thread_numbers)}", daemon=True)
        self.worker = worker
        self.deadline_ms = None  # of the step it runs, else None
        self.retired = False  # replaced after a timeout: exit after this step

    def run(self):
        native = self.worker._native
        run_step = self.worker._run_step
        while not self.retired:
            try:
                step = native.next(_native.POLL_SLICE_MS * 5)
            except _native.Stopped:
                return
            if step is None:
                if self.worker._stopping:
                    return
                continue
            self.deadline_ms = step.deadline_ms
            try:
                run_step(step)
            except BaseException as exc:  # noqa: B902 - a bug here must not end the thread
                try:
                    _log(_native.LOG_ERROR, f"a step could not be completed: {_text(exc)}")
                    step.fail("handler_error", f"the Python binding failed: {_text(exc)}", True)
                except BaseException:  # noqa: B902 - e.g. the worker stopped meanwhile
                    pass
            finally:
                self.deadline_ms = None
                native.done(step)


class Worker:
    """A tasker worker whose handlers are Python (see the module docstring).

    templates     template file or directory (default: worker.templates from the
                  configuration / $TASKER_TEMPLATE_PATH)
    handlers_dir  directory whose *.py modules are imported at start (they register
                  handlers or are found by "module.Class" callables)
    database_url  PostgreSQL URL (default: $DATABASE_URL / database.url)
    threads       poller threads (default: worker.max_concurrent_handlers, 10)
    settings      {key: value} or ["key=value"] tasker configuration overrides
                  (etc/tasker.yaml keys, e.g. {"worker.handler_timeout_ms": 5000})
    port, bind, worker_id   worker.port (0: a free port; .port is the bound one once
                  started), worker.bind, worker.id
    namespaces    extra namespaces to serve besides the templates'
    config_path   YAML configuration file (default: $TASKER_CONFIG_PATH)
    health        serve /health and /metrics on worker.bind:worker.port
    """

    def __init__(
        self,
        templates=None,
        handlers_dir=None,
        database_url=None,
        threads=None,
        settings=None,
        port=None,
        bind=None,
        worker_id=None,
        namespaces=None,
        config_path=None,
        health=True,
    ):
        self.templates = templates
        self.handlers_dir = handlers_dir
        self.database_url = database_url
        self.threads = threads
        self.settings = settings or {}
        self.port = port  # after start(): the port bound (None without health)
        self._port_setting = port
        self.bind = bind
        self.worker_id = worker_id
        self.namespaces = list(namespaces or [])
        self.config_path = config_path
        self.health = health
        self.handlers = _Handlers()
        self._native = None
        self._pollers = []
        self._lock = threading.Lock()
        self._stopping = False
        self._stop_event = threading.Event()
        self._supervisor = None
        self.id = None

    # --- configuration ----------------------------------------------------------------

    def _settings(self):
        out = []
        items = self.settings.items() if isinstance(self.settings, dict) else None
        if items is None:
            out.extend(str(s) for s in self.settings)
        else:
            for key, value in items:
                if isinstance(value, bool):
                    value = "true" if value else "false"
                out.append(f"{key}={value}")
        if self.database_url:
            out.append(f"database.url={self.database_url}")
        if self.templates:
            out.append(f"worker.templates={self.templates}")
        if self._port_setting is not None:
            out.append(f"worker.port={int(self._port_setting)}")
        if self.bind:
            out.append(f"worker.bind={self.bind}")
        if self.worker_id:
            out.append(f"worker.id={self.worker_id}")
        if self.threads is not None:
            out.append(f"worker.max_concurrent_handlers={int(self.threads)}")
        return out

    def _resolve(self, template_steps):
        """Resolve every callable of the templates and every registered name."""
        wanted = {}
        for st in template_steps:
            wanted.setdefault(st["callable"], st.get("resolver"))
            if st.get("method") and st["method"] != "call":
                key = (st["namespace"], st["task"], st["version"], st["step"])
                self.handlers.methods[key] = st["method"]
        for name in registry.registered_handlers():
            wanted.setdefault(name, None)
        for name, resolver in sorted(wanted.items()):
            resolved = registry.resolve(name, resolver)
            if resolved is None:
                continue
            try:
                resolved.instance()
            except Exception as exc:
                raise WorkerError(
                    f"could not create handler {name!r} ({resolved.obj!r}): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self.handlers.by_name[name] = resolved
        return sorted(self.handlers.by_name)

    # --- running steps ---------------------------------------------------------------

    def _run_step(self, step):
        handlers = self.handlers
        name = step.handler_name
        method = None
        if handlers.methods:
            method = handlers.methods.get(
                (step.namespace, step.task_name, step.task_version, step.name)
            )
        set_current_step(step)
        try:
            try:
                fn = handlers.function(name, method)
            except (KeyError, LookupError) as exc:
                step.fail("ResolutionError", str(exc).strip("'\""), False)
                return
            try:
                outcome = fn(StepContext(step, method))
            except BaseException as exc:  # noqa: B902 - a handler must never end its thread
                complete_step(step, exc=exc)
                return
            complete_step(step, outcome)
        finally:
            set_current_step(None)

    # --- lifecycle -------------------------------------------------------------------

    def start(self):
        """Import handlers, resolve the templates' callables, start the C runtime and the
        poller threads. Raises WorkerError (a RuntimeError) when anything is wrong."""
        if self._native is not None:
            raise WorkerError("the worker is already started")
        if self.handlers_dir:
            import_handlers(self.handlers_dir)
        settings = self._settings()
        config = _native.config(self.config_path, settings)
        self.bind = config.get("worker.bind", "0.0.0.0")
        if self.threads is None:
            self.threads = int(config.get("worker.max_concurrent_handlers", "10"))
        steps = _native.template_steps(config.get("worker.templates", ""))
        names = self._resolve(steps)
        if not names:
            _log(
                _native.LOG_WARN,
                "no Python handler found for the templates' callables: this worker runs only "
                "built-in handlers",
            )
        self._native = _native.Worker(
            settings, names, self.namespaces, self.config_path, self.health
        )
        self.id = self._native.id
        self.port = self._native.port  # the one bound (chosen by the system for port 0)
        _log(
            _native.LOG_INFO,
            f"python worker {self.id} runs {len(names)} handler{'s' if len(names) != 1 else ''} "
            f"on {self.threads} thread{'s' if self.threads != 1 else ''}: {', '.join(names)}",
        )
        with self._lock:
            for _ in range(self.threads):
                self._spawn()
        self._supervisor = threading.Thread(
            target=self._supervise, name="tasker-python-supervisor", daemon=True
        )
        self._supervisor.start()
        return self

    def _spawn(self):
        poller = _Poller(self)
        self._pollers.append(poller)
        poller.start()

    def _supervise(self):
        """Replace threads whose handler overran its timeout (the C runtime already reported
        the step as handler_timeout and replaced its own thread)."""
        while not self._stop_event.wait(_SUPERVISE_MS / 1000):
            now = _native.clock_ms()
            with self._lock:
                if self._stopping:
                    return
                for p in list(self._pollers):
                    deadline = p.deadline_ms
                    if not p.retired and deadline is not None and now > deadline + _SUPERVISE_MS:
                        p.retired = True
                        _log(
                            _native.LOG_WARN,
                            f"thread {p.name} runs a handler past its timeout; starting another",
                        )
                        self._spawn()
                self._pollers = [p for p in self._pollers if p.is_alive() or not p.retired]

    def stop(self, timeout=None):
        """Stop claiming, let running handlers finish (up to the handler timeout), report
        their results, and stop the C runtime. Safe to call more than once; not from a
        handler. `timeout`: how long to wait for each thread afterwards (default 1 s)."""
        if isinstance(threading.current_thread(), _Poller):
            # stop() waits for every running handler, this one included
            raise RuntimeError("Worker.stop() cannot be called from a handler")
        with self._lock:
            if self._stopping or self._native is None:
                return
            self._stopping = True
        self._stop_event.set()
        self._native.stop()  # GIL released inside: pollers finish their steps meanwhile
        # stop() woke the pollers waiting in next() (they get Stopped); one still running a
        # handler now overran the handler timeout and the grace period: it is a daemon
        # thread, left behind.
        stuck = 0
        for p in list(self._pollers):
            p.join(1.0 if timeout is None else timeout)
            stuck += p.is_alive()
        if stuck:
            _log(_native.LOG_WARN, f"{stuck} handler thread{'s' if stuck > 1 else ''} still "
                 "running after the worker stopped; their results are dropped")

    def run(self, banner=True):
        """start(), print the banner line (as `tasker worker` does), serve until SIGINT or
        SIGTERM, then stop(). Signal handlers are installed only in the main thread."""
        self.start()
        if banner:
            where = f"http://{self.bind}:{self.port}/health" if self.health else "(health disabled)"
            print(f"tasker python worker {self.id} running; health on {where}", flush=True)
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda signum, frame: self._stop_event.set())
        try:
            while not self._stop_event.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            _log(_native.LOG_INFO, f"python worker {self.id} stopping")
            self.stop()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        _log(_native.LOG_INFO, f"python worker {self.id} stopped")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
