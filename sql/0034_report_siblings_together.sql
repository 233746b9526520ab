-- 0034_report_siblings_together.sql - results of one task's steps that finish together in one
-- worker are reported in one call: one transaction, one durable commit, one decision about
-- what they made ready.
--
-- Each result used to be a complete_step call of its own. Siblings that finish together (the
-- two middle steps of a diamond, the four leaves of a tree) then met at the task's row lock:
-- one report held it through its statement and its durable commit, the others stored their
-- success beside it and asked complete_step_follow_up, after it, what had become ready (0031).
-- `tasker bench e2e` (C handlers, calm machine, medians over 110 tasks) started the diamond's
-- join 1.55 ms after its parents' results were stored, and the tree's last step 2.4 ms after
-- its leaves' (0.28 ms from one link of a chain to the next).
--
-- complete_steps takes the results of several steps of one task: it waits for the task's
-- lock, stores and applies each result as complete_step does (a success straight to
-- complete, a failure through apply_step_result and its retry), starts for the calling worker
-- up to p_next of the steps they made ready (continuation), and evaluates the task once. The
-- worker sends results this way when they finished while another report of their task was in
-- flight, or within a short window of their siblings (src/worker/README.md).

-- Store one step's result under its task's lock, as complete_step does: a success moves the
-- step in_progress -> enqueued_for_orchestration -> complete with its history; a failure goes
-- through enqueued_as_error_for_orchestration to apply_step_result's choice. Only the lease
-- owner's result for an in_progress step counts. Returns the step's new state, or NULL when
-- the result was not taken (the lease was lost).
CREATE FUNCTION tasker.store_step_result(p_step_uuid uuid, p_worker_id text, p_result jsonb,
                                         p_policy tasker.backoff_policy) RETURNS varchar
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_meta jsonb := jsonb_build_object('worker_id', p_worker_id, 'execution_time_ms',
                                       p_result->'metadata'->'execution_time_ms');
    v_guard text;
BEGIN
    IF coalesce((p_result->>'success')::boolean, false) THEN
        v_guard := set_config('tasker.recorded_path', 'on', true);
        UPDATE tasker.workflow_steps ws
        SET state = 'complete', results = p_result, state_entered_at = now(), updated_at = now(),
            processed_at = now(), lease_owner = NULL, lease_expires_at = NULL
        WHERE ws.workflow_step_uuid = p_step_uuid AND ws.state = 'in_progress'
          AND ws.lease_owner = p_worker_id;
        v_guard := set_config('tasker.recorded_path', 'off', true); -- (keeps FOUND)
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state,
                                                      event, metadata, created_at)
        VALUES (p_step_uuid, 'in_progress', 'enqueued_for_orchestration',
                'enqueue_for_orchestration', v_meta, clock_timestamp()),
               (p_step_uuid, 'enqueued_for_orchestration', 'complete', 'complete', '{}',
                clock_timestamp() + interval '1 microsecond');
        RETURN 'complete';
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
            'enqueue_as_error_for_orchestration', v_meta);
    RETURN tasker.apply_step_result(p_step_uuid, p_policy);
END
$$;

-- The results of several steps of one task (p_results: a JSON array, in the order of
-- p_steps). Rows: first one verdict per step of p_steps, in that order (accepted, step_state,
-- task_state as after the evaluation; step_uuid NULL), then one row per step started for this
-- worker, as complete_step's.
CREATE FUNCTION tasker.complete_steps(p_steps uuid[], p_worker_id text, p_results jsonb,
                                      p_policy tasker.backoff_policy, p_queues text[],
                                      p_handlers text[], p_next integer, p_lease_seconds integer)
RETURNS TABLE (accepted boolean, step_state varchar, task_state varchar, task_uuid uuid,
               step_uuid uuid, correlation_id uuid,
               namespace_name text, task_name text, task_version text, step_name text,
               handler text, attempts integer, max_attempts integer, retryable boolean,
               timeout_seconds integer, lease_expires_at timestamptz, context jsonb,
               config jsonb, dependency_results jsonb, parents jsonb)
LANGUAGE plpgsql ROWS 4
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_task uuid;
    v_task_state varchar;
    v_applied varchar[] := '{}';
    v_next uuid[] := '{}';
    v_ready uuid[];
    i integer;
BEGIN
    IF cardinality(p_steps) IS NULL OR jsonb_typeof(p_results) IS DISTINCT FROM 'array'
       OR cardinality(p_steps) <> jsonb_array_length(p_results) THEN
        RAISE EXCEPTION 'complete_steps: one result per step, as a JSON array, is required';
    END IF;
    SELECT t.task_uuid, t.state INTO v_task, v_task_state
    FROM tasker.tasks t
    WHERE t.task_uuid = (SELECT ws.task_uuid FROM tasker.workflow_steps ws
                         WHERE ws.workflow_step_uuid = p_steps[1])
    FOR UPDATE OF t;
    IF EXISTS (SELECT 1 FROM tasker.workflow_steps ws
               WHERE ws.workflow_step_uuid = ANY (p_steps) AND ws.task_uuid <> v_task) THEN
        RAISE EXCEPTION 'complete_steps: the steps belong to more than one task';
    END IF;

    FOR i IN 1 .. cardinality(p_steps) LOOP
        v_applied := v_applied || CASE WHEN v_task IS NULL THEN NULL::varchar
                                       ELSE tasker.store_step_result(p_steps[i], p_worker_id,
                                                                     p_results->(i - 1),
                                                                     p_policy) END;
        IF v_applied[i] = 'waiting_for_retry' THEN
            PERFORM tasker.schedule_retry(v_task, p_steps[i]);
        ELSIF v_applied[i] = 'complete' AND v_task_state = 'steps_in_process'
              AND cardinality(v_next) < p_next THEN
            -- two results of the batch may make the same join ready
            v_ready := tasker.ready_children(v_task, p_steps[i], p_queues, p_handlers,
                                             p_next - cardinality(v_next));
            v_next := v_next || ARRAY(SELECT r FROM unnest(v_ready) r WHERE r <> ALL (v_next));
        END IF;
    END LOOP;
    IF cardinality(v_next) > 0 THEN
        v_next := tasker.start_steps(v_next, 'pending', p_worker_id, p_lease_seconds);
    END IF;
    IF v_task IS NOT NULL THEN
        v_task_state := tasker.evaluate_task(v_task);
    END IF;

    RETURN QUERY SELECT a.s IS NOT NULL, a.s, v_task_state, NULL::uuid, NULL::uuid, NULL::uuid,
                        NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
                        NULL::integer, NULL::integer, NULL::boolean, NULL::integer,
                        NULL::timestamptz, NULL::jsonb, NULL::jsonb, NULL::jsonb, NULL::jsonb
                 FROM unnest(v_applied) WITH ORDINALITY a(s, n) ORDER BY a.n;
    IF cardinality(v_next) > 0 THEN
        RETURN QUERY SELECT true, NULL::varchar, NULL::varchar, c.*
                     FROM tasker.claimed_steps(v_next) c;
    END IF;
END
$$;
