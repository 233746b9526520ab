-- 0018_queue_depth.sql - taking messages costs the same behind a deep queue as behind a short one.
--
-- Every statement that takes the oldest visible messages of a queue could, with the generic
-- plan a session keeps (0008), read the whole queue or the whole messages table at every call:
-- * claim_steps (0016), every claim of a worker: `queue_name = ANY (p_queues) ORDER BY
--   msg_id` cannot walk the (queue_name, msg_id) index in order, so a plan made while the
--   queue was short read every message of the worker's queues and sorted them. Seen with
--   auto_explain in a no-op throughput run: 150-1,200 messages read per claim, 0.1-0.9 ms, a
--   seventh of the database's CPU; a backlog of 100,000 steps would be read at every claim.
--   Now each of the worker's queues is walked on its own by tasker_mq.lock_visible, whose
--   settings (no sort, no bitmap scan) leave the planner only the ordered walk of the queue's
--   part of the (queue_name, msg_id) index, which stops after p_limit messages; the oldest
--   p_limit of what the queues gave are taken. That index is now the primary key and the
--   only one: with statistics of a few equal queues, a plan walked the msg_id index through
--   every queue's messages instead (120 buffers for an empty queue behind 5,000 others). A
--   claim across k queues may lock up to k * p_limit messages until it commits; the ones it
--   does not take stay queued.
-- * tasker_mq.read and tasker_mq.pop (0004), and process_step_results (0006), the
--   orchestrator's pass: the picked messages were joined back to the table, a nested loop
--   over the whole of messages_pkey when planned on an empty table (379 buffers for one
--   read of one message). They now pick with lock_visible too.
-- * Every one of them then found the picked rows again by msg_id (0016's `msg_id = ANY
--   (ARRAY(SELECT ...))` in the claim), which a plan made on an empty table served with a
--   walk of the whole (queue_name, msg_id) index (131 buffers behind 5,000 messages, 10
--   behind 100). They now find them by ctid, which no index can serve: a TID scan, one
--   page per message, is the only plan left with seqscan off.
-- tests/sql/queue_depth.sql measures each behind 100 and behind 5,000 messages.

-- One index on messages, (queue_name, msg_id), which is now the primary key: every lookup of a
-- message names its queue, and a plan cannot walk msg_id's own index across every queue.
CREATE UNIQUE INDEX messages_queue_msg_key ON tasker_mq.messages (queue_name, msg_id);
ALTER TABLE tasker_mq.messages DROP CONSTRAINT messages_pkey,
    ADD CONSTRAINT messages_pkey PRIMARY KEY USING INDEX messages_queue_msg_key;
DROP INDEX tasker_mq.messages_queue_idx;

-- Up to p_limit visible messages of p_queue, oldest first, whose handler is one of p_handlers
-- (NULL: any), locked FOR UPDATE (messages another transaction holds are skipped): their ids
-- and where they are (ctid), which stays true while the caller's transaction holds the lock.
-- The one statement that walks a queue. Its settings leave the planner one plan, whatever the
-- statistics looked like when it was made: the walk of the queue in the primary key's order,
-- which stops after p_limit messages.
CREATE FUNCTION tasker_mq.lock_visible(p_queue text, p_handlers text[], p_limit integer)
RETURNS TABLE (msg_id bigint, row_id tid) LANGUAGE plpgsql ROWS 4
SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
    SELECT m.msg_id, m.ctid FROM tasker_mq.messages m
    WHERE m.queue_name = p_queue AND m.vt <= clock_timestamp()
      AND (p_handlers IS NULL OR m.message->>'handler' = ANY (p_handlers))
    ORDER BY m.msg_id
    LIMIT greatest(p_limit, 0)
    FOR UPDATE SKIP LOCKED;
END
$$;

CREATE OR REPLACE FUNCTION tasker.claim_steps_in_txn(p_queues text[], p_handlers text[],
                                                     p_limit integer, p_worker_id text,
                                                     p_lease_seconds integer)
RETURNS TABLE (task_uuid uuid, step_uuid uuid, correlation_id uuid, namespace_name text,
               task_name text, task_version text, step_name text, handler text,
               attempts integer, max_attempts integer, retryable boolean,
               timeout_seconds integer, lease_expires_at timestamptz, context jsonb,
               config jsonb, dependency_results jsonb, parents jsonb)
LANGUAGE plpgsql ROWS 4 AS $$
DECLARE
    v_steps uuid[];
BEGIN
    WITH picked AS (
        SELECT v.row_id FROM unnest(p_queues) q(name)
        CROSS JOIN LATERAL tasker_mq.lock_visible(q.name, p_handlers, p_limit) v
        ORDER BY v.msg_id
        LIMIT greatest(p_limit, 0)),
    taken AS (
        DELETE FROM tasker_mq.messages m
        WHERE m.ctid = ANY (ARRAY(SELECT picked.row_id FROM picked))
        RETURNING (m.message->>'step_uuid')::uuid AS step_uuid)
    SELECT array_agg(taken.step_uuid) INTO v_steps FROM taken;
    IF v_steps IS NULL THEN
        RETURN;
    END IF;
    v_steps := tasker.start_steps(v_steps, 'enqueued', p_worker_id, p_lease_seconds);
    RETURN QUERY SELECT * FROM tasker.claimed_steps(v_steps);
END
$$;

CREATE OR REPLACE FUNCTION tasker_mq.read(queue_name text, vt integer, qty integer)
RETURNS SETOF tasker_mq.message_record LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT v.row_id FROM tasker_mq.lock_visible(read.queue_name, NULL, read.qty) v)
    UPDATE tasker_mq.messages m
    SET vt = clock_timestamp() + make_interval(secs => read.vt), read_ct = m.read_ct + 1
    WHERE m.ctid = ANY (ARRAY(SELECT picked.row_id FROM picked))
    RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers;
END
$$;

CREATE OR REPLACE FUNCTION tasker_mq.pop(queue_name text, qty integer DEFAULT 1)
RETURNS SETOF tasker_mq.message_record LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT v.row_id FROM tasker_mq.lock_visible(pop.queue_name, NULL, pop.qty) v)
    DELETE FROM tasker_mq.messages m
    WHERE m.ctid = ANY (ARRAY(SELECT picked.row_id FROM picked))
    RETURNING m.msg_id, m.read_ct, m.enqueued_at, m.vt, m.message, m.headers;
END
$$;

-- seqscan off, as 0010 set it for the hot path: what is left to find rows by ctid is a TID scan
ALTER FUNCTION tasker_mq.read(text, integer, integer) SET enable_seqscan = off;
ALTER FUNCTION tasker_mq.pop(text, integer) SET enable_seqscan = off;

CREATE OR REPLACE FUNCTION tasker.process_step_results(p_limit integer, p_policy tasker.backoff_policy)
RETURNS TABLE (task_uuid uuid, step_uuid uuid, step_state varchar, task_state varchar,
               correlation_id uuid, step_latency_ms double precision)
LANGUAGE plpgsql ROWS 4 AS $$
DECLARE
    r record;
    v_final boolean := false;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true); -- see 0006's header
    FOR r IN
        WITH picked AS (
            SELECT v.row_id
            FROM tasker_mq.lock_visible('orchestration_step_results', NULL, p_limit) v),
        taken AS (
            DELETE FROM tasker_mq.messages m
            WHERE m.ctid = ANY (ARRAY(SELECT picked.row_id FROM picked))
            RETURNING (m.message->>'task_uuid')::uuid AS task_uuid,
                      (m.message->>'step_uuid')::uuid AS step_uuid,
                      coalesce(m.message->>'kind', 'step_result') AS kind)
        SELECT * FROM taken ORDER BY taken.task_uuid, taken.step_uuid
    LOOP
        SELECT t.correlation_id INTO correlation_id
        FROM tasker.tasks t WHERE t.task_uuid = r.task_uuid FOR UPDATE;
        task_uuid := r.task_uuid;
        step_uuid := r.step_uuid;
        step_state := NULL;
        step_latency_ms := NULL;
        IF r.kind = 'step_result' THEN
            step_state := tasker.apply_step_result(r.step_uuid, p_policy);
            IF step_state = 'waiting_for_retry' THEN
                PERFORM tasker.schedule_retry(r.task_uuid, r.step_uuid);
            ELSIF step_state = 'complete' THEN
                SELECT extract(epoch FROM clock_timestamp() - ws.last_attempted_at) * 1000
                INTO step_latency_ms
                FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = r.step_uuid;
            END IF;
        END IF;
        task_state := tasker.evaluate_task(r.task_uuid);
        IF task_state IN ('complete', 'error', 'cancelled', 'resolved_manually') AND NOT v_final THEN
            v_final := true;
            PERFORM set_config('synchronous_commit', 'on', true); -- final states are durable
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
ALTER FUNCTION tasker.process_step_results(integer, tasker.backoff_policy)
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off;
