"""Handler registration and resolution (Tasker's resolver chain, reference section 5.8).

A template step's handler.callable is resolved, in order, by
  1. explicit registration (ExplicitMappingResolver): a name given to register_handler()
     or @step_handler(...);
  2. import path (ClassLookupResolver): "package.module.Name" -> importlib imports
     "package.module" and takes its attribute "Name" (a StepHandler subclass, any class
     with a call(context) method, or a plain function taking the context).
A step's handler.resolver ("explicit" / "explicit_mapping" / "ExplicitMappingResolver",
or "class_lookup" / "ClassLookupResolver") restricts resolution to that resolver.

A callable that neither resolves (e.g. "builtin.square", or a Ruby class name) is not
this worker's: it is left to the C handlers of the same worker or to other workers, and
the worker does not claim its steps. A callable whose module exists but fails to import
is an error at start.

Classes are instantiated once (without arguments) per callable; that instance serves all
its steps, from every worker thread.
"""

import importlib
import inspect
import threading

__all__ = ["register_handler", "step_handler", "registered_handlers", "resolve", "Resolved"]

_lock = threading.Lock()
_explicit = {}  # name -> class, instance or function

_EXPLICIT = ("explicit", "explicit_mapping", "explicitmappingresolver")
_CLASS_LOOKUP = ("class_lookup", "class_constant", "classlookupresolver", "classconstantresolver")


def _identity(obj):
    target = obj if (inspect.isclass(obj) or inspect.isroutine(obj)) else type(obj)
    return (getattr(target, "__module__", None), getattr(target, "__qualname__", None))


def register_handler(name, handler=None, replace=False):
    """Register `handler` (a StepHandler subclass or instance, a class with call(context), or
    a function taking the context) under `name`, the callable templates use.

    register_handler(cls) uses cls.handler_name. Registering another object under a taken
    name raises ValueError unless replace=True; registering the same definition again (a
    module imported twice) replaces it silently. Returns the handler."""
    if handler is None and not isinstance(name, str):
        handler, name = name, getattr(name, "handler_name", None)
    if not isinstance(name, str) or not name:
        raise ValueError("register_handler needs a non-empty name (or a class with handler_name)")
    if handler is None or not (callable(handler) or hasattr(handler, "call")):
        raise TypeError(f"handler for {name!r} must be a class, an instance with call() or a "
                        "function")
    with _lock:
        old = _explicit.get(name)
        if old is not None and not replace and old is not handler and _identity(old) != _identity(
            handler
        ):
            mod, qual = _identity(old)
            raise ValueError(f"a handler is already registered as {name!r} ({mod}.{qual})")
        _explicit[name] = handler
    return handler


def step_handler(name):
    """Decorator: register a function (called with the context) or a class under `name`.

        @step_handler("orders.validate")
        def validate(context):
            return {"valid": True}
    """

    def decorate(obj):
        register_handler(name, obj)
        return obj

    return decorate


def registered_handlers():
    """The explicitly registered names, sorted."""
    with _lock:
        return sorted(_explicit)


def unregister_all():
    """Forget every registration (tests)."""
    with _lock:
        _explicit.clear()


class Resolved:
    """A resolved callable: `target` is what gets called with the context for `method`."""

    __slots__ = ("name", "source", "obj", "_instance", "_lock")

    def __init__(self, name, source, obj):
        self.name = name
        self.source = source  # "explicit" or "class_lookup"
        self.obj = obj
        self._instance = None
        self._lock = threading.Lock()

    def instance(self):
        """The object whose methods are called (classes are instantiated once)."""
        if self._instance is None:
            with self._lock:
                if self._instance is None:
                    self._instance = self.obj() if inspect.isclass(self.obj) else self.obj
        return self._instance

    def bound(self, method=None):
        """The function to call with the context for handler.method `method` (None: call).
        Raises LookupError when the handler has no such method."""
        inst = self.instance()
        name = method or "call"
        if inspect.isroutine(inst) or (not hasattr(inst, "call") and callable(inst)):
            if name != "call":
                raise LookupError(f"handler {self.name!r} is a function: it has no method {name!r}")
            return inst
        fn = getattr(inst, name, None)
        if not callable(fn):
            raise LookupError(f"handler {self.name!r} has no method {name!r}")
        return fn

    def __repr__(self):
        return f"<Resolved {self.name} via {self.source}: {self.obj!r}>"


def _class_lookup(callable_name):
    module_name, dot, attr = callable_name.rpartition(".")
    if not dot or not module_name or not attr.isidentifier() or not all(
        part.isidentifier() for part in module_name.split(".")
    ):
        return None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only "this module does not exist" means "not ours"; a module that exists but
        # imports something missing is a broken handler module.
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            return None
        raise
    obj = getattr(module, attr, None)
    if obj is None:
        return None
    if inspect.isclass(obj) or callable(obj) or hasattr(obj, "call"):
        return obj
    return None


def resolve(callable_name, resolver=None):
    """Resolve a template's handler.callable: a Resolved, or None when it is not a Python
    handler (see the module docstring). Import errors of existing modules propagate."""
    kind = (resolver or "").replace("-", "_").lower()
    if kind and kind not in _EXPLICIT and kind not in _CLASS_LOOKUP:
        return None  # a resolver of another language
    if kind not in _CLASS_LOOKUP:
        with _lock:
            obj = _explicit.get(callable_name)
        if obj is not None:
            return Resolved(callable_name, "explicit", obj)
    if kind not in _EXPLICIT:
        obj = _class_lookup(callable_name)
        if obj is not None:
            return Resolved(callable_name, "class_lookup", obj)
    return None
