#!/bin/sh
# check-banned.sh - fail if C code calls functions the house style bans (DESIGN.md section 6):
# sprintf, vsprintf, strcpy, strcat, strtok, atoi, atol, gets.
set -eu
pattern='(^|[^_[:alnum:]])(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)[[:space:]]*\('
hits=$(find include src tests bench examples bindings -name node_modules -prune -o -name '*.[ch]' -print 2>/dev/null |
       xargs grep -nE "$pattern" 2>/dev/null | grep -v 'NOLINT' || true)
if [ -n "$hits" ]; then
    echo "banned functions used:"
    echo "$hits"
    exit 1
fi
echo "PASS: no banned functions"
