-- readiness.sql - get_step_readiness_status and get_step_readiness_status_batch on the linear,
-- diamond and tree shapes: which steps are ready as parents complete, the parent counts, the
-- filtered form (Tasker bug 2), the batch form's rows and order, and the states that are
-- never ready.
\ir lib/fixtures.sql

-- Linear a > b > c > d: exactly one step ready at a time, in order.
DO $$
DECLARE
    t uuid := test.make_shape('linear');
    r record;
    n integer;
BEGIN
    SELECT count(*) INTO n FROM get_step_readiness_status(t);
    PERFORM test.eq(n, 4, 'linear: one row per step');
    PERFORM test.eq(test.ready_names(t), 'a', 'linear: initially only the root is ready');

    SELECT * INTO STRICT r FROM get_step_readiness_status(t) WHERE name = 'a';
    PERFORM test.eq(r.workflow_step_uuid, test.step(t, 'a'), 'linear: a uuid');
    PERFORM test.eq(r.task_uuid, t, 'linear: a task_uuid');
    PERFORM test.eq(r.named_step_uuid,
                    (SELECT named_step_uuid FROM named_steps WHERE name = 'a'), 'linear: a named step');
    PERFORM test.eq(r.current_state, 'pending', 'linear: a state');
    PERFORM test.eq(r.total_parents, 0, 'linear: a total_parents');
    PERFORM test.eq(r.completed_parents, 0, 'linear: a completed_parents');
    PERFORM test.eq(r.dependencies_satisfied, true, 'linear: a dependencies_satisfied');
    PERFORM test.eq(r.retry_eligible, true, 'linear: a retry_eligible');
    PERFORM test.eq(r.attempts, 0, 'linear: a attempts');
    PERFORM test.eq(r.max_attempts, 3, 'linear: a max_attempts');
    PERFORM test.eq(r.next_retry_at, NULL::timestamptz, 'linear: a next_retry_at');

    SELECT * INTO STRICT r FROM get_step_readiness_status(t) WHERE name = 'b';
    PERFORM test.eq(r.total_parents, 1, 'linear: b total_parents');
    PERFORM test.eq(r.completed_parents, 0, 'linear: b completed_parents');
    PERFORM test.eq(r.dependencies_satisfied, false, 'linear: b dependencies_satisfied');
    PERFORM test.eq(r.ready_for_execution, false, 'linear: b not ready');

    PERFORM test.set_step_state(t, 'a', 'enqueued');
    PERFORM test.eq(test.ready_names(t), '', 'linear: a enqueued, nothing ready');
    PERFORM test.set_step_state(t, 'a', 'in_progress');
    PERFORM test.eq(test.ready_names(t), '', 'linear: a in_progress, nothing ready');
    PERFORM test.set_step_state(t, 'a', 'enqueued_for_orchestration');
    PERFORM test.eq(test.ready_names(t), '', 'linear: a awaiting orchestration, b not ready');

    PERFORM test.set_step_state(t, 'a', 'complete');
    PERFORM test.eq(test.ready_names(t), 'b', 'linear: a complete -> b ready');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t) WHERE name = 'b';
    PERFORM test.eq(r.completed_parents, 1, 'linear: b completed_parents after a');
    PERFORM test.eq(r.dependencies_satisfied, true, 'linear: b dependencies_satisfied after a');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t) WHERE name = 'c';
    PERFORM test.eq(r.completed_parents, 0, 'linear: c has no complete parent yet');

    PERFORM test.set_step_state(t, 'b', 'complete');
    PERFORM test.eq(test.ready_names(t), 'c', 'linear: b complete -> c ready');
    PERFORM test.set_step_state(t, 'c', 'resolved_manually');
    PERFORM test.eq(test.ready_names(t), 'd', 'linear: c resolved_manually -> d ready');
    PERFORM test.set_step_state(t, 'd', 'complete');
    PERFORM test.eq(test.ready_names(t), '', 'linear: all complete, nothing ready');
END
$$;

-- Diamond start > {b, c} > end: end waits for both b and c, and only complete or
-- resolved_manually satisfies it.
DO $$
DECLARE
    t uuid := test.make_shape('diamond');
    e uuid;
    r record;
    s text;
BEGIN
    e := test.step(t, 'end');
    PERFORM test.eq(test.ready_names(t), 'start', 'diamond: initially only start');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t) WHERE name = 'end';
    PERFORM test.eq(r.total_parents, 2, 'diamond: end total_parents');
    PERFORM test.eq(r.completed_parents, 0, 'diamond: end completed_parents initially');

    PERFORM test.set_step_state(t, 'start', 'complete');
    PERFORM test.eq(test.ready_names(t), 'b,c', 'diamond: start complete -> b and c');

    PERFORM test.set_step_state(t, 'b', 'complete');
    PERFORM test.eq(test.ready_names(t), 'c', 'diamond: b complete, c pending -> only c');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t) WHERE name = 'end';
    PERFORM test.eq(r.completed_parents, 1, 'diamond: end completed_parents with b only');
    PERFORM test.eq(r.dependencies_satisfied, false, 'diamond: end not satisfied with b only');

    -- Filtered to end alone, the call still sees both parents (Tasker bug 2).
    SELECT * INTO STRICT r FROM get_step_readiness_status(t, ARRAY[e]);
    PERFORM test.eq(r.workflow_step_uuid, e, 'diamond filtered: the row is end');
    PERFORM test.eq(r.total_parents, 2, 'diamond filtered: end total_parents');
    PERFORM test.eq(r.completed_parents, 1, 'diamond filtered: end completed_parents');

    -- c in a state that does not satisfy its children.
    FOREACH s IN ARRAY ARRAY['cancelled', 'error', 'waiting_for_retry', 'in_progress',
                             'enqueued_for_orchestration', 'enqueued_as_error_for_orchestration'] LOOP
        PERFORM test.set_step_state(t, 'c', s);
        SELECT * INTO STRICT r FROM get_step_readiness_status(t) WHERE name = 'end';
        PERFORM test.eq(r.completed_parents, 1, 'diamond: c ' || s || ' is not a completed parent');
        PERFORM test.eq(r.ready_for_execution, false, 'diamond: c ' || s || ' -> end not ready');
    END LOOP;

    PERFORM test.set_step_state(t, 'c', 'resolved_manually');
    PERFORM test.eq(test.ready_names(t), 'end', 'diamond: c resolved_manually -> end ready');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t, ARRAY[e]);
    PERFORM test.eq(r.completed_parents, 2, 'diamond filtered: end completed_parents, both done');
    PERFORM test.eq(r.dependencies_satisfied, true, 'diamond filtered: end dependencies_satisfied');
    PERFORM test.eq(r.ready_for_execution, true, 'diamond filtered: end ready');

    PERFORM test.set_step_state(t, 'c', 'complete');
    PERFORM test.eq(test.ready_names(t), 'end', 'diamond: b and c complete -> end ready');
END
$$;

-- Diamond with the other parent finishing first, and the filter on a step whose parent
-- is outside the filter.
DO $$
DECLARE
    t uuid := test.make_task('{start:complete,b,c:complete,end}', '{start>b,start>c,b>end,c>end}');
    r record;
    n integer;
BEGIN
    PERFORM test.eq(test.ready_names(t), 'b', 'diamond 2: only b');
    SELECT count(*) INTO n FROM get_step_readiness_status(t, ARRAY[test.step(t, 'b')]);
    PERFORM test.eq(n, 1, 'diamond 2: filtered call returns one row');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t, ARRAY[test.step(t, 'b')]);
    PERFORM test.eq(r.completed_parents, 1, 'diamond 2: b sees start complete through the filter');
    PERFORM test.eq(r.ready_for_execution, true, 'diamond 2: b ready through the filter');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t, ARRAY[test.step(t, 'end')]);
    PERFORM test.eq(r.completed_parents, 1, 'diamond 2: end sees c complete, b not');
    PERFORM test.set_step_state(t, 'b', 'complete');
    PERFORM test.eq(test.ready_names(t), 'end', 'diamond 2: end ready');
END
$$;

-- Tree root > {L, R}; L > {d, e}; R > {f, g}; {d, e, f, g} > final.
DO $$
DECLARE
    t uuid := test.make_shape('tree');
    r record;
BEGIN
    PERFORM test.eq(test.ready_names(t), 'root', 'tree: initially only root');
    PERFORM test.set_step_state(t, 'root', 'complete');
    PERFORM test.eq(test.ready_names(t), 'L,R', 'tree: root complete -> L, R');
    PERFORM test.set_step_state(t, 'L', 'complete');
    PERFORM test.eq(test.ready_names(t), 'R,d,e', 'tree: L complete -> R, d, e');
    PERFORM test.set_step_state(t, 'R', 'in_progress');
    PERFORM test.eq(test.ready_names(t), 'd,e', 'tree: R running -> d, e');
    PERFORM test.set_step_state(t, 'R', 'complete');
    PERFORM test.set_step_state(t, 'd', 'complete');
    PERFORM test.set_step_state(t, 'e', 'complete');
    PERFORM test.set_step_state(t, 'f', 'complete');
    PERFORM test.eq(test.ready_names(t), 'g', 'tree: only g left');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t) WHERE name = 'final';
    PERFORM test.eq(r.total_parents, 4, 'tree: final total_parents');
    PERFORM test.eq(r.completed_parents, 3, 'tree: final completed_parents before g');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t, ARRAY[test.step(t, 'final')]);
    PERFORM test.eq(r.total_parents, 4, 'tree filtered: final total_parents');
    PERFORM test.eq(r.completed_parents, 3, 'tree filtered: final completed_parents before g');
    PERFORM test.set_step_state(t, 'g', 'error');
    PERFORM test.eq(test.ready_names(t), '', 'tree: g error -> final not ready, nothing ready');
    PERFORM test.set_step_state(t, 'g', 'complete');
    PERFORM test.eq(test.ready_names(t), 'final', 'tree: all leaves complete -> final');
    SELECT * INTO STRICT r FROM get_step_readiness_status(t, ARRAY[test.step(t, 'final')]);
    PERFORM test.eq(r.completed_parents, 4, 'tree filtered: final completed_parents');
    PERFORM test.eq(r.ready_for_execution, true, 'tree filtered: final ready');
END
$$;

-- Only pending and waiting_for_retry steps are ever ready (a root step, retry budget left,
-- no backoff recorded).
DO $$
DECLARE
    t uuid := test.make_task('{solo}');
    s text;
    r record;
BEGIN
    FOR s IN SELECT name FROM step_states ORDER BY name LOOP
        PERFORM test.set_step_state(t, 'solo', s);
        SELECT * INTO STRICT r FROM get_step_readiness_status(t);
        PERFORM test.eq(r.current_state, s, 'state column for ' || s);
        PERFORM test.eq(r.dependencies_satisfied, true, 'root dependencies for ' || s);
        PERFORM test.eq(r.ready_for_execution, s IN ('pending', 'waiting_for_retry'),
                        'ready_for_execution in state ' || s);
    END LOOP;
END
$$;

-- Children of a complete parent are not ready while enqueued, in progress or complete.
DO $$
DECLARE
    t uuid := test.make_task('{p:complete,x:enqueued,y:in_progress,z:complete,w}',
                             '{p>x,p>y,p>z,p>w}');
BEGIN
    PERFORM test.eq(test.ready_names(t), 'w', 'children: only the pending one is ready');
    PERFORM test.eq((SELECT count(*)::integer FROM get_step_readiness_status(t)
                     WHERE dependencies_satisfied AND name <> 'p'), 4,
                    'children: all four have their dependency satisfied');
END
$$;

-- Batch over several tasks: every step of every task, ordered by (task_uuid, step uuid), and
-- the same values as the one-task form. The tasks are created in the reverse of their uuid
-- order and passed unsorted, so an unsorted result would show.
DO $$
DECLARE
    t1 uuid := test.make_shape('tree', p_task_uuid => 'ffffffff-0000-7000-8000-000000000001');
    t2 uuid := test.make_shape('linear', p_task_uuid => '80000000-0000-7000-8000-000000000002');
    t3 uuid := test.make_shape('diamond', p_task_uuid => '00000000-0000-7000-8000-000000000003');
    other uuid := test.make_shape('linear');
    n integer;
    bad integer;
    names text;
    r record;
BEGIN
    PERFORM test.set_step_state(t3, 'start', 'complete');
    PERFORM test.set_step_state(t2, 'a', 'complete');
    SELECT count(*) INTO n FROM get_step_readiness_status_batch(ARRAY[t2, t1, t3]);
    PERFORM test.eq(n, 16, 'batch: 8 + 4 + 4 rows');
    SELECT count(*) INTO n FROM get_step_readiness_status_batch(ARRAY[t2, t1, t3])
    WHERE task_uuid = other;
    PERFORM test.eq(n, 0, 'batch: no rows of a task not asked for');
    SELECT count(DISTINCT task_uuid) INTO n FROM get_step_readiness_status_batch(ARRAY[t2, t1, t3]);
    PERFORM test.eq(n, 3, 'batch: rows for all three tasks');

    -- order: position in the result = rank by (task_uuid, workflow_step_uuid)
    SELECT count(*) INTO bad FROM (
        SELECT ord, row_number() OVER (ORDER BY b.task_uuid, b.workflow_step_uuid) AS rn
        FROM get_step_readiness_status_batch(ARRAY[t2, t1, t3])
             WITH ORDINALITY AS b(workflow_step_uuid, task_uuid, named_step_uuid, name,
                                  current_state, dependencies_satisfied, retry_eligible,
                                  ready_for_execution, last_failure_at, next_retry_at,
                                  total_parents, completed_parents, attempts, max_attempts,
                                  backoff_request_seconds, last_attempted_at, ord)) x
    WHERE ord <> rn;
    PERFORM test.eq(bad, 0, 'batch: rows ordered by (task_uuid, workflow_step_uuid)');
    SELECT count(*) INTO bad FROM (
        SELECT ord, row_number() OVER (ORDER BY s.workflow_step_uuid) AS rn
        FROM get_step_readiness_status(t1)
             WITH ORDINALITY AS s(workflow_step_uuid, task_uuid, named_step_uuid, name,
                                  current_state, dependencies_satisfied, retry_eligible,
                                  ready_for_execution, last_failure_at, next_retry_at,
                                  total_parents, completed_parents, attempts, max_attempts,
                                  backoff_request_seconds, last_attempted_at, ord)) x
    WHERE ord <> rn;
    PERFORM test.eq(bad, 0, 'single: rows ordered by workflow_step_uuid');

    -- same values as the single-task form
    SELECT count(*) INTO bad FROM (
        (SELECT * FROM get_step_readiness_status_batch(ARRAY[t1, t2, t3])
         EXCEPT ALL
         (SELECT * FROM get_step_readiness_status(t1) UNION ALL
          SELECT * FROM get_step_readiness_status(t2) UNION ALL
          SELECT * FROM get_step_readiness_status(t3)))) x;
    PERFORM test.eq(bad, 0, 'batch: same rows as the single-task calls');

    SELECT string_agg(name, ',' ORDER BY task_uuid, name COLLATE "C") INTO STRICT names
    FROM get_step_readiness_status_batch(ARRAY[t1, t2, t3]) WHERE ready_for_execution;
    PERFORM test.eq(names, 'b,c,b,root', 'batch: ready steps of diamond, linear, tree');

    -- batch with a step filter across tasks: each filtered step still sees all its parents
    SELECT count(*) INTO n
    FROM get_step_readiness_status_batch(ARRAY[t1, t3], ARRAY[test.step(t3, 'b'), test.step(t1, 'final')]);
    PERFORM test.eq(n, 2, 'batch filtered: two rows');
    SELECT * INTO STRICT r
    FROM get_step_readiness_status_batch(ARRAY[t1, t3], ARRAY[test.step(t3, 'b'), test.step(t1, 'final')])
    WHERE task_uuid = t3;
    PERFORM test.eq((r.name, r.total_parents, r.completed_parents, r.ready_for_execution)::text,
                    '(b,1,1,t)', 'batch filtered: diamond b');
    SELECT * INTO STRICT r
    FROM get_step_readiness_status_batch(ARRAY[t1, t3], ARRAY[test.step(t3, 'b'), test.step(t1, 'final')])
    WHERE task_uuid = t1;
    PERFORM test.eq((r.name, r.total_parents, r.completed_parents, r.ready_for_execution)::text,
                    '(final,4,0,f)', 'batch filtered: tree final');
    -- a step uuid of a task that is not asked for gives no row
    SELECT count(*) INTO n FROM get_step_readiness_status_batch(ARRAY[t1], ARRAY[test.step(t3, 'b')]);
    PERFORM test.eq(n, 0, 'batch filtered: step of another task');
END
$$;
