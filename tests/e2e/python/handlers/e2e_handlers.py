"""Python handlers of the e2e tests (tests/e2e/test_python.c, templates in ../templates).

Class handlers are found by import path ("e2e_handlers.Flaky"); functions are registered
with @step_handler under "e2e.*" names.
"""

import datetime
import time

import tasker
from tasker import PermanentError, RetryableError, StepHandler, step_handler


class Flaky(StepHandler):
    """RetryableError while attempt <= config.fail_times, then {"attempts": N}."""

    def call(self, context):
        if context.attempt <= context.get_config("fail_times", 0):
            raise RetryableError(f"attempt {context.attempt} fails on purpose", retry_after=0)
        return self.success(
            {"attempts": context.attempt, "retry_count": context.retry_count,
             "is_retry": context.is_retry},
            metadata={"handler": "Flaky"},
        )


class Decline(StepHandler):
    def call(self, context):
        raise PermanentError("card declined", error_code="DECLINED")


class Square(StepHandler):
    """builtin.square in Python."""

    def call(self, context):
        if not context.parents:
            n = context.get_input("even_number")
        else:
            n = 1
            for parent in context.parents:
                n *= context.get_dependency_field(parent, "value")
        return {"value": n * n}


class Hello(StepHandler):
    def call(self, context):
        context.logger.info("python handler says %s to %s", context.get_config("greeting"),
                            context.get_input_or("name", "nobody"))
        context.logger.warning("with extras", extra={"answer": 42})
        context.logger.debug("not written at the default level")
        return self.success({
            "greeting": context.get_config("greeting"),
            "name": context.get_input("name"),
            "task_uuid": context.task_uuid,
            "step_uuid": context.step_uuid,
            "correlation_id": context.correlation_id,
            "step_name": context.step_name,
            "namespace_name": context.namespace_name,
            "task_name": context.task_name,
            "task_version": context.task_version,
            "attempt": context.attempt,
            "max_retries": context.max_retries,
            "is_last_retry": context.is_last_retry,
            "remaining_ms_positive": context.remaining_ms() > 0,
        })


class MultiMethod(StepHandler):
    def call(self, context):
        raise PermanentError("call() must not run: the template names a method")

    def validate(self, context):
        return self.success({"validated": True, "method": context.method})

    def process(self, context):
        ok = context.get_dependency_field("first", "validated")
        return self.success({"processed": ok, "method": context.method})


@step_handler("e2e.explode")
def explode(context):
    return {"ratio": _compute(context)}


def _compute(context):
    raise ValueError(f"unexpected boom on attempt {context.attempt}")


@step_handler("e2e.bad_result")
def bad_result(context):
    return {"tags": {"a", "b"}, "when": datetime.datetime.now()}


@step_handler("e2e.sleep")
def sleep(context):
    time.sleep(context.get_config("seconds", 1))
    return tasker.success({"slept": True})
