#!/usr/bin/env python3
"""fold_perf.py - fold `perf script` output into flame-graph stacks and a top-functions report.

Input: the text of
    perf script --show-task-events -F comm,pid,tid,time,ip,sym,dso
over a system-wide (-a) recording with call graphs. The task events (fork, exec) give the
process tree, so the samples of the profiled workload (the process --root-pid and all its
descendants, PostgreSQL's server processes included) are told apart from the rest of the
machine.

Output, in --outdir:
    perf-tasker.folded     tasker processes; first frame [thread name]
    perf-postgres.folded   PostgreSQL processes of the workload; first frame [role]
                           (backend, walwriter, checkpointer, postmaster, ...)
    perf-workload.folded   every process of the workload; frames [group];[thread|role];...
    perf-system.folded     every non-idle sample on the machine; first frame [comm]
                           (--scope system only)
    perf-report.txt        sample shares and top functions by self and inclusive time

A folded line is "frame;frame;...;leaf COUNT", root first: the format of Brendan Gregg's
stackcollapse scripts, read by flamegraph.py here, flamegraph.pl, speedscope or inferno.
Kernel frames end in "_[k]". Standard library only.
"""
import argparse
import collections
import os
import re
import sys

HEADER_RE = re.compile(r"^(\S.*?)\s+(-?\d+)/(-?\d+)\s+(?:\[\d+\]\s+)?([\d.]+):\s*(.*)$")
FRAME_RE = re.compile(r"^\s+([0-9a-fA-F]+)\s+(.*?)\s+\((.*)\)\s*$")
FORK_RE = re.compile(r"PERF_RECORD_FORK\((\d+):(\d+)\):\((\d+):(\d+)\)")
COMM_RE = re.compile(r"PERF_RECORD_COMM(?: (exec))?: (.*):(\d+)/(\d+)\s*$")

# PostgreSQL process roles, told by a function on the stack (exported symbols of postgres 15).
PG_ROLES = [
    ("WalWriterMain", "walwriter"),
    ("CheckpointerMain", "checkpointer"),
    ("BackgroundWriterMain", "background writer"),
    ("PgArchiverMain", "archiver"),
    ("StartupProcessMain", "startup"),
    ("WalReceiverMain", "walreceiver"),
    ("ApplyLauncherMain", "logical replication launcher"),
    ("StartBackgroundWorker", "background worker"),
    ("PostgresMain", "backend"),
    ("InitPostgres", "backend"),
]
PG_ROLE_OF = dict(PG_ROLES)


def frame_name(sym, dso):
    """Name of one frame: the symbol; kernel frames get _[k]; unknown ones the library."""
    kernel = dso.startswith("[kernel") or dso.startswith("[guest.kernel")
    if sym in ("[unknown]", ""):
        base = os.path.basename(dso) if dso and dso != "[unknown]" else ""
        sym = "[%s]" % base if base else "[unknown]"
    sym = sym.replace(";", ":").replace(" ", "_") if " " in sym or ";" in sym else sym
    return sym + "_[k]" if kernel else sym


def short_dso(dso):
    if dso.startswith("[kernel"):
        return "kernel"
    if dso == "inlined":
        return dso
    base = os.path.basename(dso)
    return base or dso


def root_first(frames, dsos, ips):
    """Reverse perf's leaf-first order. perf lists the functions inlined at an address before
    the real one, with the object "(inlined)": give them the object of the real frame at the
    same address (the next one, else the previous one)."""
    dsos = list(dsos)
    for i, d in enumerate(dsos):
        if d != "inlined":
            continue
        same = [j for j in range(i + 1, len(dsos)) if ips[j] == ips[i] and dsos[j] != "inlined"]
        same = same or [j for j in range(i - 1, -1, -1)
                        if ips[j] == ips[i] and dsos[j] != "inlined"]
        if same:
            dsos[i] = dsos[same[0]]
        elif frames[i].startswith(("__GI_", "__libc_", "__memcpy", "__memset", "__memmove")):
            dsos[i] = "libc.so.6"   # glibc's internal aliases, shown by perf as "inlined"
    return tuple(reversed(frames)), tuple(reversed(dsos))


def parse(stream, stats):
    """Yield (pid, tid, comm, frames root-first) per sample; record the process tree."""
    parent = stats["parent"]
    exec_comm = stats["exec_comm"]
    cur = None
    frames = []
    dsos = []
    ips = []
    for line in stream:
        if line.startswith((" ", "\t")):
            if cur is None:
                continue
            m = FRAME_RE.match(line)
            if not m:
                continue
            ip, sym, dso = m.groups()
            if int(ip, 16) == 0:
                continue
            name = frame_name(sym, dso)
            if frames and name == "[unknown]" and frames[-1] == "[unknown]":
                continue
            frames.append(name)
            dsos.append(short_dso(dso))
            ips.append(ip)
            continue
        if cur is not None:
            yield (cur[0], cur[1], cur[2]) + root_first(frames, dsos, ips)
            cur = None
            frames = []
            dsos = []
            ips = []
        line = line.rstrip("\n")
        if not line.strip():
            continue
        m = HEADER_RE.match(line)
        if not m:
            continue
        comm, pid, tid, _time, rest = m.groups()
        if rest.startswith("PERF_RECORD_"):
            f = FORK_RE.search(rest)
            if f:
                cpid, ctid, ppid, _ptid = (int(x) for x in f.groups())
                if cpid == ctid and cpid != ppid:
                    parent[cpid] = ppid
                    # a fresh process starts with its parent's name until it execs
                    exec_comm.pop(cpid, None)
                continue
            c = COMM_RE.search(rest)
            if c:
                is_exec, name, cpid, ctid = c.groups()
                cpid, ctid = int(cpid), int(ctid)
                if cpid == ctid and (is_exec or cpid not in exec_comm):
                    exec_comm[cpid] = name
            continue
        cur = (int(pid), int(tid), comm)
        t = float(_time)
        stats["t0"] = min(stats.get("t0", t), t)
        stats["t1"] = max(stats.get("t1", t), t)
    if cur is not None:
        yield (cur[0], cur[1], cur[2]) + root_first(frames, dsos, ips)


def in_tree(pid, root, parent, memo):
    seen = []
    p = pid
    result = False
    for _ in range(64):
        if p in memo:
            result = memo[p]
            break
        if p == root:
            result = True
            break
        seen.append(p)
        q = parent.get(p)
        if q is None or q == p or q <= 1:
            break
        p = q
    for s in seen:
        memo[s] = result
    return result


# Frames at the base of every stack, left out of the inclusive table (they are ~100% by
# construction), and unresolved ones ([postgres] = any static function of postgres).
GENERIC = {"_start", "main", "__libc_start_call_main", "__libc_start_main_impl",
           "__libc_start_main", "start_thread", "clone3", "clone", "_dl_start_user",
           "PostmasterMain"}


def is_kernel(name):
    return name.endswith("_[k]")


# In a VM, cpu-clock samples taken with interrupts off land where they are turned back on:
# the leaf is then an irq-enable helper, and the function that called it is the one that
# spent the time. The report charges such samples to that caller (the folded files keep
# the frames as recorded).
SKID_RE = re.compile(r"^(__raw_callee_save_)?(pvm|native|xen|pv|arch)_(irq_enable|restore_fl|"
                     r"safe_halt|local_irq_enable|local_irq_restore)_\[k\]$")


def strip_skid(frames):
    end = len(frames)
    while end > 1 and SKID_RE.match(frames[end - 1]):
        end -= 1
    return frames[:end] if end != len(frames) else frames


class Group:
    def __init__(self, name):
        self.name = name
        self.samples = 0
        self.folded = collections.Counter()   # stack (with label frames) -> samples
        self.self_ = collections.Counter()
        self.incl = collections.Counter()
        self.kernel_leaf = 0
        self.kentry = collections.Counter()   # innermost user frame of kernel-leaf samples
        self.labels = collections.Counter()
        self.pids = collections.Counter()
        self.dsos = collections.defaultdict(collections.Counter)  # function -> objects

    @property
    def dso_of(self):
        return {f: c.most_common(1)[0][0] for f, c in self.dsos.items()}

    def add(self, label, frames, dsos, pid, n=1):
        for f, d in zip(frames, dsos):
            self.dsos[f][d] += n
        self.samples += n
        self.labels[label] += n
        self.pids[pid] += n
        self.folded[("[%s]" % label,) + frames] += n
        if not frames:
            self.self_["[no stack]"] += n
            return
        frames = strip_skid(frames)
        leaf = frames[-1]
        self.self_[leaf] += n
        for f in set(frames):
            if not is_kernel(f) and f not in GENERIC and not f.startswith("["):
                self.incl[f] += n
        if is_kernel(leaf):
            self.kernel_leaf += n
            user = next((f for f in reversed(frames) if not is_kernel(f)), "[kernel only]")
            self.kentry[user] += n


def write_folded(path, counter):
    with open(path, "w") as out:
        for stack, n in sorted(counter.items()):
            out.write("%s %d\n" % (";".join(stack), n))


def label_fn(name, dso_of, width=58):
    dso = dso_of.get(name, "")
    shown = name[:-4] if is_kernel(name) else name
    if dso and not shown.startswith("["):
        shown = "%s  (%s)" % (shown, dso)
    if len(shown) > width:
        shown = shown[: width - 2] + ".."
    return shown


def top_table(out, title, counter, total, dso_of, n, secs_per_sample):
    out.write("  %s\n" % title)
    out.write("    %7s %7s  %s\n" % ("samples", "%", "function  (object)"))
    for name, c in counter.most_common(n):
        out.write("    %7d %6.1f%%  %s\n" % (c, 100.0 * c / total if total else 0.0,
                                            label_fn(name, dso_of)))
    out.write("\n")


def report_group(out, g, workload_total, n, freq):
    dso_of = g.dso_of
    secs = g.samples / float(freq) if freq else 0.0
    out.write("== perf: %s processes: %d samples = %.2f CPU-s, %.1f%% of the workload's samples\n"
              % (g.name, g.samples, secs,
                 100.0 * g.samples / workload_total if workload_total else 0.0))
    if g.samples == 0:
        out.write("   (no samples)\n\n")
        return
    kind = "thread" if g.name == "tasker" else "role"
    parts = ", ".join("%s %.0f%%" % (k, 100.0 * v / g.samples) for k, v in g.labels.most_common(8))
    out.write("   by %s: %s\n" % (kind, parts))
    out.write("   processes: %d (%s)\n" % (len(g.pids), ", ".join(
        "pid %d: %d" % (p, c) for p, c in g.pids.most_common(5))))
    out.write("   in the kernel (leaf is a kernel function): %.1f%%\n\n"
              % (100.0 * g.kernel_leaf / g.samples))
    top_table(out, "top %d by self time (leaf function; kernel: the kernel function, object 'kernel')" % n,
              g.self_, g.samples, dso_of, n, 1.0 / freq)
    top_table(out, "top %d by inclusive time (user-space functions on the stack; not main, _start, "
              "start_thread, PostmasterMain or unresolved frames)" % n,
              g.incl, g.samples, dso_of, n, 1.0 / freq)
    if g.kernel_leaf:
        top_table(out, "top %d user functions that entered the kernel (time in kernel below them)"
                  % min(n, 10), g.kentry, g.samples, dso_of, min(n, 10), 1.0 / freq)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", nargs="?", default="-", help="perf script output (default stdin)")
    ap.add_argument("--root-pid", type=int, required=True, help="pid of the workload command")
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--tasker-comm", default="tasker",
                    help="process name (comm) of tasker executables")
    ap.add_argument("--freq", type=float, default=997.0, help="sampling frequency (Hz)")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--any-postgres", action="store_true",
                    help="count every postgres process on the machine as the workload's "
                         "(a server not started by the workload: DATABASE_URL)")
    ap.add_argument("--scope", choices=("tree", "system"), default="system",
                    help="how perf recorded: the workload's process tree or the whole machine")
    args = ap.parse_args()

    stats = {"parent": {}, "exec_comm": {}}
    stream = sys.stdin if args.input == "-" else open(args.input, errors="replace")
    raw = collections.Counter()
    for pid, tid, comm, frames, dsos in parse(stream, stats):
        raw[(pid, tid, comm, frames, dsos)] += 1

    parent, exec_comm = stats["parent"], stats["exec_comm"]
    memo = {}
    tasker = Group("tasker")
    postgres = Group("postgres")
    other = Group("other (workload)")
    system = collections.Counter()
    idle = outside = 0
    outside_by = collections.Counter()

    # A PostgreSQL process's role is fixed: find it from any of its stacks first.
    pg_role = {}
    for (pid, tid, comm, frames, _dsos), n in raw.items():
        if comm != "postgres" and exec_comm.get(pid) != "postgres":
            continue
        for f in frames:
            role = PG_ROLE_OF.get(f)
            if role and (pid not in pg_role or pg_role[pid] == "backend"):
                pg_role[pid] = role
                break
    for pid, name in exec_comm.items():
        # the postmaster: a postgres process whose parent is not postgres (its children
        # inherit PostmasterMain at the base of their stacks, so it is told by ancestry)
        if name == "postgres" and exec_comm.get(parent.get(pid)) != "postgres":
            pg_role[pid] = "postmaster"

    total = 0
    for (pid, tid, comm, frames, dsos), n in raw.items():
        total += n
        if pid == 0:
            idle += n
            continue
        system[("[%s]" % comm,) + frames] += n
        is_pg = comm == "postgres" or exec_comm.get(pid) == "postgres"
        if not in_tree(pid, args.root_pid, parent, memo) and not (args.any_postgres and is_pg):
            outside += n
            outside_by[exec_comm.get(pid, comm)] += n
            continue
        pname = exec_comm.get(pid, comm)
        if pname == args.tasker_comm or comm == args.tasker_comm:
            tasker.add(comm, frames, dsos, pid, n)
        elif pname == "postgres" or comm == "postgres":
            postgres.add(pg_role.get(pid, "other"), frames, dsos, pid, n)
        else:
            other.add(pname, frames, dsos, pid, n)

    os.makedirs(args.outdir, exist_ok=True)
    write_folded(os.path.join(args.outdir, "perf-tasker.folded"), tasker.folded)
    write_folded(os.path.join(args.outdir, "perf-postgres.folded"), postgres.folded)
    workload = collections.Counter()
    for g, tag in ((tasker, "[tasker]"), (postgres, "[postgres]"), (other, "[other]")):
        for stack, n in g.folded.items():
            workload[(tag,) + stack] += n
    write_folded(os.path.join(args.outdir, "perf-workload.folded"), workload)
    if args.scope == "system":
        write_folded(os.path.join(args.outdir, "perf-system.folded"), system)

    wl_total = tasker.samples + postgres.samples + other.samples
    with open(os.path.join(args.outdir, "perf-report.txt"), "w") as out:
        def pct(x):
            return 100.0 * x / total if total else 0.0
        wall = stats.get("t1", 0.0) - stats.get("t0", 0.0)
        if args.scope == "system":
            out.write("== perf: %d samples at %g Hz over %.1f s of wall time, whole machine "
                      "(%d CPUs)\n" % (total, args.freq, wall, os.cpu_count() or 1))
            out.write("   idle %.1f%%, tasker %.1f%%, postgres %.1f%%, other workload processes "
                      "%.1f%%, rest of the machine %.1f%%\n"
                      % (pct(idle), pct(tasker.samples), pct(postgres.samples),
                         pct(other.samples), pct(outside)))
        else:
            out.write("== perf: %d samples = %.2f CPU-s of the workload's processes (it and its "
                      "children, PostgreSQL included) at %g Hz, over %.1f s of wall time\n"
                      % (wl_total, wl_total / args.freq, args.freq, wall))
            out.write("   tasker %.1f%%, postgres %.1f%%, other workload processes %.1f%%\n"
                      % (pct(tasker.samples), pct(postgres.samples), pct(other.samples)))
        if other.samples:
            out.write("   other workload processes: %s\n" % ", ".join(
                "%s %d" % kv for kv in other.labels.most_common(6)))
        if outside:
            out.write("   rest of the machine (not part of the workload): %s\n" % ", ".join(
                "%s %d" % kv for kv in outside_by.most_common(6)))
        out.write("\n")
        report_group(out, tasker, wl_total, args.top, args.freq)
        report_group(out, postgres, wl_total, args.top, args.freq)
    return 0


if __name__ == "__main__":
    sys.exit(main())
