"""Unit tests of the Python layer of tasker's binding (no database): result conversion,
errors, the context, the logger, handler registration and resolution, handler import,
configuration and template reading through _native, and the command line.

Run by ctest as python_unit (PYTHONPATH = build/bindings/python).
"""

import logging
import os
import sys
import tempfile
import textwrap
import unittest

import tasker
from tasker import _native, errors, registry, runtime
from tasker.context import StepContext
from tasker.logger import StepLogger

from fakes import FakeStep

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.dirname(SOURCE)  # the repository


def run_handler(fn, step, method=None):
    """What a poller thread does with one step (Worker._run_step minus resolution)."""
    try:
        outcome = fn(StepContext(step, method))
    except BaseException as exc:  # noqa: B902
        runtime.complete_step(step, exc=exc)
        return step
    runtime.complete_step(step, outcome)
    return step


class Square(tasker.StepHandler):
    def call(self, context):
        return self.success({"value": context.get_input("even_number") ** 2})


class OutcomeTests(unittest.TestCase):
    def test_success_helper(self):
        step = run_handler(Square().call, FakeStep(context={"even_number": 6}))
        self.assertEqual(step.outcome, ("succeed", {"value": 36}))
        self.assertIsNone(step.metadata)

    def test_plain_dict_and_none_are_successes(self):
        step = run_handler(lambda c: {"ok": True}, FakeStep())
        self.assertEqual(step.outcome, ("succeed", {"ok": True}))
        step = run_handler(lambda c: None, FakeStep())
        self.assertEqual(step.outcome, ("succeed", {}))

    def test_success_metadata(self):
        step = run_handler(lambda c: tasker.success({"a": 1}, metadata={"rows": 3}), FakeStep())
        self.assertEqual(step.outcome, ("succeed", {"a": 1}))
        self.assertEqual(step.metadata, {"rows": 3})

    def test_failure_helper(self):
        class H(tasker.StepHandler):
            def call(self, context):
                return self.failure("no stock", error_type="ValidationError", error_code="E1",
                                    metadata={"sku": "x"})

        step = run_handler(H().call, FakeStep())
        self.assertEqual(step.outcome, ("fail", "ValidationError", "no stock", False))
        self.assertEqual(step.error_code, "E1")  # metadata.error_code, as Tasker stores it
        self.assertEqual(step.metadata, {"sku": "x"})
        step = run_handler(lambda c: tasker.failure("later", error_type="RetryableError",
                                                    retryable=True, retry_after=7), FakeStep())
        self.assertEqual(step.outcome, ("fail", "RetryableError", "later", True))
        self.assertEqual(step.retry_after, 7.0)

    def test_retryable_error(self):
        def h(c):
            raise tasker.RetryableError("busy", retry_after=2.5, error_code="BUSY")

        step = run_handler(h, FakeStep())
        self.assertEqual(step.outcome, ("fail", "RetryableError", "busy", True))
        self.assertEqual(step.retry_after, 2.5)
        self.assertEqual(step.error_code, "BUSY")
        self.assertIsNone(step.metadata)  # no custom metadata: error_code is not in it
        self.assertTrue(step.backtrace[-1].endswith(":in h"), step.backtrace)

    def test_permanent_errors_and_subclasses(self):
        cases = [
            (tasker.PermanentError("bad", error_code="X"), "PermanentError", False),
            (tasker.ValidationError("bad"), "ValidationError", False),
            (tasker.NotFoundError("bad"), "NotFoundError", False),
            (errors.TimeoutError("bad"), "TimeoutError", True),
            (errors.NetworkError("bad"), "NetworkError", True),
        ]
        for exc, error_type, retryable in cases:
            def h(c, exc=exc):
                raise exc

            step = run_handler(h, FakeStep())
            self.assertEqual(step.outcome, ("fail", error_type, "bad", retryable))

        class CardDeclined(tasker.PermanentError):
            pass

        def h(c):
            raise CardDeclined("declined")

        self.assertEqual(run_handler(h, FakeStep()).outcome,
                         ("fail", "CardDeclined", "declined", False))

    def test_error_code_is_metadata_error_code(self):
        def h(c):
            raise tasker.PermanentError("bad", error_code="X", metadata={"k": 1})

        step = run_handler(h, FakeStep())
        self.assertEqual(step.error_code, "X")
        self.assertEqual(step.metadata, {"k": 1})
        step = run_handler(lambda c: tasker.failure("no", error_code=42), FakeStep())
        self.assertEqual(step.error_code, "42")  # str() of a non-string code
        step = run_handler(lambda c: tasker.failure("no"), FakeStep())
        self.assertIsNone(step.error_code)

    def test_tasker_timeout_error_is_not_the_builtin(self):
        self.assertIsNot(errors.TimeoutError, TimeoutError)
        self.assertFalse(hasattr(tasker, "TimeoutError"))
        self.assertTrue(issubclass(errors.TimeoutError, tasker.RetryableError))

    def test_unexpected_exception(self):
        def inner():
            return {}["missing"]

        def h(c):
            return inner()

        step = run_handler(h, FakeStep())
        self.assertEqual(step.outcome, ("fail", "KeyError", "'missing'", True))
        self.assertTrue(step.backtrace[-1].endswith(":in inner"), step.backtrace)
        self.assertIn("test_binding.py:", step.backtrace[-1])

    def test_exception_without_message(self):
        def h(c):
            raise RuntimeError()

        step = run_handler(h, FakeStep())
        self.assertEqual(step.outcome, ("fail", "RuntimeError", "RuntimeError()", True))

    def test_exception_with_broken_str(self):
        class Weird(Exception):
            def __str__(self):
                raise RuntimeError("no")

        def h(c):
            raise Weird()

        step = run_handler(h, FakeStep())
        self.assertEqual(step.outcome[0:2], ("fail", "Weird"))
        self.assertIn("could not be read", step.outcome[2])

    def test_unserialisable_results(self):
        for bad in ({"s": {1, 2}}, {"nan": float("nan")}, {"k": object()}, {(1, 2): 3}, "\ud800"):
            step = run_handler(lambda c, bad=bad: bad, FakeStep())
            self.assertEqual(step.outcome[0:2], ("fail", "SerializationError"), bad)
            self.assertFalse(step.outcome[3])
            self.assertIn("not JSON-serialisable", step.outcome[2])

    def test_unserialisable_metadata_keeps_success(self):
        step = run_handler(lambda c: tasker.success({"a": 1}, metadata={"x": {1}}), FakeStep())
        self.assertEqual(step.outcome, ("succeed", {"a": 1}))


class ConversionTests(unittest.TestCase):
    def test_values(self):
        self.assertEqual(
            _native.loads(_native.dumps({"a": [1, 2.5, None, True, False, "é", (3, 4)]})),
            {"a": [1, 2.5, None, True, False, "é", [3, 4]]},
        )

    def test_keys_like_json_dumps(self):
        self.assertEqual(_native.loads(_native.dumps({1: "a", 2.5: "b", None: "c", False: "d"})),
                         {"1": "a", "2.5": "b", "null": "c", "false": "d"})

    def test_big_integers_become_floats(self):
        self.assertEqual(_native.loads(_native.dumps({"n": 2**70, "m": 5})),
                         {"n": float(2**70), "m": 5})
        # in input, one big integer makes every number of the document a float (handler.h)
        self.assertEqual(_native.loads('{"n": 123456789012345678901234567890, "m": 5}'),
                         {"n": 1.2345678901234568e29, "m": 5.0})

    def test_recursion(self):
        deep = []
        for _ in range(100000):
            deep = [deep]
        with self.assertRaises(RecursionError):
            _native.dumps(deep)


class ContextTests(unittest.TestCase):
    def step(self, **kw):
        return FakeStep(
            context={"even_number": 6, "nested": {"a": [1, {"b": 2}]}, "none": None},
            config={"timeout_ms": 5},
            dependencies={"s1": {"value": 36, "items": [{"id": 7}]}, "s0": {"value": 6}},
            parents=["s1"],
            **kw,
        )

    def test_accessors(self):
        c = StepContext(self.step(name="s2", attempt=2, max_attempts=3))
        self.assertEqual(c.step_name, "s2")
        self.assertEqual(c.input_data["even_number"], 6)
        self.assertEqual(c.get_input("even_number"), 6)
        self.assertIsNone(c.get_input("missing"))
        self.assertEqual(c.get_input_or("missing", 4), 4)
        self.assertEqual(c.get_input_or("none", 4), 4)
        self.assertEqual(c.step_config, {"timeout_ms": 5})
        self.assertEqual(c.get_config("timeout_ms"), 5)
        self.assertEqual(c.get_config("x", "d"), "d")
        self.assertEqual(c.parents, ["s1"])
        self.assertEqual(c.get_dependency_result("s1")["value"], 36)
        self.assertIsNone(c.get_dependency_result("nope"))
        self.assertEqual(c.get_dependency_field("s1", "items", 0, "id"), 7)
        self.assertEqual(c.get_dependency_field("s1", "items", -1, "id"), 7)
        self.assertIsNone(c.get_dependency_field("s1", "items", 5, "id"))
        self.assertIsNone(c.get_dependency_field("s1", "value", "x"))
        self.assertIsNone(c.get_dependency_field("nope", "value"))
        self.assertEqual(c.get_dependency_field("s0"), {"value": 6})
        self.assertEqual((c.attempt, c.retry_count, c.max_retries), (2, 1, 3))
        self.assertTrue(c.is_retry)
        self.assertFalse(c.is_last_retry)
        self.assertTrue(StepContext(self.step(attempt=3, max_attempts=3)).is_last_retry)
        self.assertFalse(StepContext(self.step()).is_retry)
        self.assertGreater(c.remaining_ms(), 0)
        self.assertEqual(c.method, "call")
        self.assertIn("s2", repr(c))


class LoggerTests(unittest.TestCase):
    def test_levels_format_and_extras(self):
        step = FakeStep(name="charge", handler_name="pay.Charge")
        log = StepLogger(step)
        log.info("charging %d cents", 42)
        log.warning("with extras", extra={"answer": 42, "msg": "dropped", "ts": 1})
        log.error("boom")
        log.critical("fatal")
        levels = [entry[0] for entry in step.logs]
        self.assertEqual(levels, [_native.LOG_INFO, _native.LOG_WARN, _native.LOG_ERROR,
                                  _native.LOG_ERROR])
        self.assertEqual(step.logs[0][1], "charging 42 cents")
        self.assertIsNone(step.logs[0][2])
        self.assertEqual(step.logs[1][2], {"step_name": "charge", "handler": "pay.Charge",
                                           "answer": 42})

    def test_threshold_checked_first(self):
        step = FakeStep()
        log = StepLogger(step)

        class Boom:
            def __str__(self):
                raise AssertionError("formatted below the threshold")

        self.assertFalse(log.isEnabledFor(logging.DEBUG))  # default level: info
        log.debug(Boom())
        self.assertEqual(step.logs, [])
        self.assertEqual(log.getEffectiveLevel(), logging.INFO)

    def test_exception_appends_traceback(self):
        step = FakeStep()
        try:
            raise ValueError("inner")
        except ValueError:
            StepLogger(step).exception("failed")
        self.assertIn("ValueError: inner", step.logs[0][1])


class RegistryTests(unittest.TestCase):
    def setUp(self):
        registry.unregister_all()

    def tearDown(self):
        registry.unregister_all()

    def test_decorator_and_explicit(self):
        @tasker.step_handler("t.fn")
        def fn(context):
            return {"fn": True}

        tasker.register_handler("t.cls", Square)
        self.assertEqual(tasker.registered_handlers(), ["t.cls", "t.fn"])
        r = registry.resolve("t.fn")
        self.assertEqual(r.source, "explicit")
        self.assertIs(r.bound(), fn)
        r = registry.resolve("t.cls")
        self.assertIsInstance(r.instance(), Square)
        self.assertIs(r.instance(), r.instance())  # one instance per callable
        with self.assertRaises(LookupError):
            registry.resolve("t.fn").bound("refund")

    def test_conflicts(self):
        tasker.register_handler("t.x", Square)
        tasker.register_handler("t.x", Square)  # same definition again: fine
        with self.assertRaises(ValueError):
            tasker.register_handler("t.x", lambda c: None)
        tasker.register_handler("t.x", lambda c: None, replace=True)

    def test_handler_name_attribute(self):
        class Named(tasker.StepHandler):
            handler_name = "t.named"

        tasker.register_handler(Named)
        self.assertEqual(registry.resolve("t.named").obj, Named)
        with self.assertRaises(ValueError):
            tasker.register_handler(Square)  # no handler_name

    def test_class_lookup(self):
        r = registry.resolve("tasker.handler.StepHandler")
        self.assertEqual(r.source, "class_lookup")
        self.assertIsNone(registry.resolve("builtin.square"))
        self.assertIsNone(registry.resolve("Payments::Charge"))
        self.assertIsNone(registry.resolve("nodots"))
        self.assertIsNone(registry.resolve("tasker.handler.Missing"))

    def test_resolver_restricts(self):
        tasker.register_handler("tasker.handler.StepHandler", Square)
        self.assertEqual(registry.resolve("tasker.handler.StepHandler").source, "explicit")
        self.assertEqual(
            registry.resolve("tasker.handler.StepHandler", "ClassLookupResolver").source,
            "class_lookup")
        self.assertIsNone(registry.resolve("nope.Nope", "explicit"))
        self.assertIsNone(registry.resolve("tasker.handler.StepHandler", "ruby_constant"))

    def test_method_dispatch(self):
        class Multi(tasker.StepHandler):
            def refund(self, context):
                return {"method": context.method}

        tasker.register_handler("t.multi", Multi)
        fn = registry.resolve("t.multi").bound("refund")
        step = run_handler(fn, FakeStep(), method="refund")
        self.assertEqual(step.outcome, ("succeed", {"method": "refund"}))


class ImportTests(unittest.TestCase):
    def setUp(self):
        registry.unregister_all()
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.addCleanup(registry.unregister_all)
        self.saved_path = list(sys.path)
        self.addCleanup(lambda: sys.path.__setitem__(slice(None), self.saved_path))

    def write(self, rel, text):
        path = os.path.join(self.dir.name, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))

    def test_imports_every_module(self):
        self.write("ut_alpha.py", """
            import tasker
            @tasker.step_handler("ut.alpha")
            def alpha(context):
                return {}
        """)
        self.write("ut_pkg/__init__.py", "")
        self.write("ut_pkg/beta.py", """
            import tasker
            class Beta(tasker.StepHandler):
                def call(self, context):
                    return {}
        """)
        self.write(".hidden.py", "raise SystemExit('must not be imported')")
        names = runtime.import_handlers(self.dir.name)
        self.assertEqual(names, ["ut_alpha", "ut_pkg", "ut_pkg.beta"])
        self.assertIn("ut.alpha", tasker.registered_handlers())
        self.assertEqual(registry.resolve("ut_pkg.beta.Beta").source, "class_lookup")

    def test_broken_module(self):
        self.write("ut_broken.py", "import ut_no_such_dependency\n")
        with self.assertRaises(tasker.WorkerError) as cm:
            runtime.import_handlers(self.dir.name)
        self.assertIn("ut_broken.py", str(cm.exception))
        # a callable whose module exists but fails to import is an error, not "not ours"
        with self.assertRaises(ModuleNotFoundError):
            registry.resolve("ut_broken.Handler")

    def test_missing_directory(self):
        with self.assertRaises(tasker.WorkerError):
            runtime.import_handlers(os.path.join(self.dir.name, "nope"))


class NativeTests(unittest.TestCase):
    def test_template_steps(self):
        steps = _native.template_steps(os.path.join(ROOT, "examples", "python", "templates"))
        callables = {(s["namespace"], s["callable"]) for s in steps}
        self.assertEqual(callables, {("complex_dag_workflow_py", "math_handlers.SquareHandler"),
                                     ("diamond_workflow_py", "diamond_py.square"),
                                     ("linear_workflow_py", "math_handlers.SquareHandler"),
                                     ("tree_workflow_py", "tree_py.square")})
        self.assertEqual(_native.template_steps(""), [])
        with self.assertRaises(_native.Error) as cm:
            _native.template_steps(os.path.join(ROOT, "no-such-dir"))
        self.assertTrue(cm.exception.code < 0)

    def test_config(self):
        cfg = _native.config(None, ["worker.port=0", "worker.max_concurrent_handlers=3"])
        self.assertEqual(cfg["worker.port"], "0")
        self.assertEqual(cfg["worker.max_concurrent_handlers"], "3")
        with self.assertRaises(_native.Error):
            _native.config(None, ["worker.no_such_key=1"])
        with self.assertRaises(_native.Error):
            _native.config(None, ["novalue"])

    def test_worker_needs_a_database(self):
        saved = os.environ.pop("DATABASE_URL", None)
        self.addCleanup(lambda: saved is not None and os.environ.__setitem__("DATABASE_URL",
                                                                                saved))
        w = tasker.Worker(templates=os.path.join(ROOT, "examples", "python", "templates"),
                          handlers_dir=os.path.join(ROOT, "examples", "python", "handlers"),
                          port=0)
        with self.assertRaises(tasker.WorkerError) as cm:
            w.start()
        self.assertIn("no database", str(cm.exception))

    def test_step_is_not_constructible(self):
        with self.assertRaises(TypeError):
            _native.Step()


class CommandLineTests(unittest.TestCase):
    def test_usage_errors_exit_2(self):
        from tasker.worker import main

        for argv in (["--threads", "0"], ["--set", "novalue"], ["--bogus"]):
            with self.assertRaises(SystemExit) as cm, open(os.devnull, "w") as devnull:
                saved, sys.stderr = sys.stderr, devnull
                try:
                    main(argv)
                finally:
                    sys.stderr = saved
            self.assertEqual(cm.exception.code, 2, argv)

    def test_start_failure_exits_1(self):
        from tasker.worker import main

        saved = os.environ.pop("DATABASE_URL", None)
        self.addCleanup(lambda: saved is not None and os.environ.__setitem__("DATABASE_URL",
                                                                                saved))
        with open(os.devnull, "w") as devnull:
            saved_err, sys.stderr = sys.stderr, devnull
            try:
                rc = main(["--templates", os.path.join(ROOT, "examples", "python", "templates"),
                           "--port", "0"])
            finally:
                sys.stderr = saved_err
                logging.getLogger().handlers.clear()
        self.assertEqual(rc, 1)


if __name__ == "__main__":
    unittest.main()
