"""The Python worker command: python3 -m tasker.worker --templates DIR --handlers DIR ...

Prints one line when it is ready,
    tasker python worker <id> running; health on http://<bind>:<port>/health
serves until SIGINT or SIGTERM, stops cleanly and exits 0. Exit status 1: the worker could
not start (the message says why); 2: bad command line.
"""

import argparse
import logging
import os
import sys
import traceback

__all__ = ["main"]

_DESCRIPTION = """\
Run a tasker worker whose step handlers are Python: import every module of --handlers,
register the templates found in --templates, then claim the steps of their namespaces
(queues worker_<namespace>_queue). Steps whose handler.callable is a Python handler (a
name given to tasker.register_handler / @tasker.step_handler, or an importable
"module.Class") run in this process; built-in C handlers (builtin.*) run here too. Health
and metrics are served on --port. Ctrl-C or SIGTERM stops claiming and lets running
handlers finish."""


def _parser():
    p = argparse.ArgumentParser(
        prog="tasker-python-worker",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-t", "--templates", metavar="PATH",
                   help="template file or directory (default: $TASKER_TEMPLATE_PATH)")
    p.add_argument("--handlers", metavar="DIR",
                   help="directory of handler modules, imported at start and put on sys.path")
    p.add_argument("--database-url", metavar="URL",
                   help="PostgreSQL to use (default: $DATABASE_URL)")
    p.add_argument("-p", "--port", type=int, metavar="PORT",
                   help="health/metrics port (default 8081; 0 picks a free one)")
    p.add_argument("--bind", metavar="ADDR", help="health/metrics address (default 0.0.0.0)")
    p.add_argument("--id", metavar="ID", help="worker id (default: <hostname>-<pid>)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="handler threads, also the steps claimed at once (default 10)")
    p.add_argument("-n", "--namespace", action="append", default=[], metavar="NAME",
                   help="also serve this namespace; repeatable")
    p.add_argument("-c", "--config", metavar="FILE",
                   help="YAML configuration (default: $TASKER_CONFIG_PATH)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any configuration key, e.g. --set worker.handler_timeout_ms=5000; "
                   "repeatable")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.threads is not None and args.threads < 1:
        _parser().error("--threads must be at least 1")
    for item in args.set:
        if "=" not in item or item.startswith("="):
            _parser().error(f"--set {item!r}: expected KEY=VALUE")

    try:
        import tasker
        from tasker.logger import TaskerLogHandler
    except ImportError as exc:
        print(f"tasker python worker: cannot load the tasker package: {exc}", file=sys.stderr)
        return 1
    # Python logging (libraries, handler modules) goes to tasker's JSON log too.
    root = logging.getLogger()
    root.addHandler(TaskerLogHandler())
    root.setLevel(logging.DEBUG)  # tasker's log.level decides

    worker = tasker.Worker(
        templates=args.templates,
        handlers_dir=args.handlers,
        database_url=args.database_url,
        threads=args.threads,
        settings=args.set,
        port=args.port,
        bind=args.bind,
        worker_id=args.id,
        namespaces=args.namespace,
        config_path=args.config,
    )
    try:
        worker.run()
    except tasker.WorkerError as exc:
        print(f"tasker python worker: could not start: {exc}", file=sys.stderr)
        if exc.__cause__ is not None and os.environ.get("TASKER_PYTHON_TRACEBACK"):
            traceback.print_exception(exc.__cause__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
