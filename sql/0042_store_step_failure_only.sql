-- 0042_store_step_failure_only.sql - store_step_result keeps only the branch anything calls.
--
-- store_step_result (0034) stored a success or a failure of one step for complete_steps.
-- Since 0035, complete_steps stores all of a call's successes itself in one statement and
-- calls store_step_result for failures only, so its success branch was dead code. It is
-- removed; a success passed to it now raises, as a caller's mistake would deserve.

-- Store one step's failure under its task's lock, as complete_step does: the step goes
-- in_progress -> enqueued_as_error_for_orchestration, then to apply_step_result's choice
-- (its retry or error). Only the lease owner's result for an in_progress step counts.
-- Returns the step's new state, or NULL when the result was not taken (the lease was lost).
CREATE OR REPLACE FUNCTION tasker.store_step_result(p_step_uuid uuid, p_worker_id text,
                                                    p_result jsonb,
                                                    p_policy tasker.backoff_policy)
RETURNS varchar LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    IF coalesce((p_result->>'success')::boolean, false) THEN
        RAISE EXCEPTION 'store_step_result stores failures: complete_steps stores successes';
    END IF;
    UPDATE tasker.workflow_steps ws
    SET state = 'enqueued_as_error_for_orchestration', results = p_result
    WHERE ws.workflow_step_uuid = p_step_uuid AND ws.state = 'in_progress'
      AND ws.lease_owner = p_worker_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state,
                                                  event, metadata)
    VALUES (p_step_uuid, 'in_progress', 'enqueued_as_error_for_orchestration',
            'enqueue_as_error_for_orchestration',
            jsonb_build_object('worker_id', p_worker_id, 'execution_time_ms',
                               p_result->'metadata'->'execution_time_ms'));
    RETURN tasker.apply_step_result(p_step_uuid, p_policy);
END
$$;
