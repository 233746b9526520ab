-- 0031_report_while_task_busy.sql - a step's success is stored without waiting for its task's
-- row lock when another report holds it; what the success makes ready is decided right after.
--
-- complete_step (0022) locked the task row first and held it to the end of its transaction,
-- the durable commit included, so the reports of one task's parallel steps ran one after
-- another, each a whole statement and a commit flush long. In `tasker bench e2e` the tree's
-- four leaves, whose handlers finished within 0.2 ms of each other, were stored about 0.9 ms
-- apart; the statement taking the lock waited 687 us on average over all reports of the run.
--
-- Now a successful report that finds the task locked (FOR UPDATE SKIP LOCKED):
-- * stores the step's success as before (in_progress -> enqueued_for_orchestration -> complete,
--   with the result) and commits it durably, beside the lock holder's commit rather than after
--   it; its answer is the verdict row with task_state NULL;
-- * the worker then calls complete_step_follow_up, which waits for the task's lock and does
--   what complete_step does after storing: the step's ready children (the continuation) and
--   evaluate_task. It commits with synchronous_commit = off unless the task reached a final
--   state, so it holds the lock for its statement only.
-- Readiness stays exact without the lock around the store: a report's follow-up takes its
-- snapshot after its own store committed and after the lock holder committed, so of two
-- parents finishing together, the later one's follow-up sees both complete; a child moves
-- out of pending only by an UPDATE that checks it is still pending, so it starts once.
-- If the follow-up's commit is lost in a crash, or the worker dies between the two calls,
-- the stored result stays and the sweeper's stuck-task check evaluates the task again.
-- Failures, and reports that find the task free, work as before, in one transaction.

-- What a report answers once its step's result is applied under the task's lock: start the
-- step's ready children for this worker (continuation) when the step completed while the task
-- runs its steps, evaluate the task, then the verdict row and one row per step started.
CREATE FUNCTION tasker.report_outcome(p_task_uuid uuid, p_task_state varchar, p_step_uuid uuid,
                                      p_applied varchar, p_worker_id text, p_queues text[],
                                      p_handlers text[], p_next integer, p_lease_seconds integer)
RETURNS TABLE (accepted boolean, step_state varchar, task_state varchar, task_uuid uuid,
               step_uuid uuid, correlation_id uuid,
               namespace_name text, task_name text, task_version text, step_name text,
               handler text, attempts integer, max_attempts integer, retryable boolean,
               timeout_seconds integer, lease_expires_at timestamptz, context jsonb,
               config jsonb, dependency_results jsonb, parents jsonb)
LANGUAGE plpgsql ROWS 2 AS $$
DECLARE
    v_next uuid[];
BEGIN
    IF p_applied = 'complete' AND p_task_state = 'steps_in_process' THEN
        v_next := tasker.ready_children(p_task_uuid, p_step_uuid, p_queues, p_handlers, p_next);
        IF cardinality(v_next) > 0 THEN
            v_next := tasker.start_steps(v_next, 'pending', p_worker_id, p_lease_seconds);
        END IF;
    END IF;
    task_state := tasker.evaluate_task(p_task_uuid);
    accepted := true;
    step_state := p_applied;
    RETURN NEXT; -- the verdict row (no step)
    IF cardinality(v_next) > 0 THEN
        RETURN QUERY SELECT true, NULL::varchar, NULL::varchar, c.*
                     FROM tasker.claimed_steps(v_next) c;
    END IF;
END
$$;

-- 0022's complete_step, storing a success without the task's lock when another holds it.
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
    v_locked boolean;
    v_applied varchar;
    v_meta jsonb := jsonb_build_object('worker_id', p_worker_id, 'execution_time_ms',
                                       p_result->'metadata'->'execution_time_ms');
    v_guard text;
BEGIN
    SELECT t.task_uuid, t.state INTO v_task, v_task_state
    FROM tasker.tasks t
    WHERE t.task_uuid = (SELECT ws.task_uuid FROM tasker.workflow_steps ws
                         WHERE ws.workflow_step_uuid = p_step_uuid)
    FOR UPDATE OF t SKIP LOCKED;
    v_locked := FOUND;
    IF NOT v_locked THEN
        -- the task is locked by another report (or the step is gone)
        SELECT ws.task_uuid INTO v_task
        FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = p_step_uuid;
        IF NOT FOUND THEN
            accepted := false;
            RETURN NEXT;
            RETURN;
        END IF;
        IF NOT v_ok THEN -- a failure is applied under the lock: wait for it
            SELECT t.state INTO v_task_state FROM tasker.tasks t
            WHERE t.task_uuid = v_task FOR UPDATE;
            v_locked := true;
        END IF;
    END IF;

    IF v_ok THEN
        -- in_progress -> enqueued_for_orchestration -> complete, as apply_step_result would
        -- (in_progress -> complete is itself legal; the columns are the guard's for it)
        v_guard := set_config('tasker.recorded_path', 'on', true);
        UPDATE tasker.workflow_steps ws
        SET state = 'complete', results = p_result, state_entered_at = now(), updated_at = now(),
            processed_at = now(), lease_owner = NULL, lease_expires_at = NULL
        WHERE ws.workflow_step_uuid = p_step_uuid AND ws.state = 'in_progress'
          AND ws.lease_owner = p_worker_id;
        v_guard := set_config('tasker.recorded_path', 'off', true); -- (an assignment keeps FOUND)
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
    IF NOT v_locked THEN
        accepted := true; -- stored; the caller follows up with complete_step_follow_up
        step_state := v_applied;
        RETURN NEXT;
        RETURN;
    END IF;

    IF v_applied = 'waiting_for_retry' THEN
        PERFORM tasker.schedule_retry(v_task, p_step_uuid);
    END IF;
    RETURN QUERY SELECT * FROM tasker.report_outcome(v_task, v_task_state, p_step_uuid, v_applied,
                                                     p_worker_id, p_queues, p_handlers, p_next,
                                                     p_lease_seconds);
END
$$;
ALTER FUNCTION tasker.complete_step(uuid, text, jsonb, tasker.backoff_policy, text[], text[],
                                    integer, integer)
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off;

-- The second half of a report whose complete_step answered task_state NULL: under the task's
-- lock, the step's ready children (continuation, as complete_step's p_next) and evaluate_task;
-- the same rows as complete_step. Commits with synchronous_commit = off unless the task
-- reached a final state (see the header).
CREATE FUNCTION tasker.complete_step_follow_up(p_step_uuid uuid, p_worker_id text,
                                               p_queues text[], p_handlers text[],
                                               p_next integer, p_lease_seconds integer)
RETURNS TABLE (accepted boolean, step_state varchar, task_state varchar, task_uuid uuid,
               step_uuid uuid, correlation_id uuid,
               namespace_name text, task_name text, task_version text, step_name text,
               handler text, attempts integer, max_attempts integer, retryable boolean,
               timeout_seconds integer, lease_expires_at timestamptz, context jsonb,
               config jsonb, dependency_results jsonb, parents jsonb)
LANGUAGE plpgsql ROWS 2
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_task uuid;
    v_task_state varchar;
    v_step_state varchar;
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
    PERFORM set_config('synchronous_commit', 'off', true); -- see the header: safe to lose
    SELECT ws.state INTO v_step_state
    FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = p_step_uuid;
    RETURN QUERY SELECT * FROM tasker.report_outcome(v_task, v_task_state, p_step_uuid,
                                                     v_step_state, p_worker_id, p_queues,
                                                     p_handlers, p_next, p_lease_seconds);
    IF (SELECT t.state FROM tasker.tasks t WHERE t.task_uuid = v_task)
           IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN
        PERFORM set_config('synchronous_commit', 'on', true); -- final states are durable
    END IF;
END
$$;
