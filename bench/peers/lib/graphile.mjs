// graphile.mjs - the graphile-worker side: a 4-job chain, single-job pickup and no-op
// throughput, run in this Node process against graphile-worker's own database.
//
// graphile-worker runs with its defaults (WorkerPreset.worker: concurrentJobs 1,
// pollInterval 2000 ms, maxPoolSize 10, prepared statements; no local queue, no batched
// completions). It LISTENs on "jobs:insert" and every committed add_job NOTIFYs it, so a new
// job is picked up at once, not at the next poll. Only its per-job success log line is off
// (NO_LOG_SUCCESS, set by run.sh) and its logger prints warnings and errors only, as the
// tasker processes run with --log-level warn.

import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';

import { Logger, makeWorkerUtils, run, runMigrations, WorkerPreset } from 'graphile-worker';

import { progress, sleep } from './util.mjs';

// Its package.json is not exported; read it next to the resolved entry point (dist/index.js).
export function graphileVersion() {
    const entry = new URL(import.meta.resolve('graphile-worker'));
    return JSON.parse(fs.readFileSync(new URL('../package.json', entry), 'utf8')).version;
}

// The defaults this version applies when the options leave them unset (main.js: localQueue
// size -1 and completeJobBatchDelay/failJobBatchDelay -1 mean "off").
export function graphileDefaults() {
    const w = WorkerPreset.worker;
    return {
        concurrency: w.concurrentJobs,
        pollInterval_ms: w.pollInterval,
        maxPoolSize: w.maxPoolSize,
        preparedStatements: w.preparedStatements,
        localQueue_size: -1,
        completeJobBatchDelay: -1,
        failJobBatchDelay: -1,
        listen_notify: 'LISTEN "jobs:insert" (always on)',
        logging: 'NO_LOG_SUCCESS=1; logger prints warnings and errors only',
    };
}

const quietLogger = new Logger(() => (level, message) => {
    if (level === 'error' || level === 'warning') process.stderr.write(`  [graphile-worker ${level}] ${message}\n`);
});

function withTimeout(promise, ms, what) {
    let timer;
    return Promise.race([
        promise,
        new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`graphile-worker: ${what} did not finish in ${ms} ms`)), ms);
        }),
    ]).finally(() => clearTimeout(timer));
}

export class GraphileBench {
    constructor(connectionString) {
        this.connectionString = connectionString;
        this.runId = Date.now().toString(36);
        this.seq = 0;
        this.runner = null;
        this.utils = null;
        this.concurrency = null;
        this.chainWaiters = new Map(); // sample id -> resolve(performance.now() at job 4's start)
        this.pickupWaiters = new Map(); // sample id -> resolve({t, getJobStart})
        this.noopLeft = 0;
        this.noopResolve = null;
        this.lastGetJobStart = 0; // performance.now() of the latest worker:getJob:start
        const self = this;
        this.taskList = {
            // Job n adds job n+1 from inside its task; job 4 signals the waiting sample.
            chain: async (payload, helpers) => {
                if (payload.step < 4) {
                    await helpers.addJob('chain', { id: payload.id, step: payload.step + 1 });
                } else {
                    const done = self.chainWaiters.get(payload.id);
                    if (done) done(performance.now());
                }
            },
            pickup: async (payload) => {
                const t = performance.now();
                const done = self.pickupWaiters.get(payload.id);
                if (done) done({ t, getJobStart: self.lastGetJobStart });
            },
            noop: async () => {
                self.noopLeft--;
                if (self.noopLeft === 0 && self.noopResolve) self.noopResolve(performance.now());
            },
        };
    }

    // Migrates its schema, makes the WorkerUtils that add jobs, starts a runner.
    // concurrency undefined = its default.
    async start(concurrency) {
        await runMigrations({ connectionString: this.connectionString, logger: quietLogger });
        this.utils = await makeWorkerUtils({ connectionString: this.connectionString, logger: quietLogger });
        await this.startRunner(concurrency);
    }

    async startRunner(concurrency) {
        const events = new EventEmitter();
        events.on('worker:getJob:start', () => {
            this.lastGetJobStart = performance.now();
        });
        const opts = {
            connectionString: this.connectionString,
            taskList: this.taskList,
            noHandleSignals: true,
            logger: quietLogger,
            events,
            crontab: '',
        };
        if (concurrency !== undefined) opts.concurrency = concurrency;
        this.runner = await run(opts);
        this.concurrency = concurrency ?? WorkerPreset.worker.concurrentJobs;
    }

    async stopRunner() {
        if (this.runner) await this.runner.stop();
        this.runner = null;
    }

    async stop() {
        await this.stopRunner().catch(() => {});
        if (this.utils) await this.utils.release().catch(() => {});
        this.utils = null;
    }

    // addJob(job 1) until job 4's task function runs, in ms.
    async chainSample() {
        const id = `${this.runId}-c${this.seq++}`;
        const finished = new Promise((resolve) => this.chainWaiters.set(id, resolve));
        const t0 = performance.now();
        await this.utils.addJob('chain', { id, step: 1 });
        const t1 = await withTimeout(finished, 30000, `chain ${id}`);
        this.chainWaiters.delete(id);
        return t1 - t0;
    }

    // addJob until the task function runs (handler), and until the worker began the
    // get_job that returned it (claim), in ms.
    async pickupSample() {
        const id = `${this.runId}-p${this.seq++}`;
        const started = new Promise((resolve) => this.pickupWaiters.set(id, resolve));
        const t0 = performance.now();
        await this.utils.addJob('pickup', { id });
        const s = await withTimeout(started, 30000, `pickup ${id}`);
        this.pickupWaiters.delete(id);
        return { handler: s.t - t0, claim: s.getJobStart >= t0 ? s.getJobStart - t0 : null };
    }

    async waitDrained(timeoutMs = 120000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const r = await this.utils.withPgClient((c) =>
                c.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs'),
            );
            if (r.rows[0].n === 0) return performance.now();
            if (Date.now() > deadline) throw new Error(`graphile-worker: ${r.rows[0].n} jobs left after ${timeoutMs} ms`);
            await sleep(2);
        }
    }

    // n no-op jobs added with addJobs in batches while the runner works; ends when every
    // job has run and its completion is committed (the jobs table is empty).
    async throughput(n, batch, label) {
        const finished = new Promise((resolve) => {
            this.noopResolve = resolve;
        });
        this.noopLeft = n;
        const p = progress(label, n);
        const t0 = performance.now();
        for (let i = 0; i < n; i += batch) {
            const specs = [];
            for (let j = i; j < Math.min(n, i + batch); j++) specs.push({ identifier: 'noop', payload: {} });
            await this.utils.addJobs(specs);
            p.tick(Math.min(n, i + batch));
        }
        const tSubmitted = performance.now();
        const tLastRan = await withTimeout(finished, 300000, label);
        const tDone = await this.waitDrained();
        this.noopResolve = null;
        const seconds = (tDone - t0) / 1000;
        p.end(`: ${(n / seconds).toFixed(0)} jobs/s`);
        const r4 = (x) => Math.round(x * 1e4) / 1e4;
        return {
            jobs: n,
            concurrency: this.concurrency,
            add_batch: batch,
            seconds: r4(seconds),
            submit_seconds: r4((tSubmitted - t0) / 1000),
            last_job_ran_seconds: r4((tLastRan - t0) / 1000),
            jobs_per_s: Math.round((n / seconds) * 10) / 10,
        };
    }
}
