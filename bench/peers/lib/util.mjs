// util.mjs - statistics, clocks, HTTP and progress output for the peer benchmark.

import http from 'node:http';
import { performance } from 'node:perf_hooks';

// ---------------------------------------------------------------- statistics

// Linear interpolation between closest ranks (the same definition as numpy's default).
export function percentile(sorted, p) {
    if (sorted.length === 0) return null;
    const rank = (p / 100) * (sorted.length - 1);
    const lo = Math.floor(rank);
    const hi = Math.ceil(rank);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

// {samples, mean_ms, p50_ms, p95_ms, p99_ms, min_ms, max_ms, samples_ms} of a list of ms.
export function summarize(values) {
    const v = values.filter((x) => Number.isFinite(x));
    const sorted = [...v].sort((a, b) => a - b);
    const mean = v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
    const r = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
    return {
        samples: v.length,
        mean_ms: r(mean),
        p50_ms: r(percentile(sorted, 50)),
        p95_ms: r(percentile(sorted, 95)),
        p99_ms: r(percentile(sorted, 99)),
        min_ms: r(sorted.length ? sorted[0] : null),
        max_ms: r(sorted.length ? sorted[sorted.length - 1] : null),
        samples_ms: v.map(r),
    };
}

// ---------------------------------------------------------------- clocks

// Wall-clock time in ms since the epoch with sub-millisecond resolution (monotonic within
// the run), comparable with PostgreSQL's timestamps once the offset is known.
export function wallMs() {
    return performance.timeOrigin + performance.now();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// '2026-11-26T08:32:30.483154+00:00' (jsonb of a timestamptz) or '...483Z' -> ms since the
// epoch, keeping the microseconds that Date.parse would drop.
export function parseTimestampMs(s) {
    if (typeof s !== 'string') return null;
    const m = /^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d(?::?\d\d)?)$/.exec(s);
    if (!m) return null;
    let zone = m[3];
    if (/^[+-]\d\d$/.test(zone)) zone += ':00';
    const base = Date.parse(m[1].replace(' ', 'T') + zone);
    if (Number.isNaN(base)) return null;
    return base + (m[2] ? parseFloat('0' + m[2]) * 1000 : 0);
}

// Offset of the database clock against wallMs(), from the query with the shortest round
// trip among `n`: db_ms - client_ms (both on this machine, so it should be close to 0).
export async function clockOffsetMs(client, n = 30) {
    let best = null;
    for (let i = 0; i < n; i++) {
        const t0 = wallMs();
        const res = await client.query(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || 'Z' AS ts");
        const t1 = wallMs();
        const db = parseTimestampMs(res.rows[0].ts);
        const rtt = t1 - t0;
        if (best === null || rtt < best.rtt) best = { rtt, offset: db - (t0 + t1) / 2 };
    }
    return { offset_ms: round3(best.offset), rtt_ms: round3(best.rtt) };
}

export const round3 = (x) => (x === null || x === undefined ? null : Math.round(x * 1000) / 1000);

// ---------------------------------------------------------------- HTTP

// One JSON request over a (kept-alive) agent. Resolves {status, body (parsed or text)}.
export function request(agent, method, url, body, timeoutMs = 60000) {
    return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const req = http.request(
            url,
            {
                method,
                agent,
                headers: data
                    ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) }
                    : {},
                timeout: timeoutMs,
            },
            (res) => {
                const chunks = [];
                res.on('data', (c) => chunks.push(c));
                res.on('end', () => {
                    const text = Buffer.concat(chunks).toString('utf8');
                    let parsed = text;
                    try {
                        parsed = JSON.parse(text);
                    } catch {
                        /* keep the text */
                    }
                    resolve({ status: res.statusCode, body: parsed });
                });
                res.on('error', reject);
            },
        );
        req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
        req.on('error', reject);
        if (data) req.write(data);
        req.end();
    });
}

// ---------------------------------------------------------------- progress

const isTTY = process.stdout.isTTY;

// A progress line "  label 37/100" rewritten in place on a terminal, printed every 25 % in
// a log (make output piped to a file).
export function progress(label, total) {
    let lastQuarter = -1;
    const start = Date.now();
    return {
        tick(done) {
            if (isTTY) {
                process.stdout.write(`\r  ${label} ${done}/${total}`);
            } else {
                const q = Math.floor((done * 4) / total);
                if (q !== lastQuarter && q > 0) {
                    lastQuarter = q;
                    process.stdout.write(`  ${label} ${done}/${total}\n`);
                }
            }
        },
        end(extra = '') {
            const s = ((Date.now() - start) / 1000).toFixed(1);
            if (isTTY) process.stdout.write(`\r  ${label} ${total}/${total} done in ${s} s${extra}\n`);
            else process.stdout.write(`  ${label} done in ${s} s${extra}\n`);
        },
    };
}

export function say(msg) {
    process.stdout.write(`${msg}\n`);
}
