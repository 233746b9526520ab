-- 0016_readiness_plans.sql - readiness, the edge guard, continuation, the task lock and the claim probe by key.
--
-- tests/sql/plan_bounds.sql plans a task's whole life with nested loops steered away (as a
-- generic plan made from a young table's statistics may be) and checks that the task reads
-- about as many buffers beside 3,000 other tasks as beside 500. Past 0014 and 0015 it still
-- found these joins that read whole tables once planned that way:
-- * step_readiness, behind evaluate_task (every complete_step), task_response and the
--   readiness functions: each step's parents were joined to workflow_steps, which a hash
--   join read in full, for every step of the task (113 of 116 buffers per evaluation);
-- * complete_step (0008), every step's report: the task's row was locked through a join
--   from the step, which a merge join could do by reading every task;
-- * claim_steps_in_txn (0008), every claim from a queue: the DELETE of the picked messages
--   joined them to the whole message table, backlog of other queues included;
-- * ready_children (0008), the continuation of every complete_step: its "no parent left
--   unfinished" test became a hash anti join over every edge and every unfinished step;
-- * guard_step_edges, the cycle and same-task check of every task creation: its walk over
--   the new edges' descendants merge-joined the whole edge index, and its first query could
--   hash-join workflow_steps.
-- Each such lookup is now a LATERAL subquery kept apart by OFFSET 0: an index probe per row,
-- the only plan; or, for complete_step's lock and the claim's DELETE, a key taken from a
-- subquery (one task's uuid, the array of picked message ids), which the index condition
-- then uses. ready_children's NOT EXISTS gets an OFFSET 0 too, which keeps it a subquery run
-- per child instead of an anti join. The view keeps its columns; the functions their
-- behaviour, and complete_step its settings (CREATE OR REPLACE resets them).

CREATE OR REPLACE VIEW tasker.step_readiness AS
SELECT ws.workflow_step_uuid,
       ws.task_uuid,
       ws.named_step_uuid,
       ns.name::text AS name,
       ws.state::text AS current_state,
       p.total_parents = p.completed_parents AS dependencies_satisfied,
       (ws.attempts = 0 OR (ws.retryable AND ws.attempts < ws.max_attempts)) AS retry_eligible,
       (ws.state IN ('pending', 'waiting_for_retry')
        AND p.total_parents = p.completed_parents
        AND (ws.attempts = 0 OR (ws.retryable AND ws.attempts < ws.max_attempts))
        AND (ws.last_failure_at IS NULL OR ws.backoff_request_seconds IS NULL
             OR ws.last_failure_at + make_interval(secs => ws.backoff_request_seconds) <= now()))
           AS ready_for_execution,
       ws.last_failure_at,
       ws.last_failure_at + make_interval(secs => ws.backoff_request_seconds) AS next_retry_at,
       p.total_parents,
       p.completed_parents,
       ws.attempts,
       ws.max_attempts,
       ws.backoff_request_seconds,
       ws.last_attempted_at
FROM tasker.workflow_steps ws
LEFT JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
CROSS JOIN LATERAL (
    SELECT count(*)::integer AS total_parents,
           (count(*) FILTER (WHERE parent.state IN ('complete', 'resolved_manually')))::integer
               AS completed_parents
    FROM tasker.workflow_step_edges e
    CROSS JOIN LATERAL (
        SELECT s.state FROM tasker.workflow_steps s WHERE s.workflow_step_uuid = e.from_step_uuid
        OFFSET 0) parent
    WHERE e.to_step_uuid = ws.workflow_step_uuid) p;

CREATE OR REPLACE FUNCTION tasker.guard_step_edges() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_step uuid;
BEGIN
    SELECT n.from_step_uuid INTO v_step
    FROM new_edges n
    CROSS JOIN LATERAL (
        SELECT s.task_uuid FROM tasker.workflow_steps s WHERE s.workflow_step_uuid = n.from_step_uuid
        OFFSET 0) f
    CROSS JOIN LATERAL (
        SELECT s.task_uuid FROM tasker.workflow_steps s WHERE s.workflow_step_uuid = n.to_step_uuid
        OFFSET 0) t
    WHERE f.task_uuid <> t.task_uuid
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'edge from step % joins steps of different tasks', v_step
            USING ERRCODE = 'TK003';
    END IF;
    WITH RECURSIVE reach(origin, step) AS (
        SELECT n.from_step_uuid, n.to_step_uuid FROM new_edges n
        UNION
        SELECT r.origin, c.to_step_uuid
        FROM reach r
        CROSS JOIN LATERAL (
            SELECT e.to_step_uuid FROM tasker.workflow_step_edges e WHERE e.from_step_uuid = r.step
            OFFSET 0) c
    )
    SELECT origin INTO v_step FROM reach WHERE step = origin LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'edges would create a cycle through step %', v_step
            USING ERRCODE = 'TK003';
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tasker.ready_children(p_task_uuid uuid, p_step_uuid uuid,
                                                 p_queues text[], p_handlers text[],
                                                 p_limit integer)
RETURNS uuid[] LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_limit <= 0 OR NOT EXISTS (
            SELECT 1 FROM tasker.tasks t
            JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
            JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
            WHERE t.task_uuid = p_task_uuid AND 'worker_' || ns.name || '_queue' = ANY (p_queues)) THEN
        RETURN NULL;
    END IF;
    RETURN ARRAY(
        SELECT c.workflow_step_uuid
        FROM tasker.workflow_step_edges e
        CROSS JOIN LATERAL (
            SELECT s.* FROM tasker.workflow_steps s WHERE s.workflow_step_uuid = e.to_step_uuid
            OFFSET 0) c
        WHERE e.from_step_uuid = p_step_uuid AND c.state = 'pending'
          AND (p_handlers IS NULL OR c.handler_callable = ANY (p_handlers))
          AND (c.attempts = 0 OR (c.retryable AND c.attempts < c.max_attempts))
          AND (c.last_failure_at IS NULL OR c.backoff_request_seconds IS NULL
               OR c.last_failure_at + make_interval(secs => c.backoff_request_seconds) <= now())
          AND NOT EXISTS (
              SELECT 1 FROM tasker.workflow_step_edges pe
              CROSS JOIN LATERAL (
                  SELECT s.state FROM tasker.workflow_steps s
                  WHERE s.workflow_step_uuid = pe.from_step_uuid
                  OFFSET 0) p
              WHERE pe.to_step_uuid = c.workflow_step_uuid
                AND p.state NOT IN ('complete', 'resolved_manually')
              OFFSET 0)
        ORDER BY c.workflow_step_uuid
        LIMIT p_limit);
END
$$;

CREATE OR REPLACE FUNCTION tasker.complete_step(p_step_uuid uuid, p_worker_id text, p_result jsonb,
                                                p_policy tasker.backoff_policy, p_queues text[],
                                                p_handlers text[], p_next integer,
                                                p_lease_seconds integer)
RETURNS TABLE (accepted boolean, step_state varchar, task_state varchar, task_uuid uuid,
               step_uuid uuid, correlation_id uuid,
               namespace_name text, task_name text, task_version text, step_name text,
               handler text, attempts integer, max_attempts integer, retryable boolean,
               timeout_seconds integer, lease_expires_at timestamptz, context jsonb,
               config jsonb, dependency_results jsonb, parents jsonb)
LANGUAGE plpgsql ROWS 2 AS $$
DECLARE
    v_ok boolean := coalesce((p_result->>'success')::boolean, false);
    v_task uuid;
    v_task_state varchar;
    v_applied varchar;
    v_next uuid[];
    v_meta jsonb := jsonb_build_object('worker_id', p_worker_id, 'execution_time_ms',
                                       p_result->'metadata'->'execution_time_ms');
BEGIN
    SELECT t.task_uuid, t.state INTO v_task, v_task_state
    FROM tasker.tasks t
    WHERE t.task_uuid = (SELECT ws.task_uuid FROM tasker.workflow_steps ws
                         WHERE ws.workflow_step_uuid = p_step_uuid)
    FOR UPDATE OF t;
    IF NOT FOUND THEN
        accepted := false;
        RETURN NEXT;
        RETURN;
    END IF;

    IF v_ok THEN
        -- in_progress -> enqueued_for_orchestration -> complete, as apply_step_result would
        -- (in_progress -> complete is itself legal, so the guard needs no recorded_path)
        UPDATE tasker.workflow_steps ws SET state = 'complete', results = p_result
        WHERE ws.workflow_step_uuid = p_step_uuid AND ws.state = 'in_progress'
          AND ws.lease_owner = p_worker_id;
        IF FOUND THEN
            v_applied := 'complete';
            INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state,
                                                          event, metadata, created_at)
            VALUES (p_step_uuid, 'in_progress', 'enqueued_for_orchestration',
                    'enqueue_for_orchestration', v_meta, clock_timestamp()),
                   (p_step_uuid, 'enqueued_for_orchestration', 'complete', 'complete', '{}',
                    clock_timestamp() + interval '1 microsecond');
        END IF;
    ELSE
        UPDATE tasker.workflow_steps ws
        SET state = 'enqueued_as_error_for_orchestration', results = p_result
        WHERE ws.workflow_step_uuid = p_step_uuid AND ws.state = 'in_progress'
          AND ws.lease_owner = p_worker_id;
        IF FOUND THEN
            INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state,
                                                          event, metadata)
            VALUES (p_step_uuid, 'in_progress', 'enqueued_as_error_for_orchestration',
                    'enqueue_as_error_for_orchestration', v_meta);
            v_applied := tasker.apply_step_result(p_step_uuid, p_policy);
        END IF;
    END IF;
    IF v_applied IS NULL THEN
        accepted := false; -- the lease was lost: someone else owns the step now
        RETURN NEXT;
        RETURN;
    END IF;

    IF v_applied = 'waiting_for_retry' THEN
        PERFORM tasker.schedule_retry(v_task, p_step_uuid);
    ELSIF v_applied = 'complete' AND v_task_state = 'steps_in_process' THEN
        v_next := tasker.ready_children(v_task, p_step_uuid, p_queues, p_handlers, p_next);
        IF cardinality(v_next) > 0 THEN
            v_next := tasker.start_steps(v_next, 'pending', p_worker_id, p_lease_seconds);
        END IF;
    END IF;
    task_state := tasker.evaluate_task(v_task);

    accepted := true;
    step_state := v_applied;
    RETURN NEXT; -- the verdict row (no step)
    IF cardinality(v_next) > 0 THEN
        RETURN QUERY SELECT true, NULL::varchar, NULL::varchar, c.*
                     FROM tasker.claimed_steps(v_next) c;
    END IF;
END
$$;
ALTER FUNCTION tasker.complete_step(uuid, text, jsonb, tasker.backoff_policy, text[], text[],
                                    integer, integer)
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off;

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
        SELECT m.msg_id FROM tasker_mq.messages m
        WHERE m.queue_name = ANY (p_queues) AND m.vt <= clock_timestamp()
          AND (p_handlers IS NULL OR m.message->>'handler' = ANY (p_handlers))
        ORDER BY m.msg_id
        LIMIT greatest(p_limit, 0)
        FOR UPDATE SKIP LOCKED),
    taken AS (
        DELETE FROM tasker_mq.messages m WHERE m.msg_id = ANY (ARRAY(SELECT msg_id FROM picked))
        RETURNING (m.message->>'step_uuid')::uuid AS step_uuid)
    SELECT array_agg(taken.step_uuid) INTO v_steps FROM taken;
    IF v_steps IS NULL THEN
        RETURN;
    END IF;
    v_steps := tasker.start_steps(v_steps, 'enqueued', p_worker_id, p_lease_seconds);
    RETURN QUERY SELECT * FROM tasker.claimed_steps(v_steps);
END
$$;
