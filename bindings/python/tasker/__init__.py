"""tasker: step handlers in Python for the tasker workflow engine.

    import tasker
    from tasker import StepHandler, PermanentError, RetryableError

    class Square(StepHandler):                       # callable "mymodule.Square"
        def call(self, context):
            n = context.get_input("even_number")
            if n is None:
                raise PermanentError("even_number is required")
            return self.success({"value": n * n})

    @tasker.step_handler("math.double")              # callable "math.double"
    def double(context):
        return {"value": 2 * context.get_dependency_field("square", "value")}

    tasker.Worker(templates="templates/", handlers_dir="handlers/").run()

or from a shell: python3 -m tasker.worker --templates DIR --handlers DIR.

Modules: handler (StepHandler), context (StepContext), result (success, failure),
errors (RetryableError, PermanentError, ValidationError, NotFoundError, and
tasker.errors.TimeoutError / NetworkError, not exported here so as not to shadow the
builtin TimeoutError), registry (register_handler, step_handler), runtime (Worker),
logger (StepLogger, TaskerLogHandler), worker (the command line).
"""

from .context import StepContext
from .errors import (
    NotFoundError,
    PermanentError,
    RetryableError,
    StepError,
    ValidationError,
)
from .handler import StepHandler
from .logger import StepLogger, TaskerLogHandler
from .registry import register_handler, registered_handlers, step_handler
from .result import StepHandlerResult, failure, success
from .runtime import Worker, WorkerError

__all__ = [
    "StepHandler",
    "StepContext",
    "StepHandlerResult",
    "success",
    "failure",
    "StepError",
    "RetryableError",
    "PermanentError",
    "ValidationError",
    "NotFoundError",
    "register_handler",
    "registered_handlers",
    "step_handler",
    "Worker",
    "WorkerError",
    "StepLogger",
    "TaskerLogHandler",
]

__version__ = "0.1.0"
