-- orchestration.sql - the hot-path functions of 0005_orchestration.sql, driven the way the
-- server and workers drive them: register, create, claim, complete, process results, sweep,
-- cancel, manual step actions. Workers and orchestrators are simulated by plain calls.

-- A fixed policy without jitter, and no backoff unless a test asks for one.
CREATE FUNCTION pg_temp.policy(p_base double precision DEFAULT 0) RETURNS tasker.backoff_policy
LANGUAGE sql AS $$ SELECT ROW(p_base, 2.0, 60.0, 0.0)::tasker.backoff_policy $$;

CREATE FUNCTION pg_temp.template(p_ns text, p_name text, p_steps jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('name', p_name, 'namespace_name', p_ns, 'version', '1.0.0',
                              'description', 'test', 'steps', p_steps)
$$;

CREATE FUNCTION pg_temp.step(p_name text, p_deps text[] DEFAULT '{}', p_max integer DEFAULT 3,
                             p_retryable boolean DEFAULT true) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('name', p_name, 'dependencies', to_jsonb(p_deps),
                              'handler', jsonb_build_object('callable', 'test.' || p_name,
                                                            'initialization', jsonb_build_object('n', 1)),
                              'retry', jsonb_build_object('retryable', p_retryable, 'max_attempts', p_max))
$$;

CREATE FUNCTION pg_temp.create(p_ns text, p_name text, p_context jsonb DEFAULT '{}',
                               p_extra jsonb DEFAULT '{}') RETURNS uuid
LANGUAGE sql AS $$
    SELECT (tasker.create_task(jsonb_build_object('namespace', p_ns, 'name', p_name,
                                                  'version', '1.0.0', 'context', p_context,
                                                  'initiator', 'test', 'source_system', 'sql',
                                                  'reason', 'testing') || p_extra)->>'task_uuid')::uuid
$$;

-- A worker: claim what is queued for p_ns and complete it. p_fail: the steps whose handler
-- fails (with p_error as the error object). Returns the number of steps run.
CREATE FUNCTION pg_temp.work(p_ns text, p_fail text[] DEFAULT '{}',
                             p_error jsonb DEFAULT '{"message": "boom", "retryable": true}',
                             p_worker text DEFAULT 'w1') RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT * FROM tasker.claim_steps(ARRAY['worker_' || p_ns || '_queue'], NULL, 100, p_worker, 30) LOOP
        IF r.step_name = ANY (p_fail) THEN
            ASSERT tasker.complete_step(r.step_uuid, p_worker, jsonb_build_object(
                'step_uuid', r.step_uuid, 'success', false, 'status', 'failed',
                'result', '{}'::jsonb, 'error', p_error));
        ELSE
            ASSERT tasker.complete_step(r.step_uuid, p_worker, jsonb_build_object(
                'step_uuid', r.step_uuid, 'success', true, 'status', 'completed',
                'result', jsonb_build_object('step', r.step_name, 'seen', r.dependency_results,
                                             'parents', r.parents, 'attempt', r.attempts)));
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

CREATE FUNCTION pg_temp.orchestrate(p_base double precision DEFAULT 0) RETURNS integer
LANGUAGE sql AS $$ SELECT count(*)::integer FROM tasker.process_step_results(100, pg_temp.policy(p_base)) $$;

CREATE FUNCTION pg_temp.state(p_task uuid) RETURNS text
LANGUAGE sql AS $$ SELECT state::text FROM tasker.tasks WHERE task_uuid = p_task $$;

CREATE FUNCTION pg_temp.step_state(p_task uuid, p_name text) RETURNS text
LANGUAGE sql AS $$
    SELECT ws.state::text FROM tasker.workflow_steps ws
    JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid
    WHERE ws.task_uuid = p_task AND n.name = p_name
$$;

CREATE FUNCTION pg_temp.step_uuid(p_task uuid, p_name text) RETURNS uuid
LANGUAGE sql AS $$
    SELECT ws.workflow_step_uuid FROM tasker.workflow_steps ws
    JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid
    WHERE ws.task_uuid = p_task AND n.name = p_name
$$;

DO $$
BEGIN
    PERFORM tasker.register_template(pg_temp.template('lin', 'linear', jsonb_build_array(
        pg_temp.step('s1'), pg_temp.step('s2', '{s1}'), pg_temp.step('s3', '{s2}'),
        pg_temp.step('s4', '{s3}'))));
    PERFORM tasker.register_template(pg_temp.template('dia', 'diamond', jsonb_build_array(
        pg_temp.step('start'), pg_temp.step('b', '{start}'), pg_temp.step('c', '{start}'),
        pg_temp.step('end', '{b,c}'))));
    PERFORM tasker.register_template(pg_temp.template('rt', 'retry', jsonb_build_array(
        pg_temp.step('flaky', '{}', 3), pg_temp.step('after', '{flaky}'))));
    PERFORM tasker.register_template(pg_temp.template('nr', 'non_retryable', jsonb_build_array(
        pg_temp.step('once', '{}', 3, false))));
END $$;

-- Registration: namespace, named task, step names and the worker queue; idempotent.
DO $$
DECLARE
    v1 uuid := tasker.register_template(pg_temp.template('lin', 'linear', jsonb_build_array(
        pg_temp.step('s1'), pg_temp.step('s2', '{s1}'), pg_temp.step('s3', '{s2}'),
        pg_temp.step('s4', '{s3}'))));
BEGIN
    ASSERT (SELECT count(*) FROM tasker.named_tasks WHERE name = 'linear') = 1;
    ASSERT (SELECT named_task_uuid FROM tasker.named_tasks WHERE name = 'linear') = v1;
    ASSERT EXISTS (SELECT 1 FROM tasker_mq.queues WHERE queue_name = 'worker_lin_queue');
    ASSERT (SELECT count(*) FROM tasker.named_steps WHERE name IN ('s1', 's2', 's3', 's4')) = 4;
END $$;

-- Linear: create queues only s1; each worker/orchestrator round moves one step; the task
-- completes after 4 rounds with a compact history, and each step saw its ancestors' results.
DO $$
DECLARE
    t uuid := pg_temp.create('lin', 'linear', '{"even_number": 6}');
    rounds integer := 0;
    r jsonb;
BEGIN
    ASSERT pg_temp.state(t) = 'steps_in_process', pg_temp.state(t);
    ASSERT pg_temp.step_state(t, 's1') = 'enqueued';
    ASSERT pg_temp.step_state(t, 's2') = 'pending';
    ASSERT (SELECT count(*) FROM tasker_mq.messages WHERE queue_name = 'worker_lin_queue') = 1;
    ASSERT (SELECT message->>'handler' FROM tasker_mq.messages WHERE queue_name = 'worker_lin_queue') = 'test.s1';
    WHILE pg_temp.state(t) = 'steps_in_process' AND rounds < 10 LOOP
        ASSERT pg_temp.work('lin') = 1, 'one step runs per round';
        ASSERT pg_temp.orchestrate() = 1;
        rounds := rounds + 1;
    END LOOP;
    ASSERT rounds = 4, rounds;
    ASSERT pg_temp.state(t) = 'complete';
    ASSERT (SELECT completed_at IS NOT NULL FROM tasker.tasks WHERE task_uuid = t);
    ASSERT (SELECT string_agg(event, ',' ORDER BY created_at) FROM tasker.task_transitions
            WHERE task_uuid = t) = 'create,start,ready_steps_found,steps_enqueued,step_completed,all_steps_successful',
        (SELECT string_agg(event, ',' ORDER BY created_at) FROM tasker.task_transitions WHERE task_uuid = t);
    r := (SELECT results->'result' FROM tasker.workflow_steps WHERE workflow_step_uuid = pg_temp.step_uuid(t, 's4'));
    ASSERT r->'parents' = '["s3"]', r::text;
    ASSERT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(r->'seen') k) = '{s1,s2,s3}', r::text;
    ASSERT r->'seen'->'s1'->>'step' = 's1';
    ASSERT (SELECT count(*) FROM tasker_mq.messages) = 0, 'every message consumed';
    ASSERT (SELECT bool_and(attempts = 1 AND processed_at IS NOT NULL) FROM tasker.workflow_steps WHERE task_uuid = t);
    r := tasker.task_response(t);
    ASSERT r->>'status' = 'complete' AND r->>'execution_status' = 'all_complete', r::text;
    ASSERT (r->>'completion_percentage')::float = 100 AND jsonb_array_length(r->'steps') = 4;
    ASSERT r->>'namespace' = 'lin' AND r->>'name' = 'linear' AND r->'context'->>'even_number' = '6';
END $$;

-- Identity: the same context again is a duplicate (23505); another context is not; an
-- idempotency key decides alone. Unknown template: P0002.
DO $$
DECLARE
    state text;
BEGIN
    BEGIN
        PERFORM pg_temp.create('lin', 'linear', '{"even_number": 6}');
        RAISE EXCEPTION 'duplicate accepted';
    EXCEPTION WHEN unique_violation THEN NULL;
    END;
    PERFORM pg_temp.create('lin', 'linear', '{"even_number": 8}');
    PERFORM pg_temp.create('lin', 'linear', '{"even_number": 6}', '{"idempotency_key": "k1"}');
    BEGIN
        PERFORM pg_temp.create('lin', 'linear', '{"even_number": 10}', '{"idempotency_key": "k1"}');
        RAISE EXCEPTION 'duplicate key accepted';
    EXCEPTION WHEN unique_violation THEN NULL;
    END;
    BEGIN
        PERFORM pg_temp.create('lin', 'nope');
        RAISE EXCEPTION 'unknown template accepted';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
        ASSERT state = 'P0002', state;
    END;
    PERFORM tasker_mq.purge_queue('worker_lin_queue');
    DELETE FROM tasker.tasks;
END $$;

-- Diamond: end waits for both b and c.
DO $$
DECLARE
    t uuid := pg_temp.create('dia', 'diamond');
BEGIN
    PERFORM pg_temp.work('dia');
    PERFORM pg_temp.orchestrate();
    ASSERT pg_temp.step_state(t, 'b') = 'enqueued' AND pg_temp.step_state(t, 'c') = 'enqueued';
    -- run only b
    PERFORM tasker.complete_step(c.step_uuid, 'w1', '{"success": true, "result": {}}')
    FROM tasker.claim_steps(ARRAY['worker_dia_queue'], ARRAY['test.b'], 10, 'w1', 30) c;
    PERFORM pg_temp.orchestrate();
    ASSERT pg_temp.step_state(t, 'b') = 'complete' AND pg_temp.step_state(t, 'c') = 'enqueued';
    ASSERT pg_temp.step_state(t, 'end') = 'pending';
    ASSERT pg_temp.state(t) = 'steps_in_process';
    PERFORM pg_temp.work('dia');  -- c
    PERFORM pg_temp.orchestrate();
    ASSERT pg_temp.step_state(t, 'end') = 'enqueued';
    PERFORM pg_temp.work('dia');
    PERFORM pg_temp.orchestrate();
    ASSERT pg_temp.state(t) = 'complete';
END $$;

-- Retries: a retryable failure waits (no backoff here), is retried with attempts + 1, and the
-- third failure of max_attempts 3 ends the step in error, the task in error, and a DLQ entry.
DO $$
DECLARE
    t uuid := pg_temp.create('rt', 'retry', '{"case": "exhaust"}');
BEGIN
    PERFORM pg_temp.work('rt', '{flaky}');
    PERFORM pg_temp.orchestrate();
    -- the result is applied, then the scheduled evaluation re-queues it
    ASSERT pg_temp.step_state(t, 'flaky') IN ('waiting_for_retry', 'enqueued'), pg_temp.step_state(t, 'flaky');
    PERFORM pg_temp.orchestrate();
    ASSERT pg_temp.step_state(t, 'flaky') = 'enqueued', pg_temp.step_state(t, 'flaky');
    ASSERT pg_temp.state(t) = 'steps_in_process', pg_temp.state(t);
    PERFORM pg_temp.work('rt', '{flaky}');
    PERFORM pg_temp.orchestrate();
    PERFORM pg_temp.orchestrate();
    ASSERT (SELECT attempts FROM tasker.workflow_steps WHERE workflow_step_uuid = pg_temp.step_uuid(t, 'flaky')) = 2;
    PERFORM pg_temp.work('rt', '{flaky}');
    PERFORM pg_temp.orchestrate();
    ASSERT pg_temp.step_state(t, 'flaky') = 'error', pg_temp.step_state(t, 'flaky');
    ASSERT (SELECT attempts FROM tasker.workflow_steps WHERE workflow_step_uuid = pg_temp.step_uuid(t, 'flaky')) = 3;
    ASSERT pg_temp.state(t) = 'error', pg_temp.state(t);
    ASSERT pg_temp.step_state(t, 'after') = 'pending';
    ASSERT (SELECT dlq_reason::text FROM tasker.tasks_dlq WHERE task_uuid = t) = 'max_retries_exceeded';
    ASSERT (SELECT jsonb_array_length(task_snapshot->'steps') FROM tasker.tasks_dlq WHERE task_uuid = t) = 2;
    PERFORM pg_temp.orchestrate();
    ASSERT (SELECT count(*) FROM tasker_mq.messages) = 0;
END $$;

-- A retryable failure that then succeeds: the task completes.
DO $$
DECLARE
    t uuid := pg_temp.create('rt', 'retry', '{"case": "recover"}');
BEGIN
    PERFORM pg_temp.work('rt', '{flaky}');
    PERFORM pg_temp.orchestrate();
    PERFORM pg_temp.orchestrate();
    PERFORM pg_temp.work('rt');
    PERFORM pg_temp.orchestrate();
    PERFORM pg_temp.work('rt');
    PERFORM pg_temp.orchestrate();
    ASSERT pg_temp.state(t) = 'complete', pg_temp.state(t);
    ASSERT (SELECT (results->'result'->>'attempt')::int FROM tasker.workflow_steps
            WHERE workflow_step_uuid = pg_temp.step_uuid(t, 'flaky')) = 2;
END $$;

-- Backoff: the handler's retry_after wins (capped at max), base * multiplier^(attempts-1)
-- otherwise; the step is not ready before the delay ends, and its retry message waits too.
DO $$
DECLARE
    t uuid := pg_temp.create('rt', 'retry', '{"case": "backoff"}');
    u uuid;
BEGIN
    PERFORM pg_temp.work('rt', '{flaky}', '{"message": "slow down", "retryable": true}');
    PERFORM pg_temp.orchestrate(7);
    ASSERT (SELECT backoff_request_seconds FROM tasker.workflow_steps WHERE workflow_step_uuid = pg_temp.step_uuid(t, 'flaky')) = 7;
    ASSERT pg_temp.step_state(t, 'flaky') = 'waiting_for_retry';
    ASSERT NOT (SELECT ready_for_execution FROM tasker.step_readiness WHERE workflow_step_uuid = pg_temp.step_uuid(t, 'flaky'));
    ASSERT pg_temp.state(t) = 'waiting_for_retry', pg_temp.state(t);
    ASSERT pg_temp.orchestrate(7) = 0, 'the retry message is not visible yet';
    ASSERT (SELECT count(*) FROM tasker_mq.messages WHERE message->>'kind' = 'evaluate') = 1;
    -- retry_after 1000 s is capped at 60
    u := pg_temp.create('rt', 'retry', '{"case": "retry_after"}');
    PERFORM tasker.complete_step(c.step_uuid, 'w1', '{"success": false, "error": {"message": "429", "retryable": true, "retry_after_seconds": 1000}}')
    FROM tasker.claim_steps(ARRAY['worker_rt_queue'], NULL, 10, 'w1', 30) c;
    ASSERT pg_temp.step_state(u, 'flaky') = 'enqueued_as_error_for_orchestration';
END $$;
DO $$
BEGIN
    PERFORM pg_temp.orchestrate(7);
    ASSERT (SELECT max(backoff_request_seconds) FROM tasker.workflow_steps ws
            JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
            WHERE t.context->>'case' = 'retry_after') = 60;
    DELETE FROM tasker_mq.messages;
    DELETE FROM tasker.tasks WHERE context->>'case' IN ('backoff', 'retry_after');
END $$;

-- Permanent failures: error.retryable false, and a step declared retryable: false that gets a
-- retryable error (Tasker bug 5), both end in error at once.
DO $$
DECLARE
    t uuid := pg_temp.create('rt', 'retry', '{"case": "permanent"}');
    u uuid := pg_temp.create('nr', 'non_retryable');
BEGIN
    PERFORM pg_temp.work('rt', '{flaky}', '{"message": "bad input", "retryable": false, "error_type": "PermanentError"}');
    PERFORM pg_temp.work('nr', '{once}');
    PERFORM pg_temp.orchestrate();
    ASSERT pg_temp.step_state(t, 'flaky') = 'error' AND pg_temp.state(t) = 'error';
    ASSERT pg_temp.step_state(u, 'once') = 'error' AND pg_temp.state(u) = 'error';
    ASSERT (SELECT attempts FROM tasker.workflow_steps WHERE workflow_step_uuid = pg_temp.step_uuid(u, 'once')) = 1;
END $$;

-- Leases: only the holder may complete; an expired lease sends the step back to its queue
-- (attempts stay counted); once attempts are used up it fails with worker_lost.
DO $$
DECLARE
    t uuid := pg_temp.create('lin', 'linear', '{"case": "lease"}');
    s uuid := pg_temp.step_uuid(t, 's1');
    r jsonb;
BEGIN
    PERFORM 1 FROM tasker.claim_steps(ARRAY['worker_lin_queue'], NULL, 10, 'dead', 30);
    ASSERT (SELECT lease_owner FROM tasker.workflow_steps WHERE workflow_step_uuid = s) = 'dead';
    ASSERT NOT tasker.complete_step(s, 'someone_else', '{"success": true}');
    ASSERT (SELECT count(*) FROM tasker.extend_step_leases('dead', ARRAY[s], 60)) = 1;
    ASSERT (SELECT count(*) FROM tasker.extend_step_leases('other', ARRAY[s], 60)) = 0;
    r := tasker.sweep(pg_temp.policy(), 3600);
    ASSERT (r->>'leases')::int = 0, r::text;
    UPDATE tasker.workflow_steps SET lease_expires_at = now() - interval '1 second' WHERE workflow_step_uuid = s;
    r := tasker.sweep(pg_temp.policy(), 3600);
    ASSERT (r->>'leases')::int = 1, r::text;
    ASSERT pg_temp.step_state(t, 's1') = 'enqueued';
    ASSERT (SELECT lease_owner IS NULL FROM tasker.workflow_steps WHERE workflow_step_uuid = s);
    ASSERT NOT tasker.complete_step(s, 'dead', '{"success": true}'), 'the dead worker lost its lease';
    PERFORM 1 FROM tasker.claim_steps(ARRAY['worker_lin_queue'], NULL, 10, 'w2', 30);
    ASSERT (SELECT attempts FROM tasker.workflow_steps WHERE workflow_step_uuid = s) = 2;
    -- third attempt expires too: max_attempts 3 is used up
    UPDATE tasker.workflow_steps SET lease_expires_at = now() - interval '1 second' WHERE workflow_step_uuid = s;
    PERFORM tasker.sweep(pg_temp.policy(), 3600);
    PERFORM 1 FROM tasker.claim_steps(ARRAY['worker_lin_queue'], NULL, 10, 'w3', 30);
    UPDATE tasker.workflow_steps SET lease_expires_at = now() - interval '1 second' WHERE workflow_step_uuid = s;
    PERFORM tasker.sweep(pg_temp.policy(), 3600);
    ASSERT pg_temp.step_state(t, 's1') = 'error', pg_temp.step_state(t, 's1');
    ASSERT (SELECT results->'error'->>'error_type' FROM tasker.workflow_steps WHERE workflow_step_uuid = s) = 'worker_lost';
    ASSERT pg_temp.state(t) = 'error';
END $$;

-- Manual actions: reset_for_retry brings a failed task back (error -> evaluating_results ->
-- ... steps_in_process) with a fresh attempt budget; resolve_manually lets children run.
DO $$
DECLARE
    t uuid := (SELECT task_uuid FROM tasker.tasks WHERE context->>'case' = 'lease');
    s uuid := pg_temp.step_uuid(t, 's1');
    r jsonb;
    state text;
BEGIN
    r := tasker.step_manual_action(t, s, 'reset_for_retry', 'ops', 'fixed the worker');
    ASSERT r->>'current_state' = 'enqueued', r::text;
    ASSERT (r->>'attempts')::int = 0;
    ASSERT pg_temp.state(t) = 'steps_in_process', pg_temp.state(t);
    ASSERT (SELECT string_agg(event, ',' ORDER BY created_at) FROM tasker.task_transitions
            WHERE task_uuid = t AND created_at > now() - interval '1 hour') LIKE '%reset%';
    BEGIN
        PERFORM tasker.step_manual_action(t, s, 'reset_for_retry', 'ops', 'again');
        RAISE EXCEPTION 'reset of an enqueued step accepted';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE;
        ASSERT state = 'TK002', state;
    END;
    r := tasker.step_manual_action(t, s, 'resolve_manually', 'ops', 'done by hand');
    ASSERT r->>'current_state' = 'resolved_manually';
    ASSERT pg_temp.step_state(t, 's2') = 'enqueued', 'a resolved parent lets its child run';
    r := tasker.step_manual_action(t, pg_temp.step_uuid(t, 's3'), 'complete_manually', 'ops', 'skip', '{"result": {"value": 1}}');
    ASSERT r->>'current_state' = 'complete' AND r->'results'->'metadata'->>'manually_completed' = 'true', r::text;
    ASSERT r->'results'->'result'->>'value' = '1';
    BEGIN
        PERFORM tasker.step_manual_action(t, s, 'explode', 'ops', 'x');
        RAISE EXCEPTION 'unknown action accepted';
    EXCEPTION WHEN invalid_parameter_value THEN NULL;
    END;
END $$;

-- Cancel: the task and its unfinished steps are cancelled and their messages dropped; a
-- worker's late result is refused; cancelling again is an error.
DO $$
DECLARE
    t uuid := pg_temp.create('dia', 'diamond', '{"case": "cancel"}');
    r jsonb;
BEGIN
    PERFORM pg_temp.work('dia');
    PERFORM pg_temp.orchestrate();
    PERFORM 1 FROM tasker.claim_steps(ARRAY['worker_dia_queue'], ARRAY['test.b'], 10, 'w1', 30);
    r := tasker.cancel_task(t);
    ASSERT r->>'status' = 'cancelled';
    ASSERT pg_temp.step_state(t, 'start') = 'complete';
    ASSERT pg_temp.step_state(t, 'b') = 'cancelled' AND pg_temp.step_state(t, 'c') = 'cancelled';
    ASSERT pg_temp.step_state(t, 'end') = 'cancelled';
    ASSERT (SELECT count(*) FROM tasker_mq.messages WHERE message->>'task_uuid' = t::text) = 0;
    ASSERT NOT tasker.complete_step(pg_temp.step_uuid(t, 'b'), 'w1', '{"success": true}');
    BEGIN
        PERFORM tasker.cancel_task(t);
        RAISE EXCEPTION 'second cancel accepted';
    EXCEPTION WHEN invalid_parameter_value THEN NULL;
    END;
END $$;

-- Sweeper: a task stuck mid-flight (orchestrator crash) is evaluated again; a lost message is
-- sent again; a claim filtered by handler takes nothing it cannot run.
DO $$
DECLARE
    t uuid := pg_temp.create('lin', 'linear', '{"case": "stuck"}');
    r jsonb;
BEGIN
    ASSERT (SELECT count(*) FROM tasker.claim_steps(ARRAY['worker_lin_queue'], ARRAY['other.handler'], 10, 'w', 30)) = 0;
    DELETE FROM tasker_mq.messages WHERE message->>'task_uuid' = t::text;
    UPDATE tasker.workflow_steps SET state_entered_at = now() - interval '10 minutes' WHERE task_uuid = t;
    r := tasker.sweep(pg_temp.policy(), 60);
    ASSERT (r->>'resent')::int = 1, r::text;
    ASSERT (SELECT count(*) FROM tasker_mq.messages WHERE message->>'task_uuid' = t::text) = 1;

    -- stuck in initializing with nothing queued: put it there by hand, as a crash would leave
    -- it (a task with a step still queued is not stuck: tests/sql/sweep.sql)
    DELETE FROM tasker_mq.messages WHERE message->>'task_uuid' = t::text;
    ALTER TABLE tasker.workflow_steps DISABLE TRIGGER workflow_steps_guard_state;
    UPDATE tasker.workflow_steps SET state = 'pending' WHERE task_uuid = t;
    ALTER TABLE tasker.workflow_steps ENABLE TRIGGER workflow_steps_guard_state;
    ALTER TABLE tasker.tasks DISABLE TRIGGER tasks_guard_state;
    UPDATE tasker.tasks SET state = 'initializing', state_entered_at = now() - interval '10 minutes' WHERE task_uuid = t;
    ALTER TABLE tasker.tasks ENABLE TRIGGER tasks_guard_state;
    r := tasker.sweep(pg_temp.policy(), 60);
    ASSERT (r->>'stuck')::int = 1, r::text;
    ASSERT pg_temp.state(t) = 'steps_in_process', pg_temp.state(t);
    ASSERT pg_temp.step_state(t, 's1') = 'enqueued', pg_temp.step_state(t, 's1');
END $$;

-- Listing: newest first, filters, Tasker's pagination object.
DO $$
DECLARE
    r jsonb := tasker.list_tasks(NULL, NULL, NULL, NULL, 1, 2);
    total integer := (SELECT count(*) FROM tasker.tasks);
BEGIN
    ASSERT jsonb_array_length(r->'tasks') = 2;
    ASSERT (r->'pagination'->>'total_count')::int = total;
    ASSERT (r->'pagination'->>'has_next')::boolean = (total > 2);
    ASSERT NOT (r->'pagination'->>'has_previous')::boolean;
    ASSERT r->'tasks'->0->'steps' IS NULL;
    r := tasker.list_tasks('dia', 'cancelled', NULL, NULL, 1, 25);
    ASSERT jsonb_array_length(r->'tasks') = 1 AND r->'tasks'->0->>'status' = 'cancelled', r::text;
END $$;
