#!/usr/bin/env bash
# profile.sh - profile a tasker workload with perf (cpu-clock sampling of the workload and
# every process it starts, so PostgreSQL's server processes are in the picture; or of the
# whole machine) and with valgrind's callgrind (instruction counts of the tasker processes,
# repeatable). `make profile WORKLOAD=...`.
#
#   scripts/profile.sh [e2e|sql|throughput]          (default e2e, or $WORKLOAD)
#
# Writes bench/profiles/out/<workload>-<timestamp>/ (see bench/profiles/README.md):
#   report.txt                      the short report: top functions of tasker and postgres
#   perf-{tasker,postgres,workload,system}.folded   folded stacks (flame-graph input)
#   perf-{tasker,postgres,workload}.svg             flame graphs (open in a browser)
#   perf.data                       the recording (`perf report -i perf.data`)
#   callgrind.out.<pid>, callgrind-report.txt       callgrind data and full annotations
#   workload-*.log, workload-*.cmd  what ran and what it printed
#
# Settings (environment):
#   PERF_CALLGRAPH  dwarf,16384 (default; PostgreSQL and the libraries have no frame
#                   pointers) or fp (frame pointers: smaller and faster, tasker-only quality)
#   PERF_FREQ       sampling frequency in Hz (997)
#   PERF_SCOPE      tree (default): the workload and every process it starts, PostgreSQL
#                   included (perf follows children); system: the whole machine (-a), needed
#                   when PostgreSQL is not started by the workload (DATABASE_URL set, the
#                   default then); the report still separates the workload from the rest
#   PROFILE_TOOLS   perf,callgrind (default) or just one of them
#   PERF_KEEP_MB    keep perf.data only if at most this size (512)
#   PROFILE_DATA_DIR  private clusters: DIR for the stand-in, DIR-bench for `tasker bench`
#                   (/tmp/profile-pg)
#   BUILD_PROFILE   build directory (build-profile)
#   and those of scripts/profile/workload.sh: PROFILE_CMD, PROFILE_PERF_ARGS,
#   PROFILE_CALLGRIND_ARGS, STANDIN_TASKS, CALLGRIND_OPTS.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORKLOAD=${1:-${WORKLOAD:-e2e}}
case "$WORKLOAD" in
    e2e | sql | throughput) ;;
    *) echo "profile: WORKLOAD must be e2e, sql or throughput (not '$WORKLOAD')" >&2; exit 2 ;;
esac
BUILD_PROFILE=${BUILD_PROFILE:-build-profile}
PERF_FREQ=${PERF_FREQ:-997}
PERF_CALLGRAPH=${PERF_CALLGRAPH:-dwarf,16384}
if [ -n "${DATABASE_URL:-}" ]; then PERF_SCOPE=${PERF_SCOPE:-system}; else PERF_SCOPE=${PERF_SCOPE:-tree}; fi
case "$PERF_SCOPE" in
    tree) SCOPE=() ;;
    system) SCOPE=(-a) ;;
    *) echo "profile: PERF_SCOPE must be tree or system" >&2; exit 2 ;;
esac
PROFILE_TOOLS=${PROFILE_TOOLS:-perf,callgrind}
PERF_KEEP_MB=${PERF_KEEP_MB:-512}
JOBS=${JOBS:-$(nproc)}
export DATA_DIR=${PROFILE_DATA_DIR:-/tmp/profile-pg}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
HERE=$ROOT/scripts/profile

say() { echo "profile: $*" >&2; }
want() { case ",$PROFILE_TOOLS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi

# --- Debian packages: perf (linux-perf), valgrind, curl for the stand-in; as bootstrap.sh does.
install_missing() {
    local missing="" pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = "installed" ] || missing="$missing $pkg"
    done
    [ -z "$missing" ] && return 0
    say "installing missing packages:$missing"
    if [ "$SUDO" = none ]; then
        say "cannot install packages: run as root or install sudo"; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! $SUDO apt-get install -y -q --no-install-recommends $missing >/tmp/tasker-profile-apt.log 2>&1; then
        $SUDO apt-get update -q >>/tmp/tasker-profile-apt.log 2>&1 || true
        # shellcheck disable=SC2086
        $SUDO apt-get install -y -q --no-install-recommends $missing >>/tmp/tasker-profile-apt.log 2>&1 || {
            say "apt-get install failed; see /tmp/tasker-profile-apt.log"; tail -n 20 /tmp/tasker-profile-apt.log >&2; exit 1; }
    fi
}
install_missing linux-perf valgrind curl libc6-dbg
# A flame-graph renderer from Debian, if this release has one (bookworm does not): used in
# place of scripts/profile/flamegraph.py.
if ! command -v flamegraph.pl >/dev/null 2>&1 &&
    apt-cache policy flamegraph 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    install_missing flamegraph || true
fi

# --- Kernel settings perf needs. Changed only when needed, said so, and put back at exit.
RESTORE=()
restore() {
    local kv
    for kv in "${RESTORE[@]}"; do
        if [ "$SUDO" = none ]; then true; else $SUDO sysctl -q -w "$kv" >/dev/null 2>&1 || true; fi
    done
}
trap restore EXIT
set_sysctl() { # name wanted-value reason
    local cur
    cur=$(cat "/proc/sys/kernel/$1" 2>/dev/null || echo "")
    [ -n "$cur" ] && [ "$cur" != "$2" ] || return 0
    if [ "$SUDO" = none ]; then
        say "kernel.$1 is $cur ($3); run as root or: sudo sysctl kernel.$1=$2"
        return 0
    fi
    if $SUDO sysctl -q -w "kernel.$1=$2" >/dev/null 2>&1; then
        say "set kernel.$1=$2 for this run (was $cur: $3); restored at exit"
        RESTORE+=("kernel.$1=$cur")
    else
        say "could not set kernel.$1=$2 (was $cur: $3)"
    fi
}
if want perf; then
    # root (CAP_SYS_ADMIN) may record system-wide whatever perf_event_paranoid says; others
    # need -1. kptr_restrict=2 hides kernel symbols even from root, 1 from everyone else.
    if [ "$(id -u)" -ne 0 ]; then
        cur=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo 2)
        if [ "$PERF_SCOPE" = system ]; then
            set_sysctl perf_event_paranoid -1 "system-wide recording needs -1 for non-root"
        elif [ "$cur" -gt 1 ]; then
            set_sysctl perf_event_paranoid 1 "kernel call chains need <= 1 for non-root"
        fi
        set_sysctl kptr_restrict 0 "kernel symbols are hidden from non-root otherwise"
    elif [ "$(cat /proc/sys/kernel/kptr_restrict 2>/dev/null || echo 0)" = 2 ]; then
        set_sysctl kptr_restrict 1 "2 hides kernel symbols even from root"
    fi
fi

# --- Build: symbols and frame pointers, in its own tree so `make build` is untouched.
say "building $BUILD_PROFILE (RelWithDebInfo, -fno-omit-frame-pointer)"
cmake -S . -B "$BUILD_PROFILE" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_FLAGS="-fno-omit-frame-pointer -mno-omit-leaf-frame-pointer" >/dev/null
cmake --build "$BUILD_PROFILE" -j "$JOBS" --target tasker >/dev/null
export TASKER=$ROOT/$BUILD_PROFILE/tasker

STAMP=$(date +%Y%m%d-%H%M%S)
export OUT=$ROOT/bench/profiles/out/$WORKLOAD-$STAMP
mkdir -p "$OUT"

# Create the workload's private cluster before recording, so initdb is not in the profile.
if "$TASKER" bench --help >/dev/null 2>&1; then export PROFILE_HAS_BENCH=1; else export PROFILE_HAS_BENCH=0; fi
if [ -z "${PROFILE_CMD:-}" ] && [ -z "${DATABASE_URL:-}" ]; then
    if [ "$PROFILE_HAS_BENCH" = 1 ]; then
        say "workload: tasker bench $WORKLOAD; preparing its cluster in $DATA_DIR-bench"
        prep=(db start -q --data-dir "$DATA_DIR-bench")
    else
        say "no 'tasker bench' in this binary: stand-in workload (tasker dev --demo); preparing $DATA_DIR"
        prep=(dev --exit --port 0 --data-dir "$DATA_DIR")
    fi
    "$TASKER" "${prep[@]}" >"$OUT/warmup.log" 2>&1 || {
        say "warm-up failed; see $OUT/warmup.log"; tail -n 20 "$OUT/warmup.log" >&2; exit 1; }
    if [ "$PROFILE_HAS_BENCH" = 1 ]; then
        "$TASKER" db stop -q --data-dir "$DATA_DIR-bench" >>"$OUT/warmup.log" 2>&1 || true
    fi
fi

HW=$(perf stat -e instructions true 2>&1 | grep -q 'not supported' && echo "not supported" || echo "available")

# --- perf
if want perf; then
    case "$PERF_CALLGRAPH" in
        fp) CG=(-g) ;;
        *) CG=(--call-graph "$PERF_CALLGRAPH") ;;
    esac
    # dwarf call graphs write ~5 MB/s: a bigger ring buffer loses fewer (root may lock it)
    MMAP=()
    if [ "$(id -u)" -eq 0 ]; then MMAP=(-m "${PERF_MMAP:-64M}"); fi
    say "perf record -F $PERF_FREQ -e cpu-clock ${SCOPE[*]:+${SCOPE[*]} }${CG[*]} -- workload ($WORKLOAD)"
    perf record -F "$PERF_FREQ" -e cpu-clock "${SCOPE[@]}" "${CG[@]}" "${MMAP[@]}" -o "$OUT/perf.data" \
        -- bash "$HERE/workload.sh" perf "$WORKLOAD" >"$OUT/workload-perf.log" 2>&1 || {
        say "perf record or the workload failed; see $OUT/workload-perf.log"
        tail -n 20 "$OUT/workload-perf.log" >&2; exit 1; }
    say "folding stacks (perf script)"
    perf script -i "$OUT/perf.data" --show-task-events -F comm,pid,tid,time,ip,sym,dso \
        2>"$OUT/perf-script.log" |
        "$PY" "$HERE/fold_perf.py" --root-pid "$(cat "$OUT/workload-perf.pid")" \
            --outdir "$OUT" --freq "$PERF_FREQ" --scope "$PERF_SCOPE" \
            ${DATABASE_URL:+--any-postgres} --tasker-comm "$(basename "$TASKER" | cut -c1-15)"
    for g in tasker postgres workload; do
        title="$g: $WORKLOAD, perf cpu-clock $PERF_FREQ Hz, $PERF_CALLGRAPH"
        if command -v flamegraph.pl >/dev/null 2>&1; then
            flamegraph.pl --title "$title" "$OUT/perf-$g.folded" >"$OUT/perf-$g.svg" 2>/dev/null || true
        else
            "$PY" "$HERE/flamegraph.py" --title "$title" "$OUT/perf-$g.folded" >"$OUT/perf-$g.svg"
        fi
    done
    size_mb=$(( $(stat -c %s "$OUT/perf.data") / 1048576 ))
    if [ "$size_mb" -gt "$PERF_KEEP_MB" ]; then
        rm -f "$OUT/perf.data"
        PERF_DATA_NOTE="perf.data removed (${size_mb} MB > PERF_KEEP_MB=$PERF_KEEP_MB)"
    else
        PERF_DATA_NOTE="perf.data (${size_mb} MB): perf report -i $OUT/perf.data"
    fi
fi

# --- callgrind
if want callgrind; then
    say "valgrind --tool=callgrind over the tasker processes of the workload ($WORKLOAD; slow)"
    bash "$HERE/workload.sh" callgrind "$WORKLOAD" >"$OUT/workload-callgrind.log" 2>&1 || {
        say "the workload under callgrind failed; see $OUT/workload-callgrind.log"
        tail -n 20 "$OUT/workload-callgrind.log" >&2; exit 1; }
    # files of forked children that exec'd PostgreSQL right away are empty or tiny
    shopt -s nullglob
    "$PY" "$HERE/callgrind_report.py" --binary "$TASKER" --full "$OUT/callgrind-report.txt" \
        "$OUT"/callgrind.out.* >"$OUT/callgrind-short.txt"
    shopt -u nullglob
fi

# --- report.txt
{
    echo "tasker profile: workload $WORKLOAD, $(date '+%Y-%m-%d %H:%M:%S %Z')"
    echo "  git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ local changes)'), $(nproc) CPUs, $(uname -r)"
    echo "  binary $TASKER (RelWithDebInfo, -fno-omit-frame-pointer)"
    for m in perf callgrind; do
        [ -f "$OUT/workload-$m.cmd" ] && echo "  workload ($m): $(cat "$OUT/workload-$m.cmd")"
    done
    if ls "$OUT"/bench-*.json >/dev/null 2>&1; then
        echo "  bench results (slowed down by the profilers: not benchmark figures): $(cd "$OUT" && echo bench-*.json)"
    fi
    lost=$(grep -ho 'lost [0-9]* chunks' "$OUT/workload-perf.log" "$OUT/perf-script.log" 2>/dev/null | head -n 1 || true)
    [ -z "$lost" ] || echo "  perf $lost (ring buffer overrun: a few samples missing; PERF_MMAP=128M)"
    if want perf; then
        echo "  perf: -e cpu-clock -F $PERF_FREQ, scope $PERF_SCOPE${SCOPE[*]:+ (${SCOPE[*]})}, call graph $PERF_CALLGRAPH; hardware counters $HW"
        echo "  $PERF_DATA_NOTE"
        echo "  flame graphs: perf-tasker.svg perf-postgres.svg perf-workload.svg (open in a browser)"
    fi
    echo
    if want perf; then cat "$OUT/perf-report.txt"; fi
    if want callgrind; then
        cat "$OUT/callgrind-short.txt"
        echo "  full listings: callgrind-report.txt; interactive: callgrind_annotate FILE, kcachegrind"
    fi
} >"$OUT/report.txt"

cat "$OUT/report.txt"
echo
echo "profile: report: $OUT/report.txt"
