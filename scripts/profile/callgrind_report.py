#!/usr/bin/env python3
"""callgrind_report.py - top functions by inclusive and self instruction counts, per process.

    callgrind_report.py --binary build-profile/tasker --full OUT/callgrind-report.txt \
        OUT/callgrind.out.*  > short-report.txt

Reads each callgrind.out.PID (one per process that valgrind ran), keeps the ones whose
command is the tasker binary, and runs callgrind_annotate on them (inclusive and self).
The complete annotate listings go to --full; a short report (top N of each) to stdout.
Files of processes that ran only for an instant (a fork before exec) are listed, not reported.
Standard library only.
"""
import argparse
import os
import re
import subprocess
import sys

LINE_RE = re.compile(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)$")
FN_RE = re.compile(r"^(.*?):(.+?)(?:\s+\[(.*)\])?$")


def header(path):
    info = {"cmd": "", "pid": "", "totals": 0}
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("cmd:"):
                info["cmd"] = line[4:].strip()
            elif line.startswith("pid:"):
                info["pid"] = line[4:].strip()
            elif line.startswith(("summary:", "totals:")):
                try:
                    info["totals"] = max(info["totals"], int(line.split()[1]))
                except (IndexError, ValueError):
                    pass
    return info


def annotate(path, inclusive):
    args = ["callgrind_annotate", "--threshold=99.9",
            "--inclusive=%s" % ("yes" if inclusive else "no"), path]
    try:
        return subprocess.run(args, check=False, capture_output=True, text=True).stdout
    except OSError as e:
        return "callgrind_annotate failed: %s\n" % e


def parse_rows(text):
    """(Ir, %, function, source, object) rows; callgrind_annotate lists a function once per
    spelling of its file name (absolute and relative), so keep the first of each."""
    rows = []
    seen = set()
    in_table = False
    for line in text.splitlines():
        if "file:function" in line:
            in_table = True
            continue
        if not in_table:
            continue
        m = LINE_RE.match(line)
        if not m:
            continue
        ir, pct, rest = m.groups()
        f = FN_RE.match(rest)
        if f:
            src, fn, obj = f.groups()
        else:
            src, fn, obj = "???", rest, ""
        key = (fn, os.path.basename(src))
        if key in seen:
            continue
        seen.add(key)
        rows.append((int(ir.replace(",", "")), float(pct), fn, src, obj or ""))
    return rows


def label(fn, src, obj, width=62):
    where = os.path.basename(obj) if obj else ""
    if src and src != "???":
        where = os.path.basename(src)
    s = "%s  (%s)" % (fn, where) if where else fn
    return s if len(s) <= width else s[: width - 2] + ".."


def table(out, title, rows, n):
    out.write("  %s\n" % title)
    out.write("    %15s %7s  %s\n" % ("Ir", "%", "function  (source file or object)"))
    for ir, pct, fn, src, obj in rows[:n]:
        out.write("    %15s %6.2f%%  %s\n" % ("{:,}".format(ir), pct, label(fn, src, obj)))
    out.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--binary", required=True, help="the tasker executable that was profiled")
    ap.add_argument("--full", required=True, help="write the complete listings here")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--min-share", type=float, default=0.01,
                    help="report processes with at least this share of the largest one")
    args = ap.parse_args()

    infos = []
    for path in args.files:
        if os.path.getsize(path) == 0:
            continue
        info = header(path)
        info["path"] = path
        infos.append(info)
    binary = os.path.realpath(args.binary)
    tasker = [i for i in infos if i["cmd"].split()[:1] and
              os.path.realpath(i["cmd"].split()[0]) == binary]
    others = [i for i in infos if i not in tasker]
    tasker.sort(key=lambda i: -i["totals"])
    biggest = tasker[0]["totals"] if tasker else 0
    out = sys.stdout
    out.write("== callgrind: instructions executed (Ir), repeatable; %d tasker process(es)\n"
              % len(tasker))
    if not tasker:
        out.write("   no callgrind output from a tasker process (see workload-callgrind.log)\n")
    with open(args.full, "w") as full:
        for info in tasker:
            small = info["totals"] < args.min_share * biggest
            out.write("   %s: %s Ir  pid %s  %s%s\n" % (
                os.path.basename(info["path"]), "{:,}".format(info["totals"]), info["pid"],
                info["cmd"][:80], "  (short-lived, not reported)" if small else ""))
        for i in others:
            out.write("   %s: %s Ir  (not tasker: %s)\n" % (
                os.path.basename(i["path"]), "{:,}".format(i["totals"]), i["cmd"][:60]))
        out.write("\n")
        for info in tasker:
            if info["totals"] < args.min_share * biggest:
                continue
            incl = annotate(info["path"], True)
            excl = annotate(info["path"], False)
            full.write("#### %s (pid %s): %s\n#### inclusive\n%s\n#### self\n%s\n"
                       % (os.path.basename(info["path"]), info["pid"], info["cmd"], incl, excl))
            out.write("-- %s: %s\n\n" % (os.path.basename(info["path"]), info["cmd"][:100]))
            # inclusive: leave out the start-up wrappers that are 100% by construction
            rows = [r for r in parse_rows(incl) if r[2] not in ("(below main)", "main") and
                    not r[2].startswith("0x") and "__libc_start" not in r[2] and
                    not r[2].startswith("start_thread") and r[2] != "clone" and
                    "clone3" not in r[2]]
            table(out, "top %d by inclusive instructions (function and all it calls)"
                  % args.top, rows, args.top)
            table(out, "top %d by self instructions" % args.top, parse_rows(excl), args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
