-- 0022_step_guard_after.sql - a step's state change no longer pays for a BEFORE trigger.
--
-- 0021 for workflow_steps. Every step runs through two state changes on the engine's path:
-- start_steps (enqueued or pending -> in_progress, at a claim or a continuation) and
-- complete_step (in_progress -> complete). workflow_steps_guard_state was a BEFORE UPDATE row
-- trigger, so each of them locked the step's row again and called the plpgsql guard, which
-- only set columns there. Measured with pgbench on complete_step's UPDATE (generic plans,
-- four alternating runs): 106-124 us with the BEFORE trigger, 84-86 us with this AFTER
-- trigger skipped by its WHEN clause, 77-80 us with no trigger at all; and on a whole
-- complete_step that also starts the next step of a chain (five alternating runs of 500,
-- rolled back): median 0.675 ms before, 0.631 ms after.
--
-- Now:
-- * start_steps and complete_step's success path set tasker.recorded_path (both check their
--   transition: CAS on the expected state) and set the columns the guard set: state_entered_at
--   and updated_at; on leaving in_progress, no lease; on reaching complete, processed_at;
-- * the guard is an AFTER UPDATE OF state row trigger whose WHEN clause skips the recorded
--   path;
-- * every other UPDATE of the state (failures, retries, the sweeper, cancellation, manual
--   actions, an operator's SQL) is checked against step_state_transitions (TK002) and then
--   gets the same columns from the trigger's own UPDATE of the row: state_entered_at,
--   updated_at, the lease dropped on leaving in_progress, processed_at on reaching complete,
--   cancelled or resolved_manually, attempts and backoff zeroed by error -> pending. Those
--   paths now write the row twice; none of them reads these columns back through RETURNING.
-- complete_step keeps its settings (CREATE OR REPLACE resets them).

CREATE OR REPLACE FUNCTION tasker.guard_step_state() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_left_run boolean := OLD.state = 'in_progress';
    v_reset boolean := OLD.state = 'error' AND NEW.state = 'pending'; -- reset_for_retry
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.step_state_transitions
                   WHERE from_state = OLD.state AND to_state = NEW.state) THEN
        RAISE EXCEPTION 'step % cannot go from % to %', OLD.workflow_step_uuid, OLD.state, NEW.state
            USING ERRCODE = 'TK002';
    END IF;
    UPDATE tasker.workflow_steps ws
    SET state_entered_at = now(), updated_at = now(),
        lease_owner = CASE WHEN v_left_run THEN NULL ELSE ws.lease_owner END,
        lease_expires_at = CASE WHEN v_left_run THEN NULL ELSE ws.lease_expires_at END,
        processed_at = CASE WHEN NEW.state IN ('complete', 'cancelled', 'resolved_manually')
                            THEN now() ELSE ws.processed_at END,
        attempts = CASE WHEN v_reset THEN 0 ELSE ws.attempts END,
        backoff_request_seconds = CASE WHEN v_reset THEN NULL ELSE ws.backoff_request_seconds END
    WHERE ws.workflow_step_uuid = NEW.workflow_step_uuid;
    RETURN NULL;
END
$$;

DROP TRIGGER workflow_steps_guard_state ON tasker.workflow_steps;
CREATE TRIGGER workflow_steps_guard_state AFTER UPDATE OF state ON tasker.workflow_steps
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
                       AND current_setting('tasker.recorded_path', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION tasker.guard_step_state();

-- 0008's start_steps and 0016's complete_step; their UPDATEs now set the guard's columns.

CREATE OR REPLACE FUNCTION tasker.start_steps(p_steps uuid[], p_from_state varchar, p_worker_id text,
                                   p_lease_seconds integer)
RETURNS uuid[] LANGUAGE plpgsql AS $$
DECLARE
    v_started uuid[];
    v_guard text;
BEGIN
    IF p_from_state NOT IN ('enqueued', 'pending') THEN
        RAISE EXCEPTION 'start_steps: cannot start steps from %', p_from_state;
    END IF;
    v_guard := set_config('tasker.recorded_path', 'on', true);
    WITH claimed AS (
        UPDATE tasker.workflow_steps ws
        SET state = 'in_progress', state_entered_at = now(), updated_at = now(),
            attempts = ws.attempts + 1, last_attempted_at = now(),
            lease_owner = p_worker_id,
            lease_expires_at = now() + make_interval(secs => p_lease_seconds)
        WHERE ws.workflow_step_uuid = ANY (p_steps) AND ws.state = p_from_state
        RETURNING ws.workflow_step_uuid, ws.attempts),
    history AS (
        INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state,
                                                      event, metadata, created_at)
        SELECT c.workflow_step_uuid, 'pending', 'enqueued', 'enqueue', '{}', clock_timestamp()
        FROM claimed c WHERE p_from_state = 'pending'
        UNION ALL
        SELECT c.workflow_step_uuid, 'enqueued', 'in_progress', 'start',
               jsonb_build_object('worker_id', p_worker_id, 'attempt', c.attempts),
               clock_timestamp() + interval '1 microsecond'
        FROM claimed c)
    SELECT array_agg(c.workflow_step_uuid) INTO v_started FROM claimed c;
    v_guard := set_config('tasker.recorded_path', 'off', true);
    RETURN v_started;
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
    v_guard text;
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
