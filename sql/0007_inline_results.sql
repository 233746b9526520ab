-- 0007_inline_results.sql - a worker applies its own result in the transaction that stores it.
--
-- DESIGN.md section 1 has three round trips per step: claim, complete (store + message), and
-- the orchestrator's process-result (apply + queue children + move the task). Measured on
-- this 2-core machine, the hop between the last two (a durable commit, a NOTIFY, a wake-up and
-- a second statement) cost about 1.4 ms of the ~3.3 ms each level of a workflow took; the
-- targets (a 4-step chain in 10 ms) need about 1.8 ms per level. This overload of
-- complete_step therefore stores the result AND applies it with the very functions the
-- orchestrator uses (apply_step_result, schedule_retry, evaluate_task), in one durable
-- transaction: two round trips and one durable commit per step. Guarantees are unchanged:
-- the task's row lock is taken first (the lock order of 0005), the step still passes through
-- enqueued_for_orchestration in its history, and the result is durable before any child runs.
-- The orchestrator keeps everything else (scheduled retries, the sweeper, the API) and still
-- processes result messages sent by the 3-argument complete_step.
--
-- Continuation: in the same transaction the worker may claim up to p_next of the steps that
-- just became ready (and that it has a handler for): its thread, now free, runs the child at
-- once instead of waiting for a NOTIFY and a separate claim. A chain of steps then follows
-- one worker thread; other ready children still go out through the queue as before. The
-- claim is exactly claim_steps' (same CAS, lease, attempts, history).

-- claim_steps without its synchronous_commit = off, for use inside other transactions.
CREATE FUNCTION tasker.claim_steps_in_txn(p_queues text[], p_handlers text[], p_limit integer,
                                          p_worker_id text, p_lease_seconds integer)
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
        DELETE FROM tasker_mq.messages m USING picked WHERE m.msg_id = picked.msg_id
        RETURNING (m.message->>'step_uuid')::uuid AS step_uuid)
    SELECT array_agg(taken.step_uuid) INTO v_steps FROM taken;
    IF v_steps IS NULL THEN
        RETURN;
    END IF;

    RETURN QUERY
    WITH claimed AS (
        UPDATE tasker.workflow_steps ws
        SET state = 'in_progress', attempts = ws.attempts + 1, last_attempted_at = now(),
            lease_owner = p_worker_id,
            lease_expires_at = now() + make_interval(secs => p_lease_seconds)
        WHERE ws.workflow_step_uuid = ANY (v_steps) AND ws.state = 'enqueued'
        RETURNING ws.*),
    history AS (
        INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state,
                                                      event, metadata)
        SELECT c.workflow_step_uuid, 'enqueued', 'in_progress', 'start',
               jsonb_build_object('worker_id', p_worker_id, 'attempt', c.attempts)
        FROM claimed c)
    SELECT c.task_uuid, c.workflow_step_uuid, x.correlation_id, x.namespace_name, x.task_name,
           x.task_version, x.step_name, c.handler_callable::text, c.attempts, c.max_attempts,
           c.retryable, c.timeout_seconds, c.lease_expires_at, x.context, c.inputs,
           tasker.step_dependency_results(c.workflow_step_uuid),
           tasker.step_parent_names(c.workflow_step_uuid)
    FROM claimed c
    CROSS JOIN LATERAL (
        SELECT t.correlation_id, ns.name::text AS namespace_name, nt.name::text AS task_name,
               nt.version::text AS task_version, sn.name::text AS step_name, t.context
        FROM tasker.tasks t
        JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
        JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
        JOIN tasker.named_steps sn ON sn.named_step_uuid = c.named_step_uuid
        WHERE t.task_uuid = c.task_uuid
        OFFSET 0) x;
END
$$;

CREATE OR REPLACE FUNCTION tasker.claim_steps(p_queues text[], p_handlers text[], p_limit integer,
                                              p_worker_id text, p_lease_seconds integer)
RETURNS TABLE (task_uuid uuid, step_uuid uuid, correlation_id uuid, namespace_name text,
               task_name text, task_version text, step_name text, handler text,
               attempts integer, max_attempts integer, retryable boolean,
               timeout_seconds integer, lease_expires_at timestamptz, context jsonb,
               config jsonb, dependency_results jsonb, parents jsonb)
LANGUAGE plpgsql ROWS 4 AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true); -- see 0005's header: safe to lose
    RETURN QUERY SELECT * FROM tasker.claim_steps_in_txn(p_queues, p_handlers, p_limit,
                                                         p_worker_id, p_lease_seconds);
END
$$;

-- Store and apply a result; then claim up to p_next ready steps of p_queues for this worker.
-- The first row says whether the result was accepted (false: the lease was lost; nothing
-- else happened) and, if so, the step's and the task's states after it; every other row is
-- a claimed step, as claim_steps returns it.
CREATE FUNCTION tasker.complete_step(p_step_uuid uuid, p_worker_id text, p_result jsonb,
                                     p_policy tasker.backoff_policy, p_queues text[],
                                     p_handlers text[], p_next integer, p_lease_seconds integer)
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
    v_to varchar;
    v_applied varchar;
BEGIN
    SELECT ws.task_uuid INTO v_task FROM tasker.workflow_steps ws
    WHERE ws.workflow_step_uuid = p_step_uuid;
    IF NOT FOUND THEN
        accepted := false;
        RETURN NEXT;
        RETURN;
    END IF;
    PERFORM 1 FROM tasker.tasks t WHERE t.task_uuid = v_task FOR UPDATE;

    v_to := CASE WHEN v_ok THEN 'enqueued_for_orchestration'
                 ELSE 'enqueued_as_error_for_orchestration' END;
    UPDATE tasker.workflow_steps ws SET state = v_to, results = p_result
    WHERE ws.workflow_step_uuid = p_step_uuid AND ws.state = 'in_progress'
      AND ws.lease_owner = p_worker_id;
    IF NOT FOUND THEN
        accepted := false; -- the lease was lost: someone else owns the step now
        RETURN NEXT;
        RETURN;
    END IF;
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event, metadata)
    VALUES (p_step_uuid, 'in_progress', v_to,
            CASE WHEN v_ok THEN 'enqueue_for_orchestration' ELSE 'enqueue_as_error_for_orchestration' END,
            jsonb_build_object('worker_id', p_worker_id,
                               'execution_time_ms', p_result->'metadata'->'execution_time_ms'));

    v_applied := tasker.apply_step_result(p_step_uuid, p_policy);
    IF v_applied = 'waiting_for_retry' THEN
        PERFORM tasker.schedule_retry(v_task, p_step_uuid);
    END IF;
    task_state := tasker.evaluate_task(v_task);

    accepted := true;
    step_state := v_applied;
    RETURN NEXT; -- the verdict row (no step)
    IF p_next > 0 AND v_applied = 'complete' THEN
        RETURN QUERY SELECT true, NULL::varchar, NULL::varchar, c.* FROM tasker.claim_steps_in_txn(
            p_queues, p_handlers, p_next, p_worker_id, p_lease_seconds) c;
    END IF;
END
$$;
