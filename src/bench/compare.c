/*
 * compare.c - `tasker bench compare BASE.json NEW.json`: the seed's validation rules applied
 * to every metric the two runs share.
 *
 * Change = how much worse NEW is than BASE (for latencies (new - base) / base, for
 * throughput (base - new) / base). Verdicts, from the seed's "Post-Refactor Validation
 * Targets":
 *   better       improved by more than 10 %
 *   accept       within +-10 %
 *   watch        10-20 % worse: between the seed's accept and investigate bands; accepted,
 *                but run again (the machine is noisy) and keep an eye on it
 *   investigate  20-30 % worse
 *   FAIL         more than 30 % worse, or an E2E p50 above 200 ms, or a SQL p50 above 1.5 ms
 * The floor (machine) figures get "info": they describe the machine, not tasker; when they
 * moved by more than 20 % the comparison says so, since every other figure moves with them.
 *
 * With --per-floor each figure is first divided by its own run's floor, the one its suite
 * prints its multiple of: SQL by SELECT 1, E2E and the throughput's step latency by the
 * durable commit, notify by the raw NOTIFY; rates are multiplied by the commit (tasks per
 * commit time). Runs on different machines, or in different phases of a shared one, then
 * compare by what tasker adds over the machine. The 200 ms and 1.5 ms limits stay absolute.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"

typedef enum { K_FLOOR, K_E2E, K_SQL, K_NOTIFY, K_RATE, K_LATENCY } kind_t;

/* The floor a metric is read against with --per-floor (an index into metrics_t.floors). */
typedef enum { BY_NONE = -1, BY_SELECT1, BY_COMMIT, BY_NOTIFY } by_floor_t;

typedef struct metric_s {
    char key[200];
    double value;
    kind_t kind;
    by_floor_t by;
    double us; /* microseconds per unit of value (1000 for ms); unused for rates */
} metric_t;

#define MAX_METRICS 512

typedef struct metrics_s {
    metric_t m[MAX_METRICS];
    int n;
    double floors[3]; /* select1, commit, notify_raw p50 in us (0: absent) */
} metrics_t;

static void add(metrics_t *ms, kind_t kind, const json_t *value, const char *key, by_floor_t by,
                double us)
{
    if (ms->n == MAX_METRICS || !json_is_number(value))
        return;
    metric_t *m = &ms->m[ms->n++];
    snprintf(m->key, sizeof(m->key), "%s", key);
    m->value = json_number_value(value);
    m->kind = kind;
    m->by = by;
    m->us = us;
}

static void collect(const json_t *doc, metrics_t *ms)
{
    char key[200];
    ms->n = 0;
    const json_t *floor_doc = json_object_get(doc, "floor");
    static const char *const floor_keys[] = {"select1_p50_us", "commit_p50_us",
                                             "notify_raw_p50_us"};
    for (size_t i = 0; i < 3; i++) {
        const json_t *v = json_object_get(floor_doc, floor_keys[i]);
        ms->floors[i] = json_is_number(v) ? json_number_value(v) : 0;
        snprintf(key, sizeof(key), "floor %s", floor_keys[i]);
        add(ms, K_FLOOR, v, key, BY_NONE, 1);
    }
    size_t i;
    const json_t *row;
    json_array_foreach(json_object_get(doc, "e2e"), i, row)
    {
        const char *wf = json_string_value(json_object_get(row, "workflow"));
        const char *h = json_string_value(json_object_get(row, "handler"));
        if (wf == NULL || h == NULL)
            continue;
        snprintf(key, sizeof(key), "e2e %s/%s p50_ms", wf, h);
        add(ms, K_E2E, json_object_get(row, "p50_ms"), key, BY_COMMIT, 1000);
        snprintf(key, sizeof(key), "e2e %s/%s p95_ms", wf, h);
        add(ms, K_LATENCY, json_object_get(row, "p95_ms"), key, BY_COMMIT, 1000);
    }
    json_array_foreach(json_object_get(doc, "sql"), i, row)
    {
        const char *fn = json_string_value(json_object_get(row, "function"));
        const char *cs = json_string_value(json_object_get(row, "case"));
        if (fn == NULL || cs == NULL)
            continue;
        snprintf(key, sizeof(key), "sql %s %s tasks=%lld p50_us", fn, cs,
                 (long long)json_integer_value(json_object_get(row, "tasks")));
        add(ms, K_SQL, json_object_get(row, "p50_us"), key, BY_SELECT1, 1);
    }
    const json_t *notify = json_object_get(doc, "notify");
    add(ms, K_NOTIFY, json_object_get(notify, "p50_ms"), "notify p50_ms", BY_NOTIFY, 1000);
    add(ms, K_LATENCY, json_object_get(notify, "p99_ms"), "notify p99_ms", BY_NOTIFY, 1000);
    const json_t *tp = json_object_get(doc, "throughput");
    add(ms, K_RATE, json_object_get(tp, "tasks_per_s"), "throughput tasks_per_s", BY_COMMIT, 0);
    add(ms, K_RATE, json_object_get(tp, "steps_per_s"), "throughput steps_per_s", BY_COMMIT, 0);
    add(ms, K_LATENCY, json_object_get(tp, "step_p50_ms"), "throughput step_p50_ms", BY_COMMIT,
        1000);
}

/* m's value as a multiple of its run's floor (a rate: per commit time). False when that run
 * has no such floor. */
static bool per_floor(const metrics_t *ms, const metric_t *m, double *out)
{
    double floor_us = m->by == BY_NONE ? 0 : ms->floors[m->by];
    if (!(floor_us > 0))
        return false;
    *out = m->kind == K_RATE ? m->value * floor_us / 1e6 : m->value * m->us / floor_us;
    return true;
}

static const metric_t *find(const metrics_t *ms, const char *key)
{
    for (int i = 0; i < ms->n; i++)
        if (strcmp(ms->m[i].key, key) == 0)
            return &ms->m[i];
    return NULL;
}

static json_t *load(const char *path)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (doc == NULL && jerr.line > 0)
        fprintf(stderr, "tasker bench compare: could not read %s: %s (line %d)\n", path, jerr.text,
                jerr.line);
    else if (doc == NULL)
        fprintf(stderr, "tasker bench compare: could not read %s: %s\n", path, jerr.text);
    return doc;
}

int tk_bench_compare(const char *base_path, const char *new_path, bool by_floor, FILE *out)
{
    json_t *base_doc = load(base_path), *new_doc = base_doc ? load(new_path) : NULL;
    if (base_doc == NULL || new_doc == NULL) {
        json_decref(base_doc);
        return 2;
    }
    static metrics_t base, next;
    collect(base_doc, &base);
    collect(new_doc, &next);
    int counts[6] = {0};
    static const char *const names[] = {"better", "accept", "watch", "investigate", "FAIL", "info"};
    fprintf(out, "Comparing %s (base) with %s (new)%s\n", base_path, new_path,
            by_floor ? ", as multiples of each run's floor" : "");
    fprintf(out, "  %-70s %12s %12s %8s  %s\n", "Metric", "Base", "New", "Change", "Verdict");
    double floor_shift = 0;
    for (int i = 0; i < base.n; i++) {
        const metric_t *b = &base.m[i];
        const metric_t *n = find(&next, b->key);
        if (n == NULL) {
            fprintf(out, "  %-70s %12.3f %12s %8s  %s\n", b->key, b->value, "-", "", "missing");
            continue;
        }
        double bv = b->value, nv = n->value;
        if (by_floor && b->kind != K_FLOOR &&
            (!per_floor(&base, b, &bv) || !per_floor(&next, n, &nv))) {
            fprintf(out, "  %-70s %12.3f %12.3f %8s  %s\n", b->key, b->value, n->value, "",
                    "no floor");
            continue;
        }
        double worse = bv == 0 ? 0 : b->kind == K_RATE ? (bv - nv) / bv : (nv - bv) / bv;
        int v;
        const char *why = "";
        if (b->kind == K_FLOOR) {
            v = 5;
            if (fabs(worse) > fabs(floor_shift))
                floor_shift = worse;
        } else if (b->kind == K_E2E && n->value > 200) {
            v = 4;
            why = " (E2E above 200 ms)";
        } else if (b->kind == K_SQL && n->value > 1500) {
            v = 4;
            why = " (SQL above 1.5 ms)";
        } else if (worse < -0.10) {
            v = 0;
        } else if (worse <= 0.10) {
            v = 1;
        } else if (worse <= 0.20) {
            v = 2;
        } else if (worse <= 0.30) {
            v = 3;
        } else {
            v = 4;
        }
        counts[v]++;
        double change = bv == 0 ? 0 : (nv - bv) / bv * 100;
        fprintf(out, "  %-70s %12.3f %12.3f %+7.1f%%  %s%s\n", b->key, bv, nv, change, names[v],
                why);
    }
    for (int i = 0; i < next.n; i++)
        if (find(&base, next.m[i].key) == NULL)
            fprintf(out, "  %-70s %12s %12.3f %8s  %s\n", next.m[i].key, "-", next.m[i].value, "",
                    "new");
    fprintf(out, "  %d better, %d accept, %d watch, %d investigate, %d FAIL\n", counts[0],
            counts[1], counts[2], counts[3], counts[4]);
    fprintf(out, "  (seed rules: +-10%% accept, >20%% investigate, >30%% or E2E >200 ms or SQL "
                 ">1.5 ms fail; 10-20%% worse: watch)\n");
    if (by_floor)
        fprintf(out,
                "  (figures as floor multiples: SQL / SELECT 1, E2E and step latency / durable "
                "commit, notify / raw NOTIFY, rates x commit; floors themselves as measured)\n");
    else if (fabs(floor_shift) > 0.20)
        fprintf(out,
                "  note: the machine floor moved by %+.0f%%: the other figures move with it "
                "(different machine or load): compare with --per-floor\n",
                floor_shift * 100);
    json_decref(base_doc);
    json_decref(new_doc);
    return counts[4] > 0 ? 1 : 0;
}
