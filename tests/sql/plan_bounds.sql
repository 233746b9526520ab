-- plan_bounds.sql - a task's whole life on the hot path reads about as many buffers with
-- thousands of other tasks in the tables as with none, even when every statement was planned
-- against near-empty tables and the planner was steered away from nested loops.
--
-- Workers and servers keep one generic plan per statement and session (0008). A plan made
-- while a table was small may read the whole table (a hash or merge join over a full index
-- scan, which enable_seqscan = off allows), and keeps doing so as the table grows: 0014 to
-- 0016 fixed such plans, one of which had slowed workers by 1-2 ms per step. Here the plans
-- are made by a first task on near-empty tables with nested loops disabled; then a task's
-- buffers are measured beside 500 other tasks and again beside 3,000. Index probes cost
-- about the same at both sizes (the indexes are as deep); a scan of a grown table would cost
-- six times as much. Measured: 1170 buffers alone, 1659 beside 500, 1692 beside 3,000
-- (without the failed attempt: 847, 1128, 1208; and with the functions as they were before
-- 0014: 802, 3654, 15845).

-- every plan of this session is made under these settings, from near-empty tables
SET enable_nestloop = off;
SET plan_cache_mode = force_generic_plan;
\ir lib/fixtures.sql

CREATE FUNCTION pg_temp.request(p_ns text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('namespace', p_ns, 'name', 'diamond', 'version', '1.0.0',
                              'context', jsonb_build_object('r', random()), 'initiator', 'test')
$$;

-- One diamond task of namespace pb through the worker's path: created as the server creates
-- it (uuid given), its root claimed from the queue, failed once and retried, every step
-- completed with continuation (the children come back claimed) and followed up as a report
-- that found its task busy would be, then read as a wait_ms response. Returns the final state.
CREATE FUNCTION pg_temp.lifecycle() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    t uuid := gen_random_uuid();
    todo uuid[];
    step uuid;
    r record;
    state text;
BEGIN
    PERFORM tasker.create_task(pg_temp.request('pb'), false, t);
    SELECT array_agg(s.step_uuid) INTO todo
    FROM tasker.claim_steps('{worker_pb_queue}', NULL, 10, 'w1', 30) s;
    -- the root fails once, retryably: a heartbeat, the failure, the orchestrator's pass, the
    -- root claimed again (no backoff in this policy)
    step := todo[1];
    PERFORM tasker.extend_step_leases('w1', todo, 30);
    PERFORM * FROM tasker.complete_step(
        step, 'w1', jsonb_build_object('step_uuid', step, 'success', false, 'status', 'failed',
                                       'result', '{}'::jsonb,
                                       'error', jsonb_build_object('message', 'x', 'retryable', true)),
        ROW(0, 2.0, 60.0, 0.0)::tasker.backoff_policy, '{worker_pb_queue}', NULL, 4, 30);
    PERFORM * FROM tasker.process_step_results(10, ROW(0, 2.0, 60.0, 0.0)::tasker.backoff_policy);
    SELECT array_agg(s.step_uuid) INTO todo
    FROM tasker.claim_steps('{worker_pb_queue}', NULL, 10, 'w1', 30) s;
    ASSERT todo = ARRAY[step], 'the root is claimed again';
    WHILE cardinality(todo) > 0 LOOP
        step := todo[1];
        todo := todo[2:];
        FOR r IN SELECT * FROM tasker.complete_step(
                     step, 'w1', jsonb_build_object('step_uuid', step, 'success', true,
                                                    'status', 'completed', 'result', '{}'::jsonb),
                     ROW(0, 2.0, 60.0, 0.0)::tasker.backoff_policy, '{worker_pb_queue}', NULL, 4, 30)
        LOOP
            IF r.step_uuid IS NOT NULL THEN
                todo := todo || r.step_uuid;
            END IF;
        END LOOP;
        -- the second call of a report that found its task busy (0031); here it finds the
        -- children already taken and only evaluates the task again
        FOR r IN SELECT * FROM tasker.complete_step_follow_up(step, 'w1', '{worker_pb_queue}',
                                                               NULL, 4, 30)
        LOOP
            IF r.step_uuid IS NOT NULL THEN
                todo := todo || r.step_uuid;
            END IF;
        END LOOP;
    END LOOP;
    SELECT response->>'status' INTO state FROM tasker.task_response_if_done(t, true);
    RETURN state;
END
$$;

DO $$
BEGIN
    PERFORM tasker.register_template(jsonb_build_object('name', 'diamond', 'namespace_name', ns,
        'version', '1.0.0', 'steps', jsonb_build_array(
            test.template_step('a'), test.template_step('b', '{a}'),
            test.template_step('c', '{a}'), test.template_step('d', '{b,c}'))))
    FROM unnest(ARRAY['pb', 'pb_other']) ns;
    ASSERT pg_temp.lifecycle() = 'complete', 'the lifecycle completes a task';
END $$;

DO $$
DECLARE
    planned integer := test.buffers('SELECT pg_temp.lifecycle()'); -- plans made above, alone
    beside_500 integer;
    beside_3000 integer;
BEGIN
    -- other tasks, queued in another namespace: more tasks, steps, edges, history, messages
    PERFORM tasker.create_task(pg_temp.request('pb_other'), false) FROM generate_series(1, 500);
    beside_500 := test.buffers('SELECT pg_temp.lifecycle()');
    PERFORM tasker.create_task(pg_temp.request('pb_other'), false) FROM generate_series(1, 2500);
    beside_3000 := test.buffers('SELECT pg_temp.lifecycle()');
    IF beside_3000 > beside_500 * 5 / 4 THEN
        RAISE EXCEPTION 'a task''s life read % buffers beside 3,000 other tasks, % beside 500 (% alone): a plan scans a table',
            beside_3000, beside_500, planned;
    END IF;
END $$;
RESET enable_nestloop;
RESET plan_cache_mode;
