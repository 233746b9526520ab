"""What a handler returns: StepHandlerResult, made with success() and failure().

A handler may also simply return a dict (or any JSON-serialisable value): that is a
success with that result. Returning None is a success with the result {}.
"""

__all__ = ["StepHandlerResult", "success", "failure"]


class StepHandlerResult:
    """The outcome of one handler call.

    success: True for a success, False for a failure.
    result: the result (JSON-serialisable; a dict by convention) of a success.
    metadata: a dict stored as the result's metadata.custom (success or failure).
    error_message, error_type, error_code (stored as metadata.error_code), retryable,
    retry_after: of a failure.
    """

    __slots__ = (
        "success",
        "result",
        "metadata",
        "error_message",
        "error_type",
        "error_code",
        "retryable",
        "retry_after",
    )

    def __init__(
        self,
        success,
        result=None,
        metadata=None,
        error_message=None,
        error_type=None,
        error_code=None,
        retryable=False,
        retry_after=None,
    ):
        self.success = bool(success)
        self.result = result
        self.metadata = metadata
        self.error_message = error_message
        self.error_type = error_type
        self.error_code = error_code
        self.retryable = bool(retryable)
        self.retry_after = retry_after

    @classmethod
    def success_result(cls, result=None, metadata=None):
        return cls(True, {} if result is None else result, metadata)

    @classmethod
    def failure_result(
        cls,
        message,
        error_type="PermanentError",
        error_code=None,
        retryable=False,
        metadata=None,
        retry_after=None,
    ):
        return cls(
            False,
            None,
            metadata,
            str(message),
            error_type or "PermanentError",
            error_code,
            retryable,
            retry_after,
        )

    def __repr__(self):
        if self.success:
            return f"StepHandlerResult(success=True, result={self.result!r})"
        return (
            f"StepHandlerResult(success=False, error_type={self.error_type!r}, "
            f"error_message={self.error_message!r}, retryable={self.retryable})"
        )


def success(result=None, metadata=None):
    """A successful outcome with `result` (None: {}) and optional custom metadata."""
    return StepHandlerResult.success_result(result, metadata)


def failure(
    message,
    error_type="PermanentError",
    error_code=None,
    retryable=False,
    metadata=None,
    retry_after=None,
):
    """A failed outcome. Not retryable unless retryable=True; retry_after (seconds) asks for
    at least that delay before the next attempt."""
    return StepHandlerResult.failure_result(
        message, error_type, error_code, retryable, metadata, retry_after
    )
