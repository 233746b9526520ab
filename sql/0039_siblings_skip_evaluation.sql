-- 0039_siblings_skip_evaluation.sql - complete_steps leaves evaluate_task out as complete_step
-- does since 0038, and both ask one function whether they may.
--
-- A call reporting siblings together (complete_steps, 0035: the diamond's middle steps, the
-- tree's leaves) evaluated the task after starting the continuation, as report_outcome did
-- before 0038. The same reasoning holds when every result of the call was a success that was
-- stored: the task was in steps_in_process and has the continuation in flight, so the
-- evaluation can only change something if a child of those steps is still pending (not
-- started for lack of room or of a handler: evaluate_task queues it) or a step of the task is
-- in error. tasker.continuation_leaves_nothing answers that for report_outcome (0038's test,
-- moved) and complete_steps. A call with a failure or a refused result evaluates as before.

-- True when no child of p_steps (steps of task p_task_uuid) is still pending and no step of
-- the task is in error: after a continuation started, evaluate_task would change nothing.
CREATE FUNCTION tasker.continuation_leaves_nothing(p_task_uuid uuid, p_steps uuid[])
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN NOT EXISTS (
               SELECT 1 FROM tasker.workflow_step_edges e
               CROSS JOIN LATERAL (
                   SELECT s.state FROM tasker.workflow_steps s
                   WHERE s.workflow_step_uuid = e.to_step_uuid
                   OFFSET 0) child
               WHERE e.from_step_uuid = ANY (p_steps) AND child.state = 'pending')
       AND NOT EXISTS (
               SELECT 1 FROM tasker.workflow_steps s
               WHERE s.task_uuid = p_task_uuid AND s.state = 'error');
END
$$;

-- 0038's report_outcome, asking continuation_leaves_nothing.
CREATE OR REPLACE FUNCTION tasker.report_outcome(p_task_uuid uuid, p_task_state varchar,
                                                 p_step_uuid uuid, p_applied varchar,
                                                 p_worker_id text, p_queues text[],
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
    v_next uuid[];
BEGIN
    IF p_applied = 'complete' AND p_task_state = 'steps_in_process' THEN
        v_next := tasker.ready_children(p_task_uuid, p_step_uuid, p_queues, p_handlers, p_next);
        IF cardinality(v_next) > 0 THEN
            v_next := tasker.start_steps(v_next, 'pending', p_worker_id, p_lease_seconds);
        END IF;
    END IF;
    IF cardinality(v_next) > 0
       AND tasker.continuation_leaves_nothing(p_task_uuid, ARRAY[p_step_uuid]) THEN
        task_state := p_task_state; -- what evaluate_task would find (0038)
    ELSE
        task_state := tasker.evaluate_task(p_task_uuid);
    END IF;
    accepted := true;
    step_state := p_applied;
    RETURN NEXT; -- the verdict row (no step)
    IF cardinality(v_next) > 0 THEN
        RETURN QUERY SELECT true, NULL::varchar, NULL::varchar, c.*
                     FROM tasker.claimed_steps(v_next) c;
    END IF;
END
$$;

-- 0035's complete_steps, leaving the evaluation out as report_outcome does.
CREATE OR REPLACE FUNCTION tasker.complete_steps(p_steps uuid[], p_worker_id text,
                                                 p_results jsonb,
                                                 p_policy tasker.backoff_policy,
                                                 p_queues text[], p_handlers text[],
                                                 p_next integer, p_lease_seconds integer)
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
    v_stored uuid[];
    v_applied varchar[] := '{}';
    v_next uuid[] := '{}';
    v_guard text;
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

    -- the successes, in_progress -> enqueued_for_orchestration -> complete, in one statement
    v_guard := set_config('tasker.recorded_path', 'on', true);
    WITH ok AS (
        SELECT s.step, p_results->(s.i::integer - 1) AS result
        FROM unnest(p_steps) WITH ORDINALITY s(step, i)
        WHERE coalesce((p_results->(s.i::integer - 1)->>'success')::boolean, false)),
    stored AS (
        UPDATE tasker.workflow_steps ws
        SET state = 'complete', results = ok.result, state_entered_at = now(),
            updated_at = now(), processed_at = now(), lease_owner = NULL, lease_expires_at = NULL
        FROM ok
        WHERE ws.workflow_step_uuid = ok.step AND ws.state = 'in_progress'
          AND ws.lease_owner = p_worker_id
        RETURNING ws.workflow_step_uuid,
                  ok.result->'metadata'->'execution_time_ms' AS execution_time_ms),
    history AS (
        INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state,
                                                      event, metadata, created_at)
        SELECT s.workflow_step_uuid, 'in_progress', 'enqueued_for_orchestration',
               'enqueue_for_orchestration',
               jsonb_build_object('worker_id', p_worker_id, 'execution_time_ms',
                                  s.execution_time_ms),
               clock_timestamp()
        FROM stored s
        UNION ALL
        SELECT s.workflow_step_uuid, 'enqueued_for_orchestration', 'complete', 'complete', '{}',
               clock_timestamp() + interval '1 microsecond'
        FROM stored s)
    SELECT coalesce(array_agg(s.workflow_step_uuid), '{}') INTO v_stored FROM stored s;
    v_guard := set_config('tasker.recorded_path', 'off', true);

    -- the verdicts in order; failures one by one, each to its retry or error
    FOR i IN 1 .. cardinality(p_steps) LOOP
        IF coalesce((p_results->(i - 1)->>'success')::boolean, false) THEN
            v_applied := v_applied || CASE WHEN p_steps[i] = ANY (v_stored)
                                           THEN 'complete'::varchar END;
        ELSE
            v_applied := v_applied || CASE WHEN v_task IS NULL THEN NULL::varchar
                                           ELSE tasker.store_step_result(p_steps[i], p_worker_id,
                                                                         p_results->(i - 1),
                                                                         p_policy) END;
            IF v_applied[i] = 'waiting_for_retry' THEN
                PERFORM tasker.schedule_retry(v_task, p_steps[i]);
            END IF;
        END IF;
    END LOOP;

    IF v_task_state = 'steps_in_process' AND cardinality(v_stored) > 0 THEN
        v_next := tasker.ready_children_of(v_task, v_stored, p_queues, p_handlers, p_next);
        IF cardinality(v_next) > 0 THEN
            v_next := tasker.start_steps(v_next, 'pending', p_worker_id, p_lease_seconds);
        END IF;
    END IF;
    IF cardinality(v_next) > 0 AND cardinality(v_stored) = cardinality(p_steps)
       AND tasker.continuation_leaves_nothing(v_task, v_stored) THEN
        NULL; -- still steps_in_process, nothing to queue (see the header)
    ELSIF v_task IS NOT NULL THEN
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
