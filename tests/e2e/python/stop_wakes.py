"""stop_wakes.py DATABASE_URL TEMPLATES_DIR - run by test_python.c
(test_stop_wakes_waiting_threads): threads other than the main one wait in
tasker._native.Worker.next() without slices (-1: no timeout at all), so only
tk_host_worker_wake can end their waits; stop() must do so at once, the waiters must get
Stopped, and the worker's health port must be reported. Exit 0 when every check passes."""

import sys
import threading
import time

from tasker import _native

LIMIT_S = 2.0  # prompt, with room for a busy machine; without the wake stop() never returns


def check(what, ok):
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


worker = _native.Worker([f"database.url={sys.argv[1]}", f"worker.templates={sys.argv[2]}",
                         "log.level=warn", "worker.port=0", "worker.bind=127.0.0.1"],
                        ["math_handlers.SquareHandler"], serve_health=True)
check(f"the health port is reported (got {worker.port!r})",
      isinstance(worker.port, int) and 0 < worker.port < 65536)

outcomes = []


def wait():
    try:
        outcomes.append(("step", worker.next(-1)))
    except _native.Stopped:
        outcomes.append(("stopped", None))


threads = [threading.Thread(target=wait, daemon=True) for _ in range(3)]
for t in threads:
    t.start()
time.sleep(0.3)  # let them wait

done = threading.Event()
started = time.monotonic()
stopper = threading.Thread(target=lambda: (worker.stop(), done.set()), daemon=True)
stopper.start()
check("stop() returned", done.wait(LIMIT_S))
for t in threads:
    t.join(LIMIT_S)
took = time.monotonic() - started
check(f"stop took {took * 1000:.0f} ms", took < LIMIT_S)
check(f"every waiter got Stopped: {outcomes}", outcomes == [("stopped", None)] * 3)
check("no port once stopped", worker.port is None)
print("stop_wakes: all checks passed")
