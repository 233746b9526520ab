"""A stand-in for tasker._native.Step, for tests without a database."""

import json

from tasker import _native


class FakeStep:
    """Records how the binding ends the step; inputs given as Python values."""

    def __init__(
        self,
        context=None,
        config=None,
        dependencies=None,
        parents=None,
        name="step",
        handler_name="test.handler",
        attempt=1,
        max_attempts=3,
        namespace="ns",
        task_name="task",
        task_version="1.0.0",
    ):
        self._context = context or {}
        self._config = config or {}
        self._dependencies = dependencies or {}
        self._parents = parents or []
        self.task_uuid = "00000000-0000-7000-8000-000000000001"
        self.step_uuid = "00000000-0000-7000-8000-000000000002"
        self.correlation_id = "00000000-0000-7000-8000-000000000003"
        self.name = name
        self.namespace = namespace
        self.task_name = task_name
        self.task_version = task_version
        self.handler_name = handler_name
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.deadline_ms = _native.clock_ms() + 30000
        self.live = True
        # outcome
        self.outcome = None  # ("succeed", result) or ("fail", type, message, retryable)
        self.retry_after = None
        self.error_code = None
        self.metadata = None
        self.backtrace = None
        self.logs = []

    def info(self):
        return (
            self.task_uuid,
            self.step_uuid,
            self.correlation_id,
            self.name,
            self.namespace,
            self.task_name,
            self.task_version,
            self.handler_name,
            self.attempt,
            self.max_attempts,
        )

    def context(self):
        return json.loads(json.dumps(self._context))

    def config(self):
        return json.loads(json.dumps(self._config))

    def dependencies(self):
        return json.loads(json.dumps(self._dependencies))

    def parents(self):
        return list(self._parents)

    def succeed(self, result):
        text = _native.dumps({} if result is None else result)  # the real conversion rules
        if self.outcome is not None:
            return False
        self.outcome = ("succeed", json.loads(text))
        return True

    def fail(self, error_type, message, retryable):
        if self.outcome is not None:
            return False
        self.outcome = ("fail", error_type, message, retryable)
        return True

    def set_retry_after(self, seconds):
        self.retry_after = seconds

    def set_error_code(self, code):
        # as tk_step_set_error_code: only after a failure; None or "" removes it
        if code is not None and not isinstance(code, str):
            raise TypeError("set_error_code() takes a str or None")
        if self.outcome is not None and self.outcome[0] == "fail":
            self.error_code = code or None

    def set_metadata_json(self, text):
        value = json.loads(text)
        if not isinstance(value, dict):
            return False
        self.metadata = value
        return True

    def set_backtrace_json(self, text):
        value = json.loads(text)
        if not isinstance(value, list):
            return False
        self.backtrace = value
        return True

    def log(self, level, message, extra_json=None):
        self.logs.append((level, message, json.loads(extra_json) if extra_json else None))
