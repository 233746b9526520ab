"""StepHandler: the base class of class-style handlers (Tasker's StepHandler API).

    from tasker import StepHandler, PermanentError

    class ChargeCard(StepHandler):
        def call(self, context):
            cents = context.get_input("cents")
            if not cents or cents <= 0:
                raise PermanentError("cents must be positive", error_code="BAD_AMOUNT")
            context.logger.info("charging %d cents", cents)
            return self.success({"charged": cents})

A template names it by its import path (``handler: {callable: payments.ChargeCard}``, the
module found on sys.path or in the worker's handlers directory) or by a name given to
tasker.register_handler / @tasker.step_handler.

One instance per callable serves every step of that callable, possibly from several threads
at once (Worker(threads=N)): keep per-step state in local variables, not on self.
A template step with ``handler.method: refund`` calls ``self.refund(context)`` instead of
``call``.
"""

from .result import StepHandlerResult

__all__ = ["StepHandler"]


class StepHandler:
    """Subclass and implement call(self, context)."""

    #: optional: the name register_handler(cls) uses when given no name
    handler_name = None

    def call(self, context):
        raise NotImplementedError(f"{type(self).__name__} does not implement call(self, context)")

    def success(self, result=None, metadata=None):
        """A successful outcome with `result` (a dict; None: {})."""
        return StepHandlerResult.success_result(result, metadata)

    def failure(
        self,
        message,
        error_type="PermanentError",
        error_code=None,
        retryable=False,
        metadata=None,
        retry_after=None,
    ):
        """A failed outcome; not retryable unless retryable=True."""
        return StepHandlerResult.failure_result(
            message, error_type, error_code, retryable, metadata, retry_after
        )
