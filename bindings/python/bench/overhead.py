#!/usr/bin/python3
"""overhead.py - per-workflow overhead of Python handlers over C handlers.

Runs Tasker's 4-step linear workflow ("mathematical_sequence") with the C built-in handler
(examples/templates, namespace linear_workflow, served by `tasker worker`) and with the
Python handler (examples/python, namespace linear_workflow_py, served by the Python
worker), alternately, one task at a time, against the same server, and prints medians of

  - the client-side time of POST /v1/tasks?wait_ms (create -> task complete), and
  - the handlers' execution_time_ms as the C runtime measured it (for a Python step this
    includes handing the step to a Python thread and back).

    /usr/bin/python3 bindings/python/bench/overhead.py            # private PostgreSQL
    /usr/bin/python3 bindings/python/bench/overhead.py --database-url URL --tasks 200

Without --database-url it starts a private PostgreSQL (`tasker db start --data-dir`) in a
temporary directory and removes it afterwards. --build names the build directory (default
build). Only the standard library is used.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))  # the repository


def start(argv, log_path):
    """Start a tasker process; return (Popen, port) once its banner line is printed."""
    log = open(log_path, "w")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
    banner = proc.stdout.readline()
    if ":" not in banner:
        proc.kill()
        proc.wait()
        log.close()
        with open(log_path) as f:
            sys.exit(f"{' '.join(argv[:2])} did not start:\n{f.read()[-2000:]}")
    port = int(banner.rsplit(":", 1)[1].split("/")[0])
    return proc, port


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def request(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def run_linear(port, namespace, i):
    body = {"namespace": namespace, "name": "mathematical_sequence", "version": "1.0.0",
            "context": {"even_number": 6, "run": f"{os.getpid()}-{time.time_ns()}-{i}"}}
    t0 = time.perf_counter()
    task = request(port, "POST", "/v1/tasks?wait_ms=30000", body)
    ms = (time.perf_counter() - t0) * 1000
    if task.get("status") != "complete":
        sys.exit(f"{namespace} task ended {task.get('status')}")
    steps = request(port, "GET", f"/v1/tasks/{task['task_uuid']}/workflow_steps")
    exec_ms = [s["results"]["metadata"]["execution_time_ms"] for s in steps]
    return ms, exec_ms


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--database-url")
    p.add_argument("--tasks", type=int, default=50, help="tasks of each kind (default 50)")
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args()
    tasker_bin = os.path.join(args.build, "tasker")
    py_worker = os.path.join(args.build, "bindings", "python", "bin", "tasker-python-worker")
    for path in (tasker_bin, py_worker):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} is missing: build first (cmake --build {args.build})")

    tmp = tempfile.mkdtemp(prefix="tasker-pybench-")
    procs = []
    data_dir = None
    try:
        url = args.database_url
        if url is None:
            data_dir = os.path.join(tmp, "pg")
            out = subprocess.run([tasker_bin, "db", "start", "--data-dir", data_dir, "-q"],
                                 check=True, capture_output=True, text=True).stdout
            url = out.strip().splitlines()[-1]
        server, port = start([tasker_bin, "server", "--database-url", url, "--port", "0"],
                             os.path.join(tmp, "server.log"))
        procs.append(server)
        c_worker, _ = start([tasker_bin, "worker", "--database-url", url, "--port", "0",
                             "--templates", os.path.join(ROOT, "examples", "templates")],
                            os.path.join(tmp, "c-worker.log"))
        procs.append(c_worker)
        py, _ = start([py_worker, "--database-url", url, "--port", "0",
                       "--templates", os.path.join(ROOT, "examples", "python", "templates"),
                       "--handlers", os.path.join(ROOT, "examples", "python", "handlers")],
                      os.path.join(tmp, "py-worker.log"))
        procs.append(py)

        for i in range(args.warmup):
            run_linear(port, "linear_workflow", i)
            run_linear(port, "linear_workflow_py", i)
        c_ms, py_ms, c_exec, py_exec = [], [], [], []
        for i in range(args.tasks):  # alternate, so that drift affects both alike
            ms, ex = run_linear(port, "linear_workflow", i)
            c_ms.append(ms)
            c_exec += ex
            ms, ex = run_linear(port, "linear_workflow_py", i)
            py_ms.append(ms)
            py_exec += ex
    finally:
        for proc in reversed(procs):
            stop(proc)
        if data_dir is not None:
            subprocess.run([tasker_bin, "db", "stop", "--data-dir", data_dir, "-q"],
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    def q(v, f):
        return sorted(v)[min(len(v) - 1, int(len(v) * f))]

    mc, mp = statistics.median(c_ms), statistics.median(py_ms)
    print(f"linear workflow (4 steps), {args.tasks} tasks each, sequential, wait_ms:")
    print(f"  C       median {mc:7.2f} ms   p10 {q(c_ms, .1):7.2f}   p90 {q(c_ms, .9):7.2f}")
    print(f"  Python  median {mp:7.2f} ms   p10 {q(py_ms, .1):7.2f}   p90 {q(py_ms, .9):7.2f}")
    print(f"  Python - C: {mp - mc:+.2f} ms per workflow (medians)")
    ec, ep = statistics.median(c_exec), statistics.median(py_exec)
    print(f"handler execution_time_ms per step (C runtime's measure), {len(c_exec)} steps each:")
    print(f"  C       median {ec:.3f} ms   p90 {q(c_exec, .9):.3f}")
    print(f"  Python  median {ep:.3f} ms   p90 {q(py_exec, .9):.3f}")
    print(f"  Python - C: {ep - ec:+.3f} ms per step, {4 * (ep - ec):+.3f} ms per 4-step workflow")


if __name__ == "__main__":
    main()
