-- queue_depth.sql - taking messages from a queue reads about as many buffers behind 5,000
-- queued messages as behind 100, even when the statements were planned on an empty queue.
--
-- A worker's claim (claim_steps), the orchestrator's pass (process_step_results) and the
-- queue API (tasker_mq.read, tasker_mq.pop) take the oldest visible messages. Sessions keep
-- one generic plan per statement (0008); a claim planned while its queue was short read every
-- message of the queue and sorted them, at every claim (0018_queue_depth.sql). Here each is
-- first run on empty queues, then measured taking one message with 100 and with 5,000
-- messages waiting, in sessions planned with three kinds of statistics. Walking the queue's
-- index costs about the same at both depths; reading the whole queue costs fifty times as
-- much. Without 0018 the first check fails (35 buffers behind 5,000 messages, 9 behind 100).

SET plan_cache_mode = force_generic_plan;
SET client_min_messages = notice;
\ir lib/fixtures.sql

-- Queue p_n messages for steps that do not exist: a claim deletes them and starts nothing,
-- which is all the depth needs.
CREATE FUNCTION test.fill(p_queue text, p_n integer, p_message jsonb DEFAULT '{}')
RETURNS void LANGUAGE sql AS $$
    INSERT INTO tasker_mq.messages (queue_name, vt, message)
    SELECT p_queue, clock_timestamp() - interval '1 second',
           jsonb_build_object('step_uuid', gen_random_uuid(), 'handler', 'h') || p_message
    FROM generate_series(1, p_n)
$$;

-- Buffers to take one message of p_queue with p_sql, behind 100 and then behind 5,000 waiting
-- ones; raises if the deeper queue costs more than 5/4 of the shallow one plus 10 buffers.
-- With p_other, the 5,000 are older messages of that queue, in front of p_queue's 100.
CREATE FUNCTION test.check_depth(p_what text, p_queue text, p_sql text,
                                 p_message jsonb DEFAULT '{}', p_other text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_shallow integer;
    v_deep integer;
BEGIN
    EXECUTE p_sql; -- planned on the empty queue
    PERFORM test.fill(p_queue, 100, p_message);
    EXECUTE p_sql; -- the statements after the take are planned too
    v_shallow := test.buffers(p_sql);
    IF p_other IS NULL THEN
        PERFORM test.fill(p_queue, 4900, p_message);
    ELSE
        DELETE FROM tasker_mq.messages WHERE queue_name = p_queue;
        PERFORM test.fill(p_other, 5000);
        PERFORM test.fill(p_queue, 100, p_message);
    END IF;
    v_deep := test.buffers(p_sql);
    RAISE NOTICE '%: % buffers behind 100 messages, % behind 5,000', p_what, v_shallow, v_deep;
    IF v_deep > v_shallow * 5 / 4 + 10 THEN
        RAISE EXCEPTION 'assertion failed: % reads % buffers behind 5,000 messages, % behind 100',
            p_what, v_deep, v_shallow;
    END IF;
    DELETE FROM tasker_mq.messages WHERE queue_name IN (p_queue, p_other);
END
$$;

-- The checks (lib/queue_depth_checks.sql) run in three new sessions, whose plans are made with
-- the statistics of empty queues, of three small ones and of one busy one.
SELECT tasker_mq.create(q)
FROM unnest('{worker_qd_queue, worker_qd2_queue, plain_qd, worker_test_ns_queue}'::text[]) q;
ANALYZE tasker_mq.messages;
\connect
SET plan_cache_mode = force_generic_plan;
SET client_min_messages = notice;
\ir lib/queue_depth_checks.sql

SELECT test.fill(q, 30) FROM unnest('{worker_qd_queue, worker_qd2_queue, plain_qd}'::text[]) q;
ANALYZE tasker_mq.messages;
DELETE FROM tasker_mq.messages;
\connect
SET plan_cache_mode = force_generic_plan;
SET client_min_messages = notice;
\ir lib/queue_depth_checks.sql

-- statistics of a single busy queue
SELECT test.fill('worker_qd_queue', 300);
ANALYZE tasker_mq.messages;
DELETE FROM tasker_mq.messages;
\connect
SET plan_cache_mode = force_generic_plan;
SET client_min_messages = notice;
\ir lib/queue_depth_checks.sql

-- The oldest visible message comes first across a worker's queues, whatever the order the
-- queues are named in; delayed messages wait.
DO $$
DECLARE
    v_first uuid := gen_random_uuid();
    v_got uuid[];
BEGIN
    PERFORM test.fill('worker_qd2_queue', 1, jsonb_build_object('step_uuid', v_first));
    PERFORM test.fill('worker_qd_queue', 3);
    INSERT INTO tasker_mq.messages (queue_name, vt, message)
    VALUES ('worker_qd2_queue', clock_timestamp() + interval '1 hour', '{"handler": "h"}');
    SELECT array_agg((m.message->>'step_uuid')::uuid ORDER BY m.msg_id) INTO v_got
    FROM tasker_mq.messages m WHERE m.queue_name = 'worker_qd2_queue' AND m.vt < now();
    PERFORM test.eq(v_got, ARRAY[v_first], 'the oldest message is in worker_qd2_queue');
    PERFORM tasker.claim_steps('{worker_qd_queue, worker_qd2_queue}', NULL, 1, 'w1', 30);
    PERFORM test.eq((SELECT count(*) FROM tasker_mq.messages m
                     WHERE m.message->>'step_uuid' = v_first::text), 0::bigint,
                    'the claim took the oldest message');
    PERFORM tasker.claim_steps('{worker_qd_queue, worker_qd2_queue}', NULL, 5, 'w1', 30);
    PERFORM test.eq((SELECT count(*) FROM tasker_mq.messages m
                     WHERE m.queue_name IN ('worker_qd_queue', 'worker_qd2_queue')), 1::bigint,
                    'a claim of 5 took the 3 visible messages and left the delayed one');
END $$;
