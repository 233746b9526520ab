#!/bin/sh
# bootstrap.sh - install the Debian packages tasker needs to build, test and run.
#
# Idempotent and quiet when everything is present. Run as root (or with sudo available);
# `make build`, `make test` and `make run` call it first, so a fresh Debian 12 machine
# needs nothing else.
set -eu

PACKAGES="gcc make cmake pkg-config clang-format
libpq-dev postgresql-15 postgresql-client-15
libmicrohttpd-dev libjansson-dev libyaml-dev libcurl4-openssl-dev libssl-dev
libcmocka-dev ruby ruby-dev python3 python3-dev"

missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "installed" ] || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

echo "bootstrap: installing missing packages:$missing"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "bootstrap: cannot install packages: run as root or install sudo" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when an install fails on stale ones.
# shellcheck disable=SC2086
if ! $SUDO apt-get install -y -q --no-install-recommends $missing >/tmp/tasker-bootstrap.log 2>&1; then
    $SUDO apt-get update -q >>/tmp/tasker-bootstrap.log 2>&1 || true
    if ! $SUDO apt-get install -y -q --no-install-recommends $missing >>/tmp/tasker-bootstrap.log 2>&1; then
        echo "bootstrap: apt-get install failed; see /tmp/tasker-bootstrap.log" >&2
        tail -n 20 /tmp/tasker-bootstrap.log >&2
        exit 1
    fi
fi
echo "bootstrap: done"
