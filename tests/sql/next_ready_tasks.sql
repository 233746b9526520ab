-- next_ready_tasks.sql - get_next_ready_tasks (task discovery): which tasks it returns (pending
-- ones, and waiting ones that have a step ready), their order (priority plus 0.1 per hour of
-- age), the limit, the ready_steps_count / computed_priority / name columns, and that its
-- query is served by the partial index tasks_discovery_idx.
-- (That two concurrent callers never get the same task is tested from C.)
--
-- Each block starts from an empty tasks table (DELETE cascades to steps and edges), since
-- discovery looks at every task in the database.
\ir lib/fixtures.sql

-- The task uuids returned for p_limit, in order.
CREATE FUNCTION test.discovered(p_limit integer) RETURNS uuid[] LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(array_agg(task_uuid ORDER BY o), '{}')
    FROM tasker.get_next_ready_tasks(p_limit) WITH ORDINALITY AS g(
        task_uuid, task_name, priority, namespace_name, ready_steps_count, computed_priority,
        current_state, o)
$$;

-- Which tasks are candidates.
DO $$
DECLARE
    created timestamptz := now() - interval '1 hour';
    expected uuid[] := '{}';
    t uuid;
    s text;
    got uuid[];
BEGIN
    DELETE FROM tasks;
    -- pending: always (the orchestrator has not looked at it yet), ready step or not
    t := test.make_shape('linear', 0, created, 'pending');
    expected := expected || t;
    t := test.make_task('{a:in_progress}', p_created_at => created, p_state => 'pending');
    expected := expected || t;
    -- waiting with a ready step
    t := test.make_task('{a:complete,b}', '{a>b}', 0, created, 'waiting_for_dependencies');
    expected := expected || t;
    t := test.make_task('{a:waiting_for_retry}', p_created_at => created, p_state => 'waiting_for_retry');
    PERFORM test.set_retry(test.step(t, 'a'), 1, 3, true, now() - interval '1 minute', 5);
    expected := expected || t;
    -- waiting without a ready step
    PERFORM test.make_task('{a:in_progress,b}', '{a>b}', 0, created, 'waiting_for_dependencies');
    PERFORM test.make_task('{a:error,b}', '{a>b}', 0, created, 'waiting_for_dependencies');
    PERFORM test.make_task('{a:complete}', p_created_at => created, p_state => 'waiting_for_dependencies');
    t := test.make_task('{a:waiting_for_retry}', p_created_at => created, p_state => 'waiting_for_retry');
    PERFORM test.set_retry(test.step(t, 'a'), 1, 3, true, now() - interval '1 minute', 600);
    t := test.make_task('{a:waiting_for_retry}', p_created_at => created, p_state => 'waiting_for_retry');
    PERFORM test.set_retry(test.step(t, 'a'), 3, 3, true, now() - interval '1 minute', 5);
    -- every other state, each with a ready root step
    FOREACH s IN ARRAY ARRAY['initializing', 'enqueuing_steps', 'steps_in_process',
                             'evaluating_results', 'blocked_by_failures', 'complete', 'error',
                             'cancelled', 'resolved_manually'] LOOP
        t := test.make_shape('linear', 0, created, s);
        PERFORM test.eq(test.ready_names(t), 'a', 'task in ' || s || ' has a ready step');
    END LOOP;

    SELECT array_agg(x ORDER BY x) INTO got FROM unnest(test.discovered(100)) x;
    PERFORM test.eq(got, (SELECT array_agg(x ORDER BY x) FROM unnest(expected) x),
                    'exactly the pending tasks and the waiting tasks with a ready step');
END
$$;

-- ready_steps_count is step_readiness' count of ready steps, for every kind of step: parents
-- complete, resolved_manually, unfinished, failed or cancelled; attempts left or used up; a
-- backoff over or still running; several ready steps in one task.
DO $$
DECLARE
    created timestamptz := now() - interval '1 hour';
    t uuid;
    n integer;
    r record;
BEGIN
    DELETE FROM tasks;
    PERFORM test.make_task('{a:complete,b:resolved_manually,c,d,e}', '{a>c,b>c,a>d,c>e}', 0,
                           created, 'waiting_for_dependencies');
    PERFORM test.make_task('{a:cancelled,b:error,c,d,e:complete,f}', '{a>c,b>d,e>f}', 0,
                           created, 'waiting_for_dependencies');
    PERFORM test.make_task('{a,b,c,d}', '{}', 0, created, 'pending');
    PERFORM test.make_shape('tree', 0, created, 'pending');
    t := test.make_task('{a:complete,b:waiting_for_retry,c:waiting_for_retry,d:waiting_for_retry,e}',
                        '{a>b,b>e}', 0, created, 'waiting_for_retry');
    PERFORM test.set_retry(test.step(t, 'b'), 1, 3, true, now() - interval '1 minute', 5);
    PERFORM test.set_retry(test.step(t, 'c'), 1, 3, true, now() - interval '1 minute', 600);
    PERFORM test.set_retry(test.step(t, 'd'), 1, 1, true, now() - interval '1 minute', 5);
    t := test.make_task('{a:waiting_for_retry,b:waiting_for_retry}', '{}', 0, created,
                        'waiting_for_retry');
    PERFORM test.set_retry(test.step(t, 'a'), 1, 3, false, now() - interval '1 minute', 5);
    PERFORM test.set_retry(test.step(t, 'b'), 2, 3, true, now() - interval '1 minute', NULL);
    n := 0;
    FOR r IN SELECT g.task_uuid, g.ready_steps_count FROM tasker.get_next_ready_tasks(100) g LOOP
        PERFORM test.eq(r.ready_steps_count,
                        (SELECT count(*) FROM tasker.step_readiness s
                         WHERE s.task_uuid = r.task_uuid AND s.ready_for_execution),
                        'ready_steps_count of ' || r.task_uuid || ' agrees with step_readiness');
        n := n + 1;
    END LOOP;
    PERFORM test.eq(n, 6, 'every task above has a ready step');
    PERFORM test.eq((SELECT array_agg(ready_steps_count ORDER BY ready_steps_count)
                     FROM tasker.get_next_ready_tasks(100)),
                    '{1,1,1,1,2,4}'::bigint[], 'the ready counts themselves');
END
$$;

-- Order: higher priority first; equal priority, older first; age adds 0.1 per hour, so an
-- old low-priority task overtakes a new higher-priority one once the gap is made up.
DO $$
DECLARE
    p1 uuid; p3 uuid; p5 uuid;
    old2h uuid; old1h uuid; fresh uuid;
    old30h uuid; old10h uuid; new2 uuid;
BEGIN
    DELETE FROM tasks;
    p1 := test.make_shape('linear', 1);
    p5 := test.make_shape('linear', 5);
    p3 := test.make_shape('linear', 3);
    PERFORM test.eq(test.discovered(10), ARRAY[p5, p3, p1], 'by priority, same age');

    DELETE FROM tasks;
    fresh := test.make_shape('linear', 0, now());
    old2h := test.make_shape('linear', 0, now() - interval '2 hours');
    old1h := test.make_shape('linear', 0, now() - interval '1 hour');
    PERFORM test.eq(test.discovered(10), ARRAY[old2h, old1h, fresh], 'same priority: oldest first');
    PERFORM test.eq(test.discovered(1), ARRAY[old2h], 'same priority, limit 1: the oldest');

    DELETE FROM tasks;
    new2 := test.make_shape('linear', 2, now());
    old10h := test.make_shape('linear', 0, now() - interval '10 hours');
    old30h := test.make_shape('linear', 0, now() - interval '30 hours');
    -- computed: old30h 0 + 3.0 = 3.0; new2 2.0; old10h 0 + 1.0 = 1.0
    PERFORM test.eq(test.discovered(10), ARRAY[old30h, new2, old10h],
                    'age escalation: 30 h old priority 0 before new priority 2 before 10 h old priority 0');
    -- the limit applies after that ordering, not before
    PERFORM test.eq(test.discovered(1), ARRAY[old30h], 'age escalation, limit 1');
    PERFORM test.eq(test.discovered(2), ARRAY[old30h, new2], 'age escalation, limit 2');

    -- a waiting task competes with pending ones on the same terms
    DELETE FROM tasks;
    p1 := test.make_shape('linear', 1, now(), 'pending');
    p3 := test.make_task('{a:complete,b}', '{a>b}', 3, now(), 'waiting_for_dependencies');
    PERFORM test.eq(test.discovered(10), ARRAY[p3, p1], 'waiting task with higher priority first');
END
$$;

-- The limit.
DO $$
DECLARE
    ts uuid[] := '{}';
    i integer;
    n integer;
BEGIN
    DELETE FROM tasks;
    FOR i IN 1..7 LOOP
        ts := ts || test.make_shape('linear', 10 - i);   -- priorities 9, 8, ..., 3
    END LOOP;
    PERFORM test.eq(test.discovered(2), ts[1:2], 'limit 2: the two highest');
    PERFORM test.eq(test.discovered(7), ts, 'limit 7: all, in order');
    PERFORM test.eq(test.discovered(100), ts, 'limit above the count: all');
    PERFORM test.eq(test.discovered(0), '{}'::uuid[], 'limit 0: none');
    PERFORM test.eq(test.discovered(-1), '{}'::uuid[], 'negative limit: none');
    SELECT count(*) INTO n FROM get_next_ready_tasks();
    PERFORM test.eq(n, 5, 'default limit 5');
END
$$;

-- Columns: names, priority, state, ready_steps_count and computed_priority
-- (= priority + age_hours * 0.1, rounded to 4 decimals). now() is fixed within the block's
-- transaction, so the ages here are exact.
DO $$
DECLARE
    d uuid;
    t uuid;
    q uuid;
    r record;
BEGIN
    DELETE FROM tasks;
    d := test.make_task('{start:complete,b,c,end}', '{start>b,start>c,b>end,c>end}', 2,
                        now() - interval '5 hours', 'waiting_for_dependencies', NULL, 'fulfil', 'shop');
    t := test.make_shape('tree', -5, now() - interval '1 hour');
    PERFORM test.set_step_state(t, 'root', 'complete');
    PERFORM test.set_step_state(t, 'L', 'complete');
    PERFORM test.set_step_state(t, 'R', 'complete');
    q := test.make_task('{a}', p_priority => 0, p_created_at => now() - interval '7 seconds');

    SELECT * INTO STRICT r FROM get_next_ready_tasks(10) WHERE task_uuid = d;
    PERFORM test.eq((r.task_name, r.namespace_name, r.priority, r.current_state, r.ready_steps_count)::text,
                    '(fulfil,shop,2,waiting_for_dependencies,2)', 'diamond task columns');
    PERFORM test.eq(r.computed_priority, 2.5000, 'priority 2, 5 h old');
    ASSERT abs(r.computed_priority - 2.5) < 0.0001, 'computed_priority within tolerance';

    SELECT * INTO STRICT r FROM get_next_ready_tasks(10) WHERE task_uuid = t;
    PERFORM test.eq((r.task_name, r.namespace_name, r.priority, r.current_state, r.ready_steps_count)::text,
                    '(tree,test_ns,-5,pending,4)', 'tree task columns');
    PERFORM test.eq(r.computed_priority, -4.9000, 'priority -5, 1 h old');

    SELECT * INTO STRICT r FROM get_next_ready_tasks(10) WHERE task_uuid = q;
    PERFORM test.eq(r.ready_steps_count, 1::bigint, 'one-step task ready count');
    PERFORM test.eq(r.computed_priority, 0.0002, 'priority 0, 7 s old: 0.000194... rounds to 0.0002');
    PERFORM test.eq(scale(r.computed_priority), 4, 'computed_priority has 4 decimals');

    PERFORM test.eq(test.discovered(10), ARRAY[d, q, t], 'order 2.5, 0.0002, -4.9');
END
$$;

-- The candidate query is served by the partial index tasks_discovery_idx. The query is the
-- one statement of the function's body (from pg_proc: RETURN QUERY ...;), prepared with
-- p_limit as a parameter and explained under the function's own settings, as it runs: a
-- generic plan (plan_cache_mode = force_generic_plan) without seq scans (0019). The tables
-- are filled so that a plan reading them whole would look cheap to the planner: the plan
-- must still be index probes only.
CREATE FUNCTION test.discovery_plan() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    body text;
    plan text;
BEGIN
    ANALYZE tasker.tasks;
    ANALYZE tasker.workflow_steps;
    ANALYZE tasker.workflow_step_edges;
    SELECT (regexp_match(prosrc, 'RETURN QUERY(.*);\s*END', 's'))[1] INTO STRICT body FROM pg_proc
    WHERE oid = 'tasker.get_next_ready_tasks(integer)'::regprocedure;
    IF body IS NULL OR body !~ '\mp_limit\M' THEN
        RAISE EXCEPTION 'get_next_ready_tasks is no longer one RETURN QUERY using p_limit: update this test';
    END IF;
    EXECUTE 'PREPARE discovery_q(integer) AS ' || regexp_replace(body, '\mp_limit\M', '$1', 'g');
    -- the function's own settings (SET clauses), for this transaction only
    PERFORM set_config(split_part(c, '=', 1), split_part(c, '=', 2), true)
    FROM pg_proc, unnest(proconfig) c
    WHERE oid = 'tasker.get_next_ready_tasks(integer)'::regprocedure;
    IF current_setting('plan_cache_mode') <> 'force_generic_plan' THEN
        RAISE EXCEPTION 'get_next_ready_tasks no longer forces generic plans: update this test';
    END IF;
    EXECUTE 'EXPLAIN (FORMAT JSON) EXECUTE discovery_q(5)' INTO plan;
    DEALLOCATE discovery_q;
    RETURN plan;
END
$$;

-- Mostly finished tasks (which the partial index leaves out) and a few candidates: the index
-- finds the candidates (a bitmap scan and a sort of the few rows is fine).
DO $$
DECLARE
    nt uuid := test.named_task();
    plan text;
    i integer;
BEGIN
    DELETE FROM tasks;
    INSERT INTO tasks (named_task_uuid, state, identity_hash, correlation_id, completed_at)
    SELECT nt, 'complete', 'done-' || g, gen_random_uuid(), now()
    FROM generate_series(1, 20000) g;
    FOR i IN 1..20 LOOP
        PERFORM test.make_shape('linear', i % 3, now() - make_interval(mins => i));
    END LOOP;
    plan := test.discovery_plan();
    IF plan NOT LIKE '%"Index Name": "tasks_discovery_idx"%' THEN
        RAISE EXCEPTION 'discovery among few candidates does not use tasks_discovery_idx: %', plan;
    END IF;
    IF plan LIKE '%hashed SubPlan%' OR plan LIKE '%"Node Type": "Hash%'
       OR plan LIKE '%"Node Type": "Seq Scan"%' THEN
        RAISE EXCEPTION 'discovery reads whole tables instead of probing by key: %', plan;
    END IF;
    PERFORM test.eq(array_length(test.discovered(5), 1), 5, 'discovery returns 5 of 20 candidates');
END
$$;

-- Many candidates: an index scan in discovery order, so the LIMIT stops after a few rows
-- instead of sorting every candidate.
DO $$
DECLARE
    nt uuid := test.named_task();
    plan text;
    top uuid;
BEGIN
    DELETE FROM tasks;
    INSERT INTO tasks (named_task_uuid, state, identity_hash, correlation_id, priority, created_at)
    SELECT nt, 'pending', 'p-' || g, gen_random_uuid(), g % 5, now() - make_interval(secs => g)
    FROM generate_series(1, 20000) g;
    INSERT INTO tasks (named_task_uuid, state, identity_hash, correlation_id, completed_at)
    SELECT nt, 'complete', 'done-' || g, gen_random_uuid(), now()
    FROM generate_series(1, 20000) g;
    plan := test.discovery_plan();
    IF plan !~ '"Node Type": "Index Scan",[^{}]*"Index Name": "tasks_discovery_idx"' THEN
        RAISE EXCEPTION 'discovery among many candidates does not scan tasks_discovery_idx in order: %', plan;
    END IF;
    IF plan LIKE '%hashed SubPlan%' OR plan LIKE '%"Node Type": "Hash%'
       OR plan LIKE '%"Node Type": "Seq Scan"%' THEN
        RAISE EXCEPTION 'discovery reads whole tables instead of probing by key: %', plan;
    END IF;
    -- highest priority 4 (g = 4, 9, ...), oldest first: g = 19999 (created 19999 s ago)
    SELECT task_uuid INTO STRICT top FROM tasks WHERE identity_hash = 'p-19999';
    PERFORM test.eq((test.discovered(1))[1], top, 'top of 20000 pending tasks');
END
$$;

-- The discovery key is inlined into the queries that use it (0036): a plan shows its
-- expression, not a call. Its value is the epoch-based one, whatever the session's time zone.
DO $$
DECLARE
    plan text;
    tz text;
    at timestamptz;
BEGIN
    EXPLAIN (VERBOSE, COSTS OFF, FORMAT JSON) INTO plan
        SELECT tasker.task_priority_key(priority, created_at) FROM tasks;
    IF plan LIKE '%task_priority_key%' THEN
        RAISE EXCEPTION 'task_priority_key is called, not inlined: %', plan;
    END IF;
    FOREACH tz IN ARRAY ARRAY['UTC', 'America/New_York', 'Asia/Kolkata', 'Pacific/Chatham'] LOOP
        PERFORM set_config('timezone', tz, true);
        FOREACH at IN ARRAY ARRAY['2026-03-08 06:59:59.999999+00', '2026-11-01 05:30:00+00',
                                  '1999-12-31 23:59:59.5+00', now()]::timestamptz[] LOOP
            PERFORM test.eq(tasker.task_priority_key(3, at),
                            3 - extract(epoch FROM at)::double precision / 36000.0,
                            format('key of %s in %s', at, tz));
        END LOOP;
    END LOOP;
END
$$;
