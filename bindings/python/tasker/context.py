"""StepContext: what a handler gets (Tasker's StepContext, reference section 5.2).

Identity:   task_uuid, step_uuid, correlation_id, step_name, namespace_name, task_name,
            task_version, handler_name
Input:      input_data (the task's context, a dict), get_input(key), get_input_or(key,
            default); step_config (handler.initialization, a dict), get_config(key)
Ancestors:  dependency_results ({step name: result} of every ancestor), parents (names of
            the direct parents), get_dependency_result(step_name),
            get_dependency_field(step_name, *path)
Retries:    attempt (1 on the first run), retry_count (= attempt - 1, earlier attempts),
            max_retries (the step's retry.max_attempts, Tasker's name), is_retry (attempt >
            1), is_last_retry (no attempt left after this one)
Time:       deadline_ms (tasker._native.clock_ms() value of the timeout), remaining_ms()
Logging:    logger (tasker.logger.StepLogger)

JSON documents are converted to Python objects on first use and cached; the context is
only valid during the handler call (afterwards the step is handed back and reading what was
not read yet raises RuntimeError).
"""

from . import _native
from .logger import StepLogger

__all__ = ["StepContext"]

_MISSING = object()


class StepContext:
    __slots__ = (
        "_step",
        "task_uuid",
        "step_uuid",
        "correlation_id",
        "step_name",
        "namespace_name",
        "task_name",
        "task_version",
        "handler_name",
        "attempt",
        "max_retries",
        "method",
        "_input",
        "_config",
        "_deps",
        "_parents",
        "_logger",
    )

    def __init__(self, step, method=None):
        self._step = step
        (
            self.task_uuid,
            self.step_uuid,
            self.correlation_id,
            self.step_name,
            self.namespace_name,
            self.task_name,
            self.task_version,
            self.handler_name,
            self.attempt,
            self.max_retries,
        ) = step.info()
        self.method = method or "call"
        self._input = self._config = self._deps = self._parents = self._logger = None

    # --- task input -----------------------------------------------------------------

    @property
    def input_data(self):
        """The task's context (its input), a dict."""
        if self._input is None:
            self._input = self._step.context()
        return self._input

    task_context = input_data

    def get_input(self, key):
        """input_data[key], or None when absent."""
        return self.input_data.get(key)

    def get_input_or(self, key, default):
        """input_data[key], or `default` when absent or null."""
        value = self.input_data.get(key)
        return default if value is None else value

    # --- step configuration ------------------------------------------------------------

    @property
    def step_config(self):
        """The template step's handler.initialization, a dict ({} when none)."""
        if self._config is None:
            self._config = self._step.config()
        return self._config

    def get_config(self, key, default=None):
        """step_config[key], or `default` when absent."""
        return self.step_config.get(key, default)

    # --- ancestors -------------------------------------------------------------------

    @property
    def dependency_results(self):
        """{step name: result} for every ancestor of this step."""
        if self._deps is None:
            self._deps = self._step.dependencies()
        return self._deps

    @property
    def parents(self):
        """Names of the direct parents, in the template's order."""
        if self._parents is None:
            self._parents = self._step.parents()
        return self._parents

    def get_dependency_result(self, step_name):
        """The result of ancestor `step_name`, or None."""
        return self.dependency_results.get(step_name)

    def get_dependency_field(self, step_name, *path):
        """A value inside an ancestor's result: keys of dicts and indexes of lists, e.g.
        get_dependency_field("fetch", "items", 0, "id"). None when any part is missing."""
        value = self.dependency_results.get(step_name, _MISSING)
        for part in path:
            if isinstance(value, dict):
                value = value.get(part, _MISSING)
            elif isinstance(value, list) and isinstance(part, int) and -len(value) <= part < len(
                value
            ):
                value = value[part]
            else:
                return None
        return None if value is _MISSING else value

    # --- retries ---------------------------------------------------------------------

    @property
    def retry_count(self):
        """How many attempts ran before this one."""
        return self.attempt - 1

    @property
    def max_attempts(self):
        return self.max_retries

    @property
    def is_retry(self):
        return self.attempt > 1

    @property
    def is_last_retry(self):
        """True when a failure of this attempt cannot be retried for lack of attempts."""
        return self.attempt >= self.max_retries

    # --- time, logging ----------------------------------------------------------------

    @property
    def deadline_ms(self):
        return self._step.deadline_ms

    def remaining_ms(self):
        """Milliseconds left before the worker reports a timeout (may be negative)."""
        return self._step.deadline_ms - _native.clock_ms()

    @property
    def logger(self):
        if self._logger is None:
            self._logger = StepLogger(self._step, "tasker.handler." + self.handler_name)
        return self._logger

    def __repr__(self):
        return (
            f"<StepContext {self.namespace_name}/{self.task_name} step={self.step_name} "
            f"attempt={self.attempt}/{self.max_retries} task={self.task_uuid}>"
        )
