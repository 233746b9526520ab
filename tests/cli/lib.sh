# lib.sh - shared helpers of the CLI tests (sourced). The caller sets $out and $err (files for
# the last command's output) and $failures (a count, incremented on each failed check).

# expect NAME EXIT_CODE PATTERN -- command...: the command exits EXIT_CODE and its output
# (stdout or stderr) contains PATTERN (fixed string; empty: anything); a sanitizer report on
# stderr fails it too.
expect() {
    name="$1" code="$2" pattern="$3"
    shift 4
    "$@" >"$out" 2>"$err"
    rc=$?
    if grep -qE "Sanitizer|runtime error:" "$err"; then
        echo "not ok - $name: sanitizer report"; cat "$err"
        failures=$((failures + 1))
    elif [ "$rc" -ne "$code" ]; then
        echo "not ok - $name: exit $rc, expected $code"; cat "$out" "$err"
        failures=$((failures + 1))
    elif [ -n "$pattern" ] && ! cat "$out" "$err" | grep -qF -- "$pattern"; then
        echo "not ok - $name: output lacks \"$pattern\""; cat "$out" "$err"
        failures=$((failures + 1))
    else
        echo "ok - $name"
    fi
}

# check NAME FILE PATTERN: FILE (e.g. the last command's $out or $err) contains PATTERN.
check() {
    if grep -qF -- "$3" "$2"; then
        echo "ok - $1"
    else
        echo "not ok - $1: lacks \"$3\""; cat "$2"
        failures=$((failures + 1))
    fi
}
