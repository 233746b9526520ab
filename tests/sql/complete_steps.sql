-- complete_steps.sql - several results of one task in one call (0034_report_siblings_together):
-- the verdicts come back in the order of the steps given, a join made ready by two results of
-- the batch starts once for the caller, failures and lost leases are judged one by one, and a
-- batch spanning two tasks is refused.
\ir lib/fixtures.sql

CREATE FUNCTION pg_temp.policy() RETURNS tasker.backoff_policy
LANGUAGE sql AS $$ SELECT ROW(0, 2.0, 60.0, 0.0)::tasker.backoff_policy $$;

CREATE FUNCTION pg_temp.step(p_name text, p_deps text[] DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('name', p_name, 'dependencies', to_jsonb(p_deps),
                              'handler', jsonb_build_object('callable', 'test.' || p_name),
                              'retry', jsonb_build_object('retryable', true, 'max_attempts', 2))
$$;

CREATE FUNCTION pg_temp.create(p_name text) RETURNS uuid
LANGUAGE sql AS $$
    SELECT (tasker.create_task(jsonb_build_object('namespace', 'cs', 'name', p_name,
                                                  'version', '1.0.0',
                                                  'context', jsonb_build_object('r', random())))
            ->>'task_uuid')::uuid
$$;

CREATE FUNCTION pg_temp.ok(p_step uuid) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('step_uuid', p_step, 'success', true, 'status', 'completed',
                              'result', jsonb_build_object('done', true))
$$;

CREATE FUNCTION pg_temp.failed(p_step uuid) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('step_uuid', p_step, 'success', false, 'status', 'failed',
                              'result', '{}'::jsonb,
                              'error', jsonb_build_object('message', 'boom', 'retryable', true))
$$;

-- complete_steps as worker p_worker of namespace cs calls it for task p_task's steps p_names,
-- with p_results (a success for each when NULL); one text line per row:
-- 'accepted/step_state/task_state' for a verdict, 'next:<step name>(<its dependencies>)' for
-- a step started.
CREATE FUNCTION pg_temp.report(p_task uuid, p_names text[], p_next integer,
                               p_results jsonb DEFAULT NULL, p_worker text DEFAULT 'w1')
RETURNS text LANGUAGE sql AS $$
    WITH steps AS (SELECT array_agg(test.step(p_task, n) ORDER BY i) AS uuids
                   FROM unnest(p_names) WITH ORDINALITY u(n, i))
    SELECT string_agg(CASE WHEN c.step_uuid IS NULL
                           THEN c.accepted || '/' || coalesce(c.step_state, '-') || '/'
                                || coalesce(c.task_state, '-')
                           ELSE 'next:' || c.step_name || '(' ||
                                (SELECT string_agg(k, ',' ORDER BY k)
                                 FROM jsonb_object_keys(c.dependency_results) k) || ')' END, ' ')
    FROM steps, tasker.complete_steps(steps.uuids, p_worker,
                                      coalesce(p_results, (SELECT jsonb_agg(pg_temp.ok(u))
                                                           FROM unnest(steps.uuids) u)),
                                      pg_temp.policy(), '{worker_cs_queue}', NULL, p_next, 30) c
$$;

-- A task of template join3 whose start step is complete, nothing else started or queued.
CREATE FUNCTION pg_temp.join3() RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    t uuid := pg_temp.create('join3');
BEGIN
    PERFORM tasker_mq.purge_queue('worker_cs_queue');
    PERFORM test.set_step_state(t, 'start', 'complete');
    RETURN t;
END
$$;

-- Start some of a task's steps for p_worker, as its claim (p_from enqueued) or a continuation
-- (pending) would.
CREATE FUNCTION pg_temp.start(p_task uuid, p_names text[], p_worker text DEFAULT 'w1',
                              p_from text DEFAULT 'pending')
RETURNS void LANGUAGE sql AS $$
    SELECT tasker.start_steps(array_agg(test.step(p_task, n)), p_from, p_worker, 30)
    FROM unnest(p_names) n
$$;


DO $$
BEGIN
    PERFORM tasker.register_template(jsonb_build_object('name', 'join3', 'namespace_name', 'cs',
        'version', '1.0.0', 'steps', jsonb_build_array(pg_temp.step('start'),
        pg_temp.step('b', '{start}'), pg_temp.step('c', '{start}'), pg_temp.step('d', '{start}'),
        pg_temp.step('join', '{b,c,d}'))));
    PERFORM tasker.register_template(jsonb_build_object('name', 'forks', 'namespace_name', 'cs',
        'version', '1.0.0', 'steps', jsonb_build_array(pg_temp.step('a'), pg_temp.step('b'),
        pg_temp.step('x', '{a}'), pg_temp.step('y', '{b}'))));
    PERFORM tasker.register_template(jsonb_build_object('name', 'pair', 'namespace_name', 'cs',
        'version', '1.0.0', 'steps', jsonb_build_array(pg_temp.step('x'), pg_temp.step('y'))));
END $$;

-- Three parents finish together: the verdicts in the order given, the join started once, as
-- the caller's continuation, with the three results as its dependencies.
DO $$
DECLARE
    t uuid := pg_temp.join3();
    r text;
BEGIN
    PERFORM pg_temp.start(t, '{b,c,d}');
    r := pg_temp.report(t, '{d,b,c}', 2);
    PERFORM test.eq(r, 'true/complete/steps_in_process true/complete/steps_in_process '
                       'true/complete/steps_in_process next:join(b,c,d)', 'three parents, one join');
    PERFORM test.eq((SELECT ws.state || '/' || ws.lease_owner || '/' || ws.attempts
                     FROM tasker.workflow_steps ws
                     WHERE ws.workflow_step_uuid = test.step(t, 'join')),
                    'in_progress/w1/1', 'the join runs once, for the caller');
    PERFORM test.eq((SELECT count(*) FROM tasker_mq.messages)::integer, 0,
                    'nothing queued: the join was the continuation');
    PERFORM test.eq((SELECT string_agg(tr.to_state, ',' ORDER BY tr.created_at)
                     FROM tasker.workflow_step_transitions tr
                     WHERE tr.workflow_step_uuid = test.step(t, 'b')),
                    'pending,enqueued,in_progress,enqueued_for_orchestration,complete',
                    'every hop of a stored result is in the history');

    r := pg_temp.report(t, '{join}', 1);
    PERFORM test.eq(r, 'true/complete/complete', 'the last result completes the task');
END $$;

-- Without room for a continuation (p_next 0) the join is queued for any worker instead.
DO $$
DECLARE
    t uuid := pg_temp.join3();
    r text;
BEGIN
    PERFORM pg_temp.start(t, '{b,c,d}');
    r := pg_temp.report(t, '{b,c,d}', 0);
    PERFORM test.eq(r, 'true/complete/steps_in_process true/complete/steps_in_process '
                       'true/complete/steps_in_process', 'no continuation asked for');
    PERFORM test.eq((SELECT ws.state FROM tasker.workflow_steps ws
                     WHERE ws.workflow_step_uuid = test.step(t, 'join')),
                    'enqueued', 'the join is queued');
    PERFORM test.eq((SELECT count(*) FROM tasker_mq.messages
                     WHERE message->>'step_uuid' = test.step(t, 'join')::text)::integer, 1,
                    'with its message');
END $$;

-- Two results each making a child ready, room for one: the first child (in uuid order) is
-- the continuation, the other goes to the queue.
DO $$
DECLARE
    t uuid := pg_temp.create('forks');
    r text;
BEGIN
    PERFORM tasker_mq.purge_queue('worker_cs_queue');
    PERFORM pg_temp.start(t, '{a,b}', p_from => 'enqueued');
    r := pg_temp.report(t, '{b,a}', 1);
    PERFORM test.eq(r, 'true/complete/steps_in_process true/complete/steps_in_process next:x(a)',
                    'one continuation');
    PERFORM test.eq((SELECT ws.state FROM tasker.workflow_steps ws
                     WHERE ws.workflow_step_uuid = test.step(t, 'y')),
                    'enqueued', 'the other child is queued');
    PERFORM test.eq((SELECT count(*) FROM tasker_mq.messages
                     WHERE message->>'step_uuid' = test.step(t, 'y')::text)::integer, 1,
                    'with its message');
END $$;

-- 0039: a continuation leaves the task's evaluation out only when nothing else can have
-- changed. Here another root is in error (forced: no engine path leaves one while the task
-- runs its steps): the continuation starts and the task is evaluated, blocked by the failure.
DO $$
DECLARE
    t uuid := pg_temp.create('forks');
    r text;
BEGIN
    PERFORM tasker_mq.purge_queue('worker_cs_queue');
    PERFORM pg_temp.start(t, '{a}', p_from => 'enqueued');
    PERFORM test.set_step_state(t, 'b', 'error');
    r := pg_temp.report(t, '{a}', 1);
    PERFORM test.eq(r, 'true/complete/blocked_by_failures next:x(a)',
                    'continued, and evaluated');
END $$;

-- Each result is judged on its own: a lost lease drops only that result, a failure goes to its
-- retry (scheduled), and the join waits for both.
DO $$
DECLARE
    t uuid := pg_temp.join3();
    r text;
BEGIN
    PERFORM pg_temp.start(t, '{b,c}');
    PERFORM pg_temp.start(t, '{d}', 'w2'); -- another worker's step
    r := pg_temp.report(t, '{b,c,d}', 2,
                        jsonb_build_array(pg_temp.ok(test.step(t, 'b')),
                                          pg_temp.failed(test.step(t, 'c')),
                                          pg_temp.ok(test.step(t, 'd'))));
    PERFORM test.eq(r, 'true/complete/steps_in_process true/waiting_for_retry/steps_in_process '
                       'false/-/steps_in_process', 'one verdict per result');
    PERFORM test.eq((SELECT string_agg(n.name || ':' || ws.state, ',' ORDER BY n.name)
                     FROM tasker.workflow_steps ws JOIN tasker.named_steps n USING (named_step_uuid)
                     WHERE ws.task_uuid = t),
                    'b:complete,c:enqueued,d:in_progress,join:pending,start:complete',
                    'c queued again (no backoff in this policy), d still w2''s, the join waits');
    PERFORM test.eq((SELECT count(*) FROM tasker_mq.messages
                     WHERE queue_name = 'orchestration_step_results'
                       AND message->>'step_uuid' = test.step(t, 'c')::text)::integer, 1,
                    'the retry is scheduled');
END $$;

-- The steps of two tasks in one call are refused, and so is a result count that does not
-- match; nothing is stored.
DO $$
DECLARE
    t1 uuid := pg_temp.create('pair');
    t2 uuid := pg_temp.create('pair');
BEGIN
    PERFORM pg_temp.start(t1, '{x}', p_from => 'enqueued'); -- roots: queued by create_task
    PERFORM pg_temp.start(t2, '{x}', p_from => 'enqueued');
    PERFORM test.expect_error(format('SELECT * FROM tasker.complete_steps(%L, ''w1'', %L, '
                                     'NULL, ''{worker_cs_queue}'', NULL, 1, 30)',
                                     ARRAY[test.step(t1, 'x'), test.step(t2, 'x')],
                                     jsonb_build_array(pg_temp.ok(test.step(t1, 'x')),
                                                       pg_temp.ok(test.step(t2, 'x')))),
                              'P0001', 'two tasks');
    PERFORM test.expect_error(format('SELECT pg_temp.report(%L, ''{x}'', 1, ''[]'')', t1),
                              'P0001', 'a result missing');
    PERFORM test.eq((SELECT count(*) FROM tasker.workflow_steps
                     WHERE task_uuid IN (t1, t2) AND state = 'in_progress')::integer, 2,
                    'both still running');
END $$;

\echo complete_steps: ok

-- 0042: store_step_result stores failures only (complete_steps stores successes itself).
DO $$
DECLARE
    t uuid := pg_temp.create('pair');
BEGIN
    PERFORM pg_temp.start(t, '{x}', p_from => 'enqueued');
    PERFORM test.expect_error(format('SELECT tasker.store_step_result(%L, ''w1'', %L, NULL)',
                                     test.step(t, 'x'), pg_temp.ok(test.step(t, 'x'))),
                              'P0001', 'stores failures');
    PERFORM test.eq(tasker.store_step_result(test.step(t, 'x'), 'w1',
                                             pg_temp.failed(test.step(t, 'x')), pg_temp.policy()),
                    'waiting_for_retry', 'a failure goes to its retry');
END $$;
