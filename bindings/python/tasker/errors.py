"""Exceptions a step handler raises to fail its step (Tasker's error classes).

Raising one of these from ``call`` ends the step with a failure result whose ``error_type``
is the exception's class name (or its ``error_type`` attribute), whose message is the
exception's message, and whose ``retryable`` flag comes from the class:

    RetryableError(message, retry_after=None)  retryable; retry_after (seconds) asks the
                                               orchestrator to wait at least that long
      TimeoutError, NetworkError               retryable
    PermanentError(message, error_code=None)   not retryable: the step goes to error
      ValidationError, NotFoundError           not retryable

Subclass them for your own error types (``class CardDeclined(PermanentError)`` is stored as
error_type "CardDeclined"). ``error_code`` is stored as the result's
``metadata.error_code`` (Tasker's place for it), ``metadata`` as ``metadata.custom``.

This module's TimeoutError and NetworkError are not the builtins: import them as
``tasker.errors.TimeoutError`` (the ``tasker`` package does not export them, so
``from tasker import *`` never shadows the builtin ``TimeoutError``). A builtin
TimeoutError or ConnectionError raised by a library is an unexpected exception, which is
retryable too (see tasker.runtime).
"""

import builtins

__all__ = [
    "StepError",
    "RetryableError",
    "PermanentError",
    "ValidationError",
    "NotFoundError",
    "TimeoutError",
    "NetworkError",
]


class StepError(Exception):
    """Base of the handler errors. ``retryable`` is a class attribute."""

    retryable = False
    error_type = None  # None: the class name

    def __init__(self, message, error_code=None, metadata=None):
        super().__init__(message)
        self.message = str(message)
        self.error_code = error_code
        self.metadata = metadata

    def __str__(self):
        return self.message

    @property
    def type_name(self):
        """The error_type stored with the failure."""
        return self.error_type or type(self).__name__


class RetryableError(StepError):
    """A failure another attempt may fix (subject to the step's retry.max_attempts)."""

    retryable = True

    def __init__(self, message, retry_after=None, error_code=None, metadata=None):
        super().__init__(message, error_code=error_code, metadata=metadata)
        self.retry_after = retry_after


class PermanentError(StepError):
    """A failure no retry can fix: the step ends in error after this attempt."""

    retryable = False


class ValidationError(PermanentError):
    """The step's input is invalid."""


class NotFoundError(PermanentError):
    """Something the step needs does not exist."""


class TimeoutError(RetryableError):  # noqa: A001 - Tasker's name; see the module docstring
    """An operation of the handler timed out."""


class NetworkError(RetryableError):
    """A network operation of the handler failed."""


# The builtin, for code in this package that means it.
BuiltinTimeoutError = builtins.TimeoutError
