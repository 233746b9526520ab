// tasker.mjs - the tasker side: `tasker server` and one `tasker worker` on the same
// PostgreSQL, driven over the REST API with kept-alive connections.
//
//   linear-4:  POST /v1/tasks?wait_ms=30000 of linear_workflow/mathematical_sequence (four
//              builtin.square steps in a chain); the response arrives when the task is done.
//              Also the send time until step 4's handler started, from GET .../workflow_steps.
//   pickup:    POST /v1/tasks?wait_ms=30000 of bench_noop/noop (one builtin.noop step), then
//              the step's last_attempted_at (claim, microseconds, database clock) and
//              results.metadata.started_at (handler start, worker clock, microseconds) from
//              GET /v1/tasks/{uuid}/workflow_steps, against the client's send time.
//   throughput: N bench_noop/noop tasks submitted without wait_ms - B at a time with POST
//              /v1/tasks/batch (B = graphile-worker's addJobs batch), or one per POST
//              /v1/tasks - by K concurrent connections, then GET /v1/tasks/{uuid}?wait_ms=30000
//              on the last ones and on any still running.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';

import { parseTimestampMs, progress, request, sleep, wallMs } from './util.mjs';

const TERMINAL = new Set(['complete', 'error', 'cancelled', 'resolved_manually']);

const LINEAR = { namespace: 'linear_workflow', name: 'mathematical_sequence', version: '1.0.0' };
const NOOP = { namespace: 'bench_noop', name: 'noop', version: '1.0.0' };

// Starts a tasker process; resolves with the child once `readyRe` matched a stdout line.
function startProcess(bin, args, logPath, readyRe, what) {
    return new Promise((resolve, reject) => {
        const log = fs.openSync(logPath, 'a');
        const child = spawn(bin, args, { stdio: ['ignore', 'pipe', log] });
        fs.closeSync(log);
        const rl = readline.createInterface({ input: child.stdout });
        let done = false;
        const timer = setTimeout(() => {
            if (!done) {
                done = true;
                child.kill('SIGTERM');
                reject(new Error(`${what} did not start within 30 s (log: ${logPath})`));
            }
        }, 30000);
        rl.on('line', (line) => {
            const m = readyRe.exec(line);
            if (m && !done) {
                done = true;
                clearTimeout(timer);
                resolve({ child, match: m });
            }
        });
        child.on('exit', (code, sig) => {
            if (!done) {
                done = true;
                clearTimeout(timer);
                reject(new Error(`${what} exited (${code ?? sig}) before it was ready (log: ${logPath})`));
            }
        });
    });
}

export async function stopProcess(child, timeoutMs = 15000) {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(t);
}

async function waitTemplate(agent, base, t, timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const r = await request(agent, 'GET', `${base}/v1/templates/${t.namespace}/${t.name}/${t.version}`);
        if (r.status === 200) return;
        if (Date.now() > deadline) throw new Error(`template ${t.namespace}/${t.name} not registered after ${timeoutMs} ms`);
        await sleep(50);
    }
}

function check(r, what) {
    if (r.status !== 200 && r.status !== 201) {
        throw new Error(`${what}: HTTP ${r.status} ${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}`);
    }
    return r.body;
}

export class TaskerBench {
    constructor({ bin, url, db, templatesDir, logDir, logLevel, offsetMs, children }) {
        Object.assign(this, { bin, url, db, templatesDir, logDir, logLevel, offsetMs, children });
        this.runId = Date.now().toString(36);
        this.seq = 0;
        this.server = null;
        this.worker = null;
        this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    }

    // `tasker server` (REST API on a free port) and one `tasker worker` with the templates.
    async start() {
        const common = ['--log-level', this.logLevel];
        const server = await startProcess(
            this.bin,
            [...common, 'server', '--database-url', this.url, '--port', '0', '--bind', '127.0.0.1'],
            path.join(this.logDir, 'tasker-server.log'),
            /listening on http:\/\/[^:]+:(\d+)/,
            'tasker server',
        );
        this.server = server.child;
        this.children.add(this.server);
        this.base = `http://127.0.0.1:${server.match[1]}`;
        const worker = await startProcess(
            this.bin,
            [...common, 'worker', '--database-url', this.url, '--templates', this.templatesDir, '--port', '0'],
            path.join(this.logDir, 'tasker-worker.log'),
            /running/,
            'tasker worker',
        );
        this.worker = worker.child;
        this.children.add(this.worker);
        await waitTemplate(this.agent, this.base, LINEAR);
        await waitTemplate(this.agent, this.base, NOOP);
    }

    async stop() {
        this.agent.destroy();
        for (const c of [this.worker, this.server]) {
            if (c) {
                await stopProcess(c);
                this.children.delete(c);
            }
        }
        this.worker = this.server = null;
    }

    // POST /v1/tasks?wait_ms=30000 of the linear-4 workflow: the round trip until the
    // response, and the client's send time until the last step's handler started (its
    // results.metadata.started_at, as in pickupSample), in ms.
    async chainSample() {
        const body = { ...LINEAR, context: { even_number: 2, bench_run: this.runId, sample: this.seq++ } };
        const t0wall = wallMs();
        const t0 = performance.now();
        const r = await request(this.agent, 'POST', `${this.base}/v1/tasks?wait_ms=30000`, body);
        const t1 = performance.now();
        const task = check(r, 'linear-4');
        if (task.status !== 'complete') throw new Error(`linear-4 task ended ${task.status}, not complete`);
        const steps = check(await request(this.agent, 'GET', `${this.base}/v1/tasks/${task.task_uuid}/workflow_steps`), 'steps');
        const starts = (Array.isArray(steps) ? steps : [])
            .map((s) => (s?.results?.metadata?.started_at ? parseTimestampMs(s.results.metadata.started_at) : null))
            .filter((ms) => ms !== null);
        const last = starts.length === 4 ? Math.max(...starts) - this.offsetMs - t0wall : null;
        return { round_trip: t1 - t0, last_handler: last };
    }

    // A 1-step no-op task: the client's send time until the step's claim (last_attempted_at,
    // database clock, microseconds) and until its handler started (results.metadata.
    // started_at, worker clock, microseconds), and the round trip of the POST with wait_ms,
    // in ms.
    async pickupSample() {
        const t0wall = wallMs();
        const t0 = performance.now();
        const r = await request(this.agent, 'POST', `${this.base}/v1/tasks?wait_ms=30000`, { ...NOOP, context: {} });
        const t1 = performance.now();
        const task = check(r, 'noop');
        if (task.status !== 'complete') throw new Error(`noop task ended ${task.status}, not complete`);
        const steps = check(await request(this.agent, 'GET', `${this.base}/v1/tasks/${task.task_uuid}/workflow_steps`), 'steps');
        const step = Array.isArray(steps) ? steps[0] : null;
        const claimed = step ? parseTimestampMs(step.last_attempted_at) : null;
        const started = step?.results?.metadata?.started_at ? parseTimestampMs(step.results.metadata.started_at) : null;
        return {
            round_trip: t1 - t0,
            claim: claimed === null ? null : claimed - this.offsetMs - t0wall,
            handler: started === null ? null : started - this.offsetMs - t0wall,
        };
    }

    // n no-op tasks submitted (no wait_ms) over k kept-alive connections while the worker
    // runs them: `batch` per POST /v1/tasks/batch (one transaction each, like addJobs), or
    // with batch 1 one per POST /v1/tasks. Ends when the client has seen every task complete:
    // GET ?wait_ms=30000 on the last max(k, 8) submitted, then on any task still not terminal
    // until none is left.
    async throughput(n, k, label, batch = 1) {
        const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(k, 8) });
        const base = this.base;
        const uuids = new Array(n);
        let next = 0;
        let submitted = 0;
        const p = progress(label, n);
        const t0 = performance.now();
        const submitter = async () => {
            for (;;) {
                const first = next;
                if (first >= n) return;
                const count = Math.min(batch, n - first);
                next += count;
                if (batch > 1) {
                    const tasks = Array.from({ length: count }, () => ({ ...NOOP, context: {} }));
                    const r = await request(agent, 'POST', `${base}/v1/tasks/batch`, { tasks }, 120000);
                    const created = check(r, 'noop batch submit').tasks;
                    if (!Array.isArray(created) || created.length !== count) {
                        throw new Error(`noop batch submit: ${count} tasks sent, answer ${JSON.stringify(r.body).slice(0, 200)}`);
                    }
                    created.forEach((t, j) => { uuids[first + j] = t.task_uuid; });
                } else {
                    const r = await request(agent, 'POST', `${base}/v1/tasks`, { ...NOOP, context: {} });
                    uuids[first] = check(r, 'noop submit').task_uuid;
                }
                const before = submitted;
                submitted += count;
                if (Math.floor(submitted / 50) > Math.floor(before / 50) || submitted === n) p.tick(submitted);
            }
        };
        await Promise.all(Array.from({ length: k }, submitter));
        const tSubmitted = performance.now();
        const waitOne = async (uuid) => {
            const r = await request(agent, 'GET', `${base}/v1/tasks/${uuid}?wait_ms=30000`);
            const t = check(r, 'wait');
            if (!TERMINAL.has(t.status)) throw new Error(`task ${uuid} still ${t.status} after 30 s`);
        };
        await Promise.all(uuids.slice(-Math.max(k, 8)).map(waitOne));
        for (;;) {
            const left = await this.db.query(
                `SELECT task_uuid::text AS u FROM tasker.tasks WHERE task_uuid = ANY($1::uuid[])
                   AND state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually') LIMIT 8`,
                [uuids],
            );
            if (left.rows.length === 0) break;
            await Promise.all(left.rows.map((row) => waitOne(row.u)));
        }
        const tDone = performance.now();
        const stats = await this.db.query(
            `SELECT count(*) FILTER (WHERE state = 'complete')::int AS complete FROM tasker.tasks
              WHERE task_uuid = ANY($1::uuid[])`,
            [uuids],
        );
        agent.destroy();
        const seconds = (tDone - t0) / 1000;
        p.end(`: ${(n / seconds).toFixed(0)} tasks/s`);
        if (stats.rows[0].complete !== n) throw new Error(`${label}: ${stats.rows[0].complete} of ${n} tasks complete`);
        const r4 = (x) => Math.round(x * 1e4) / 1e4;
        return {
            tasks: n,
            submit_batch: batch,
            submit_concurrency: k,
            seconds: r4(seconds),
            submit_seconds: r4((tSubmitted - t0) / 1000),
            tasks_per_s: Math.round((n / seconds) * 10) / 10,
        };
    }
}
