#!/bin/sh
# check-format.sh - fail if any C file is not formatted as .clang-format says.
# Fix with: make format
set -eu
files=$(find include src tests bench examples bindings -name node_modules -prune -o -name '*.[ch]' -print 2>/dev/null | sort)
bad=""
for f in $files; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
if [ -n "$bad" ]; then
    echo "not formatted (run 'make format'):$bad"
    exit 1
fi
echo "PASS: $(echo "$files" | wc -w) files formatted"
