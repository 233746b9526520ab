#!/bin/sh
# test_template_cli.sh - `tasker template` as a user meets it: validate the example
# workflows and broken fixtures (messages naming file, step and problem; exit codes), list a
# template directory, help and usage errors. Needs no database.
set -u
T="${TASKER_BIN:?run through ctest}"
src=$(cd "$(dirname "$0")/../.." && pwd)
examples="$src/examples/templates"
fixtures="$src/tests/unit/templates"
failures=0
out=$(mktemp)
err=$(mktemp)
. "$(dirname "$0")/lib.sh"
trap 'rm -f "$out" "$err"' EXIT

# Help and usage errors.
expect "template --help" 0 "Usage: tasker template <subcommand>" -- "$T" template --help
expect "template -h lists validate" 0 "validate PATH..." -- "$T" template -h
expect "validate --help" 0 "Usage: tasker template validate" -- "$T" template validate --help
expect "list --help" 0 "Usage: tasker template list --templates DIR" -- "$T" template list --help
expect "tasker --help lists template" 0 "template" -- "$T" --help
expect "template without subcommand" 2 "missing subcommand" -- "$T" template
expect "template unknown subcommand" 2 'unknown subcommand "frob"' -- "$T" template frob
expect "validate without files" 2 "missing template file or directory" -- "$T" template validate
expect "validate bad option" 2 "Try 'tasker template validate --help'" -- \
    "$T" template validate --frobnicate "$examples"
expect "list without --templates" 2 "missing --templates DIR" -- "$T" template list
expect "list extra argument" 2 'unexpected argument "x"' -- "$T" template list -t "$examples" x

# The examples are valid, one by one and as a directory.
for f in "$examples"/*.yaml; do
    expect "validate $(basename "$f")" 0 "$f: ok (" -- "$T" template validate "$f"
done
expect "validate linear summary" 0 \
    "linear.yaml: ok (linear_workflow/mathematical_sequence 1.0.0, 4 steps)" -- \
    "$T" template validate "$examples/linear.yaml"
expect "validate retry summary (1 step)" 0 \
    "retry_success.yaml: ok (retry_workflow/retry_mechanics_test 1.0.0, 1 step)" -- \
    "$T" template validate "$examples/retry_success.yaml"
expect "validate the examples directory" 0 "tree.yaml: ok (tree_workflow/hierarchical_tree" -- \
    "$T" template validate "$examples"
[ "$(grep -c ': ok (' "$out")" -eq 8 ] && echo "ok - 8 examples validated" ||
    { echo "not ok - expected 8 ok lines"; cat "$out"; failures=$((failures + 1)); }
expect "a file named twice counts once" 0 "" -- \
    "$T" template validate "$examples" "$examples/linear.yaml"
[ "$(grep -c ': ok (' "$out")" -eq 8 ] && echo "ok - still 8 ok lines" ||
    { echo "not ok - expected 8 ok lines"; cat "$out"; failures=$((failures + 1)); }
expect "validate --quiet prints nothing" 0 "" -- "$T" template validate -q "$examples"
[ -z "$(cat "$out" "$err")" ] && echo "ok - quiet output empty" ||
    { echo "not ok - quiet printed output"; cat "$out" "$err"; failures=$((failures + 1)); }

# Invalid templates: exit 1, each problem on stderr naming file, step and problem.
bad="$fixtures/invalid"
expect "unknown dependency" 1 \
    "unknown_dependency.yaml: step \"charge\": unknown dependency \"validate_ordr\"" -- \
    "$T" template validate "$bad/unknown_dependency.yaml"
check "problem goes to stderr" "$err" "unknown dependency"
check "summary" "$err" "tasker: 1 of 1 template file is invalid"
expect "cycle" 1 "cycle3.yaml: steps form a cycle: a -> b -> c -> a" -- \
    "$T" template validate "$bad/cycle3.yaml"
expect "duplicate step" 1 "duplicate_step.yaml: duplicate step name \"a\"" -- \
    "$T" template validate "$bad/duplicate_step.yaml"
expect "bad namespace" 1 "namespace_name \"has-dash\" must match [A-Za-z_][A-Za-z0-9_]*" -- \
    "$T" template validate "$bad/namespace_dash.yaml"
expect "syntax error" 1 "syntax_error.yaml: line 8: could not parse YAML:" -- \
    "$T" template validate "$bad/syntax_error.yaml"
expect "several problems" 1 "step \"b\": unknown dependency \"nope\"" -- \
    "$T" template validate "$bad/several_problems.yaml"
[ "$(grep -c 'several_problems.yaml: ' "$err")" -eq 4 ] && echo "ok - all 4 problems printed" ||
    { echo "not ok - expected 4 problems"; cat "$err"; failures=$((failures + 1)); }
expect "valid and invalid together" 1 "linear.yaml: ok (" -- \
    "$T" template validate "$examples/linear.yaml" "$bad/cycle2.yaml"
check "one of two invalid" "$err" "tasker: 1 of 2 template files are invalid"
expect "missing file" 1 "nope.yaml: could not open the template file: No such file" -- \
    "$T" template validate "$fixtures/nope.yaml"
expect "duplicate identity across files" 1 \
    "two.yaml: template dup/same version 1.0.0 is already defined in" -- \
    "$T" template validate "$fixtures/dup"
empty=$(mktemp -d)
expect "directory without templates" 1 "no template files (*.yml, *.yaml)" -- \
    "$T" template validate "$empty"

# list
expect "list the examples" 0 "NAMESPACE" -- "$T" template list --templates "$examples"
check "list header" "$out" "NAMESPACE             NAME                   VERSION  STEPS  FILE"
check "list linear row" "$out" "linear_workflow       mathematical_sequence  1.0.0        4  $examples/linear.yaml"
check "list tree row" "$out" "tree_workflow         hierarchical_tree      1.0.0        8  $examples/tree.yaml"
[ "$(wc -l <"$out")" -eq 9 ] && echo "ok - header and 8 rows" ||
    { echo "not ok - expected 9 lines"; cat "$out"; failures=$((failures + 1)); }
expect "list sorted by namespace" 0 "" -- "$T" template list -t "$examples"
[ "$(sed -n 2p "$out" | cut -d' ' -f1)" = "complex_dag_workflow" ] && echo "ok - first row" ||
    { echo "not ok - first row"; cat "$out"; failures=$((failures + 1)); }
expect "list recursive" 0 "gamma" -- "$T" template list --templates "$fixtures/dir"
expect "list invalid directory" 1 "cycle2.yaml: steps form a cycle" -- \
    "$T" template list --templates "$bad"
expect "list missing directory" 1 "could not open template directory" -- \
    "$T" template list --templates "$fixtures/nope"
expect "list empty directory" 0 "no templates under" -- "$T" template list --templates "$empty"
rmdir "$empty"

if [ "$failures" -eq 0 ]; then
    echo "PASS: template cli"
else
    echo "FAIL: template cli ($failures failed)"
    exit 1
fi
