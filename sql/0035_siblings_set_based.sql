-- 0035_siblings_set_based.sql - complete_steps (0034) stores its successes and finds the
-- children they made ready with one statement each, instead of one store and one probe per
-- result.
--
-- The tree's four leaves, reported in one call, cost four store_step_result calls (an UPDATE
-- and a history INSERT each) and four ready_children probes, the first three finding the
-- join still waiting for its other parents. Now: one UPDATE of every success, one INSERT of
-- their history rows, and one probe of the children of all of them. Failures, rare and each
-- with its own retry decision, still go through store_step_result one by one.
-- ready_children (0016) stays as it is for complete_step's single result: made a wrapper of
-- ready_children_of, a chain link's complete_step took 15-27 us more (three alternating
-- pairs of 1,500 warm calls), though the two probes alone cost the same (24 us).

-- The pending children of any of p_steps (one task's) that are ready now, as ready_children
-- (0016) finds them for one step: at most p_limit, for a worker serving the task's queue and
-- having their handler (p_handlers NULL: any), none of them twice.
CREATE FUNCTION tasker.ready_children_of(p_task_uuid uuid, p_steps uuid[], p_queues text[],
                                         p_handlers text[], p_limit integer) RETURNS uuid[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_limit <= 0 OR cardinality(p_steps) = 0 OR NOT EXISTS (
            SELECT 1 FROM tasker.tasks t
            JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
            JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
            WHERE t.task_uuid = p_task_uuid AND 'worker_' || ns.name || '_queue' = ANY (p_queues)) THEN
        RETURN '{}';
    END IF;
    RETURN ARRAY(
        SELECT c.workflow_step_uuid
        FROM (SELECT DISTINCT e.to_step_uuid FROM tasker.workflow_step_edges e
              WHERE e.from_step_uuid = ANY (p_steps)) child
        CROSS JOIN LATERAL (
            SELECT s.* FROM tasker.workflow_steps s WHERE s.workflow_step_uuid = child.to_step_uuid
            OFFSET 0) c
        WHERE c.state = 'pending'
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
