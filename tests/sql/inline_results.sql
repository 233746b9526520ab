-- inline_results.sql - complete_step's 8-argument form (0007_inline_results.sql): a worker
-- stores AND applies its result in one transaction, then may claim a step that just became
-- ready (continuation). No orchestrator runs in this file: every move comes from workers.

CREATE FUNCTION pg_temp.policy() RETURNS tasker.backoff_policy
LANGUAGE sql AS $$ SELECT ROW(0, 2.0, 60.0, 0.0)::tasker.backoff_policy $$;

CREATE FUNCTION pg_temp.step(p_name text, p_deps text[] DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('name', p_name, 'dependencies', to_jsonb(p_deps),
                              'handler', jsonb_build_object('callable', 'test.' || p_name),
                              'retry', jsonb_build_object('retryable', true, 'max_attempts', 2))
$$;

CREATE FUNCTION pg_temp.create(p_ns text, p_name text) RETURNS uuid
LANGUAGE sql AS $$
    SELECT (tasker.create_task(jsonb_build_object('namespace', p_ns, 'name', p_name,
                                                  'version', '1.0.0', 'context', jsonb_build_object('r', random()),
                                                  'initiator', 'test', 'source_system', 'sql',
                                                  'reason', 'testing'))->>'task_uuid')::uuid
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

-- complete_step as a worker of namespace p_ns calls it (handlers: any, unless given).
CREATE FUNCTION pg_temp.complete(p_ns text, p_step uuid, p_result jsonb, p_next integer,
                                 p_worker text DEFAULT 'w1', p_handlers text[] DEFAULT NULL)
RETURNS SETOF record LANGUAGE sql AS $$
    SELECT c.accepted, c.step_state::text, c.task_state::text, c.step_uuid, c.step_name,
           c.attempts, c.dependency_results
    FROM tasker.complete_step(p_step, p_worker, p_result, pg_temp.policy(),
                              ARRAY['worker_' || p_ns || '_queue'], p_handlers, p_next, 30) c
$$;

CREATE FUNCTION pg_temp.step_state(p_task uuid, p_name text) RETURNS text
LANGUAGE sql AS $$
    SELECT ws.state::text FROM tasker.workflow_steps ws
    JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid
    WHERE ws.task_uuid = p_task AND n.name = p_name
$$;

DO $$
BEGIN
    PERFORM tasker.register_template(jsonb_build_object('name', 'chain', 'namespace_name', 'il',
        'version', '1.0.0', 'steps', jsonb_build_array(pg_temp.step('a'), pg_temp.step('b', '{a}'),
        pg_temp.step('c', '{b}'))));
    PERFORM tasker.register_template(jsonb_build_object('name', 'fan', 'namespace_name', 'il',
        'version', '1.0.0', 'steps', jsonb_build_array(pg_temp.step('root'),
        pg_temp.step('left', '{root}'), pg_temp.step('right', '{root}'))));
END $$;

-- A chain runs to the end on one worker: each result is applied at once and the next step
-- comes back claimed in the same call; no message ever goes through orchestration.
DO $$
DECLARE
    t uuid := pg_temp.create('il', 'chain');
    step uuid;
    r record;
    seen text[] := '{}';
    rows integer;
BEGIN
    SELECT s.step_uuid INTO step FROM tasker.claim_steps('{worker_il_queue}', NULL, 10, 'w1', 30) s;
    ASSERT step IS NOT NULL;
    WHILE step IS NOT NULL LOOP
        rows := 0;
        FOR r IN SELECT * FROM pg_temp.complete('il', step, pg_temp.ok(step), 1)
                 AS (accepted boolean, step_state text, task_state text, step_uuid uuid,
                     step_name text, attempts integer, deps jsonb) LOOP
            rows := rows + 1;
            IF rows = 1 THEN
                ASSERT r.accepted AND r.step_uuid IS NULL, 'the verdict comes first';
                ASSERT r.step_state = 'complete', r.step_state;
                step := NULL;
            ELSE
                ASSERT r.attempts = 1 AND r.deps ? 'a', r::text;
                seen := seen || r.step_name;
                step := r.step_uuid;
            END IF;
        END LOOP;
    END LOOP;
    ASSERT seen = '{b,c}', seen::text;
    ASSERT r.task_state = 'complete', r::text;
    ASSERT (SELECT state FROM tasker.tasks WHERE task_uuid = t) = 'complete';
    ASSERT (SELECT count(*) FROM tasker_mq.messages) = 0, 'no message left behind';
    ASSERT (SELECT count(*) FILTER (WHERE tr.metadata->>'worker_id' = 'w1') FROM tasker.workflow_step_transitions tr
            JOIN tasker.workflow_steps ws USING (workflow_step_uuid)
            WHERE ws.task_uuid = t AND tr.to_state = 'in_progress') = 3, 'one worker ran all three';
    -- the history still shows every hop, including the hand-over to orchestration
    ASSERT (SELECT string_agg(tr.to_state, ',' ORDER BY tr.created_at)
            FROM tasker.workflow_step_transitions tr JOIN tasker.workflow_steps ws USING (workflow_step_uuid)
            JOIN tasker.named_steps n USING (named_step_uuid)
            WHERE ws.task_uuid = t AND n.name = 'b')
           = 'pending,enqueued,in_progress,enqueued_for_orchestration,complete',
        (SELECT string_agg(tr.to_state, ',' ORDER BY tr.created_at)
         FROM tasker.workflow_step_transitions tr JOIN tasker.workflow_steps ws USING (workflow_step_uuid)
         JOIN tasker.named_steps n USING (named_step_uuid) WHERE ws.task_uuid = t AND n.name = 'b');
END $$;

-- Fan-out: one child is continued, the other stays queued for anyone; with p_next = 2 both
-- are continued and nothing is queued; p_next = 0 and a handler list without the child claim
-- nothing.
DO $$
DECLARE
    t uuid;
    root uuid;
    n integer;
BEGIN
    t := pg_temp.create('il', 'fan');
    SELECT s.step_uuid INTO root FROM tasker.claim_steps('{worker_il_queue}', NULL, 10, 'w1', 30) s;
    SELECT count(*) - 1 INTO n FROM pg_temp.complete('il', root, pg_temp.ok(root), 1)
        AS (accepted boolean, step_state text, task_state text, step_uuid uuid, step_name text,
            attempts integer, deps jsonb);
    ASSERT n = 1, n;
    ASSERT (SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = t AND state = 'in_progress') = 1;
    ASSERT (SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = t AND state = 'enqueued') = 1;
    ASSERT (SELECT count(*) FROM tasker_mq.messages WHERE queue_name = 'worker_il_queue') = 1;
    DELETE FROM tasker_mq.messages;

    t := pg_temp.create('il', 'fan');
    SELECT s.step_uuid INTO root FROM tasker.claim_steps('{worker_il_queue}', NULL, 10, 'w1', 30) s;
    SELECT count(*) - 1 INTO n FROM pg_temp.complete('il', root, pg_temp.ok(root), 2)
        AS (accepted boolean, step_state text, task_state text, step_uuid uuid, step_name text,
            attempts integer, deps jsonb);
    ASSERT n = 2, n;
    ASSERT (SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = t AND state = 'in_progress'
            AND lease_owner = 'w1') = 2;
    ASSERT (SELECT count(*) FROM tasker_mq.messages WHERE queue_name = 'worker_il_queue') = 0;

    t := pg_temp.create('il', 'fan');
    SELECT s.step_uuid INTO root FROM tasker.claim_steps('{worker_il_queue}', NULL, 10, 'w1', 30) s;
    SELECT count(*) - 1 INTO n FROM pg_temp.complete('il', root, pg_temp.ok(root), 0)
        AS (accepted boolean, step_state text, task_state text, step_uuid uuid, step_name text,
            attempts integer, deps jsonb);
    ASSERT n = 0, 'p_next = 0 claims nothing';
    ASSERT (SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = t AND state = 'enqueued') = 2;
    DELETE FROM tasker_mq.messages;

    t := pg_temp.create('il', 'fan');
    SELECT s.step_uuid INTO root FROM tasker.claim_steps('{worker_il_queue}', NULL, 10, 'w1', 30) s;
    SELECT count(*) - 1 INTO n FROM pg_temp.complete('il', root, pg_temp.ok(root), 2, 'w1', '{test.root}')
        AS (accepted boolean, step_state text, task_state text, step_uuid uuid, step_name text,
            attempts integer, deps jsonb);
    ASSERT n = 0, 'a worker is never handed a step it has no handler for';
    ASSERT (SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = t AND state = 'enqueued') = 2;
    DELETE FROM tasker_mq.messages;
END $$;

-- 0038: a report that starts a continuation leaves evaluate_task out only when nothing else
-- can have changed. Here another root of the task is in error (forced, as no engine path
-- leaves one while the task runs its steps): the continuation still starts, and the task is
-- evaluated and found blocked by the failure.
DO $$
DECLARE
    t uuid;
    a uuid;
    r record;
BEGIN
    PERFORM tasker.register_template(jsonb_build_object('name', 'pair', 'namespace_name', 'il',
        'version', '1.0.0', 'steps', jsonb_build_array(pg_temp.step('a'), pg_temp.step('x'),
        pg_temp.step('b', '{a}'))));
    t := pg_temp.create('il', 'pair');
    PERFORM tasker.claim_steps('{worker_il_queue}', NULL, 10, 'w1', 30);
    a := (SELECT ws.workflow_step_uuid FROM tasker.workflow_steps ws
          JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid
          WHERE ws.task_uuid = t AND n.name = 'a');
    PERFORM set_config('tasker.recorded_path', 'on', true);
    UPDATE tasker.workflow_steps ws SET state = 'error'
    FROM tasker.named_steps n
    WHERE n.named_step_uuid = ws.named_step_uuid AND ws.task_uuid = t AND n.name = 'x';
    PERFORM set_config('tasker.recorded_path', 'off', true);
    SELECT * INTO r FROM pg_temp.complete('il', a, pg_temp.ok(a), 1)
        AS (accepted boolean, step_state text, task_state text, step_uuid uuid, step_name text,
            attempts integer, deps jsonb)
    WHERE step_uuid IS NULL;
    ASSERT r.task_state = 'blocked_by_failures', r.task_state;
    ASSERT pg_temp.step_state(t, 'b') = 'in_progress', pg_temp.step_state(t, 'b');
    DELETE FROM tasker_mq.messages;
END $$;

-- A failure is applied at once (retry scheduled, no continuation); a result from a worker
-- that lost the lease is refused and changes nothing.
DO $$
DECLARE
    t uuid := pg_temp.create('il', 'chain');
    a uuid;
    r record;
    n integer := 0;
BEGIN
    SELECT s.step_uuid INTO a FROM tasker.claim_steps('{worker_il_queue}', NULL, 10, 'w1', 30) s;
    FOR r IN SELECT * FROM pg_temp.complete('il', a, pg_temp.ok(a), 1, 'intruder')
             AS (accepted boolean, step_state text, task_state text, step_uuid uuid,
                 step_name text, attempts integer, deps jsonb) LOOP
        ASSERT NOT r.accepted AND r.step_state IS NULL;
        n := n + 1;
    END LOOP;
    ASSERT n = 1;
    ASSERT pg_temp.step_state(t, 'a') = 'in_progress';

    n := 0;
    FOR r IN SELECT * FROM pg_temp.complete('il', a, pg_temp.failed(a), 1)
             AS (accepted boolean, step_state text, task_state text, step_uuid uuid,
                 step_name text, attempts integer, deps jsonb) LOOP
        ASSERT r.accepted AND r.step_state = 'waiting_for_retry', r::text;
        n := n + 1;
    END LOOP;
    ASSERT n = 1, 'no continuation after a failure';
    ASSERT (SELECT count(*) FROM tasker_mq.messages WHERE queue_name = 'worker_il_queue') = 1,
        'the retry is queued (backoff 0 here)';
    ASSERT pg_temp.step_state(t, 'b') = 'pending';
END $$;

-- 0008: several hops in one UPDATE keep every hop in the history, in order, and leave the
-- guard armed: after a continuation in this same transaction, a forbidden direct UPDATE is
-- still refused.
DO $$
DECLARE
    t uuid;
    a uuid;
    b uuid;
BEGIN
    DELETE FROM tasker_mq.messages; -- earlier blocks' leftovers: claim this task's step
    t := pg_temp.create('il', 'chain');
    ASSERT (SELECT string_agg(coalesce(tr.from_state, '') || '>' || tr.to_state || ':' || tr.event, ','
                              ORDER BY tr.created_at)
            FROM tasker.task_transitions tr WHERE tr.task_uuid = t)
           = '>pending:create,pending>initializing:start,initializing>enqueuing_steps:ready_steps_found,'
             'enqueuing_steps>steps_in_process:steps_enqueued',
        (SELECT string_agg(coalesce(tr.from_state, '') || '>' || tr.to_state || ':' || tr.event, ','
                           ORDER BY tr.created_at)
         FROM tasker.task_transitions tr WHERE tr.task_uuid = t);
    SELECT s.step_uuid INTO a FROM tasker.claim_steps('{worker_il_queue}', NULL, 10, 'w1', 30) s;
    SELECT c.step_uuid INTO b FROM pg_temp.complete('il', a, pg_temp.ok(a), 1)
        AS c(accepted boolean, step_state text, task_state text, step_uuid uuid, step_name text,
             attempts integer, deps jsonb)
    WHERE c.step_uuid IS NOT NULL;
    ASSERT b IS NOT NULL, 'b was continued';
    ASSERT (SELECT string_agg(tr.to_state || ':' || tr.event, ',' ORDER BY tr.created_at)
            FROM tasker.workflow_step_transitions tr WHERE tr.workflow_step_uuid = b)
           = 'pending:create,enqueued:enqueue,in_progress:start',
        (SELECT string_agg(tr.to_state || ':' || tr.event, ',' ORDER BY tr.created_at)
         FROM tasker.workflow_step_transitions tr WHERE tr.workflow_step_uuid = b);
    ASSERT (SELECT string_agg(tr.to_state || ':' || tr.event, ',' ORDER BY tr.created_at)
            FROM tasker.workflow_step_transitions tr WHERE tr.workflow_step_uuid = a)
           = 'pending:create,enqueued:enqueue,in_progress:start,'
             'enqueued_for_orchestration:enqueue_for_orchestration,complete:complete',
        (SELECT string_agg(tr.to_state || ':' || tr.event, ',' ORDER BY tr.created_at)
         FROM tasker.workflow_step_transitions tr WHERE tr.workflow_step_uuid = a);
    ASSERT current_setting('tasker.recorded_path', true) = 'off';
    BEGIN
        UPDATE tasker.workflow_steps ws SET state = 'in_progress'
        FROM tasker.named_steps n
        WHERE ws.task_uuid = t AND n.named_step_uuid = ws.named_step_uuid AND n.name = 'c';
        RAISE EXCEPTION 'pending -> in_progress was accepted';
    EXCEPTION WHEN SQLSTATE 'TK002' THEN
        NULL;
    END;
END $$;

SELECT 'inline_results: ok';
