"""Logging through tasker's structured logger (JSON lines on stderr).

StepLogger is ``context.logger``: it has the logging.Logger methods (debug, info, warning,
error, exception, critical, log, isEnabledFor) and writes each record as one tasker line
with component "handler" and the step's correlation_id, task_uuid and step_uuid, plus
step_name and handler, so a handler's messages can be followed with the rest of the task:

    {"ts":"...","level":"info","component":"handler","msg":"charging 42 cents",
     "correlation_id":"...","task_uuid":"...","step_uuid":"...","step_name":"charge",...}

The level threshold is tasker's (log.level / TASKER_LOG_LEVEL), checked before the message
is formatted. ``extra={...}`` adds members to the line (keys tasker writes itself are
dropped). Python levels map to tasker's: CRITICAL and ERROR -> error, WARNING -> warn,
INFO -> info, DEBUG -> debug, lower -> trace.

TaskerLogHandler is a logging.Handler that sends records of ordinary Python loggers to the
same place; inside a handler call they carry the step's ids too. The worker command
installs it on the root logger.
"""

import json
import logging
import threading
import traceback

from . import _native

__all__ = ["StepLogger", "TaskerLogHandler", "tk_level"]

_RESERVED = frozenset(
    ("ts", "level", "component", "msg", "correlation_id", "task_uuid", "step_uuid")
)

# the step the current thread is running (for TaskerLogHandler)
_current = threading.local()


def tk_level(level):
    """tasker's level for a Python logging level."""
    if level >= logging.ERROR:
        return _native.LOG_ERROR
    if level >= logging.WARNING:
        return _native.LOG_WARN
    if level >= logging.INFO:
        return _native.LOG_INFO
    if level >= logging.DEBUG:
        return _native.LOG_DEBUG
    return _native.LOG_TRACE


def _format(msg, args, exc_info):
    text = str(msg)
    if args:
        try:
            text = text % args
        except (TypeError, ValueError):
            text = f"{text} {args!r}"
    if exc_info:
        if exc_info is True:
            text += "\n" + traceback.format_exc().rstrip()
        elif isinstance(exc_info, BaseException):
            text += "\n" + "".join(traceback.format_exception(exc_info)).rstrip()
        else:
            text += "\n" + "".join(traceback.format_exception(*exc_info)).rstrip()
    return text


class StepLogger:
    """A logging.Logger-like object bound to one step (``context.logger``)."""

    __slots__ = ("_step", "name", "_step_name", "_handler", "_ids")

    def __init__(self, step, name="tasker.handler"):
        self._step = step
        self.name = name
        self._step_name = step.name
        self._handler = step.handler_name
        self._ids = (step.correlation_id, step.task_uuid, step.step_uuid)

    def isEnabledFor(self, level):
        return _native.log_enabled(tk_level(level))

    def getEffectiveLevel(self):
        for tk, py in (
            (_native.LOG_TRACE, 5),
            (_native.LOG_DEBUG, logging.DEBUG),
            (_native.LOG_INFO, logging.INFO),
            (_native.LOG_WARN, logging.WARNING),
        ):
            if _native.log_enabled(tk):
                return py
        return logging.ERROR

    def log(self, level, msg, *args, exc_info=None, extra=None, stack_info=False, stacklevel=1):
        tk = tk_level(level)
        if not _native.log_enabled(tk):
            return
        text = _format(msg, args, exc_info)
        extra_json = None
        if extra:
            members = {"step_name": self._step_name, "handler": self._handler}
            members.update((str(k), v) for k, v in extra.items() if str(k) not in _RESERVED)
            try:
                extra_json = json.dumps(members, default=str, separators=(",", ":"))
            except (TypeError, ValueError):
                extra_json = None
        if self._step.live:
            try:
                self._step.log(tk, text, extra_json)  # tk_step_log, or the same with extras
                return
            except RuntimeError:  # handed back meanwhile (a logger used by another thread)
                pass
        # used after the handler returned: the same line, with the ids kept from the step
        if extra_json is None:
            extra_json = json.dumps({"step_name": self._step_name, "handler": self._handler},
                                    separators=(",", ":"))
        _native.log_ids(tk, "handler", *self._ids, extra_json, text)

    def debug(self, msg, *args, **kwargs):
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg, *args, **kwargs):
        self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg, *args, **kwargs):
        self.log(logging.WARNING, msg, *args, **kwargs)

    warn = warning

    def error(self, msg, *args, **kwargs):
        self.log(logging.ERROR, msg, *args, **kwargs)

    def exception(self, msg, *args, exc_info=True, **kwargs):
        self.log(logging.ERROR, msg, *args, exc_info=exc_info, **kwargs)

    def critical(self, msg, *args, **kwargs):
        self.log(logging.CRITICAL, msg, *args, **kwargs)

    fatal = critical

    def __repr__(self):
        return f"<StepLogger {self.name} step={self._step_name}>"


class TaskerLogHandler(logging.Handler):
    """Send Python logging records to tasker's log (component = the logger's name).

    Inside a handler call the line carries the step's ids (as context.logger's do)."""

    def emit(self, record):
        try:
            tk = tk_level(record.levelno)
            if not _native.log_enabled(tk):
                return
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            step = getattr(_current, "step", None)
            if step is not None and step.live:
                extra = {"step_name": step.name, "handler": step.handler_name}
                extra["logger"] = record.name
                step.log(tk, text, json.dumps(extra, separators=(",", ":")))
            else:
                _native.log(tk, record.name, text)
        except Exception:  # never let logging break a handler
            self.handleError(record)


def set_current_step(step):
    """Record the step this thread runs (None when done), for TaskerLogHandler."""
    _current.step = step
