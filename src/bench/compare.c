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
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"

typedef enum { K_FLOOR, K_E2E, K_SQL, K_NOTIFY, K_RATE, K_LATENCY } kind_t;

typedef struct metric_s {
    char key[200];
    double value;
    kind_t kind;
} metric_t;

#define MAX_METRICS 512

typedef struct metrics_s {
    metric_t m[MAX_METRICS];
    int n;
} metrics_t;

static void add(metrics_t *ms, kind_t kind, const json_t *value, const char *key)
{
    if (ms->n == MAX_METRICS || !json_is_number(value))
        return;
    metric_t *m = &ms->m[ms->n++];
    snprintf(m->key, sizeof(m->key), "%s", key);
    m->value = json_number_value(value);
    m->kind = kind;
}

static void collect(const json_t *doc, metrics_t *ms)
{
    char key[200];
    ms->n = 0;
    const json_t *floor_doc = json_object_get(doc, "floor");
    static const char *const floor_keys[] = {"select1_p50_us", "commit_p50_us",
                                             "notify_raw_p50_us"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "floor %s", floor_keys[i]);
        add(ms, K_FLOOR, json_object_get(floor_doc, floor_keys[i]), key);
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
        add(ms, K_E2E, json_object_get(row, "p50_ms"), key);
        snprintf(key, sizeof(key), "e2e %s/%s p95_ms", wf, h);
        add(ms, K_LATENCY, json_object_get(row, "p95_ms"), key);
    }
    json_array_foreach(json_object_get(doc, "sql"), i, row)
    {
        const char *fn = json_string_value(json_object_get(row, "function"));
        const char *cs = json_string_value(json_object_get(row, "case"));
        if (fn == NULL || cs == NULL)
            continue;
        snprintf(key, sizeof(key), "sql %s %s tasks=%lld p50_us", fn, cs,
                 (long long)json_integer_value(json_object_get(row, "tasks")));
        add(ms, K_SQL, json_object_get(row, "p50_us"), key);
    }
    const json_t *notify = json_object_get(doc, "notify");
    add(ms, K_NOTIFY, json_object_get(notify, "p50_ms"), "notify p50_ms");
    add(ms, K_LATENCY, json_object_get(notify, "p99_ms"), "notify p99_ms");
    const json_t *tp = json_object_get(doc, "throughput");
    add(ms, K_RATE, json_object_get(tp, "tasks_per_s"), "throughput tasks_per_s");
    add(ms, K_RATE, json_object_get(tp, "steps_per_s"), "throughput steps_per_s");
    add(ms, K_LATENCY, json_object_get(tp, "step_p50_ms"), "throughput step_p50_ms");
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

int tk_bench_compare(const char *base_path, const char *new_path, FILE *out)
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
    fprintf(out, "Comparing %s (base) with %s (new)\n", base_path, new_path);
    fprintf(out, "  %-70s %12s %12s %8s  %s\n", "Metric", "Base", "New", "Change", "Verdict");
    double floor_shift = 0;
    for (int i = 0; i < base.n; i++) {
        const metric_t *b = &base.m[i];
        const metric_t *n = find(&next, b->key);
        if (n == NULL) {
            fprintf(out, "  %-70s %12.3f %12s %8s  %s\n", b->key, b->value, "-", "", "missing");
            continue;
        }
        double worse = b->value == 0       ? 0
                       : b->kind == K_RATE ? (b->value - n->value) / b->value
                                           : (n->value - b->value) / b->value;
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
        double change = b->value == 0 ? 0 : (n->value - b->value) / b->value * 100;
        fprintf(out, "  %-70s %12.3f %12.3f %+7.1f%%  %s%s\n", b->key, b->value, n->value, change,
                names[v], why);
    }
    for (int i = 0; i < next.n; i++)
        if (find(&base, next.m[i].key) == NULL)
            fprintf(out, "  %-70s %12s %12.3f %8s  %s\n", next.m[i].key, "-", next.m[i].value, "",
                    "new");
    fprintf(out, "  %d better, %d accept, %d watch, %d investigate, %d FAIL\n", counts[0],
            counts[1], counts[2], counts[3], counts[4]);
    fprintf(out, "  (seed rules: +-10%% accept, >20%% investigate, >30%% or E2E >200 ms or SQL "
                 ">1.5 ms fail; 10-20%% worse: watch)\n");
    if (fabs(floor_shift) > 0.20)
        fprintf(out,
                "  note: the machine floor moved by %+.0f%%: the other figures move with it "
                "(different machine or load), compare their floor multiples\n",
                floor_shift * 100);
    json_decref(base_doc);
    json_decref(new_doc);
    return counts[4] > 0 ? 1 : 0;
}
