-- 0006_hot_path.sql - faster hot paths, same behaviour.
--
-- Measured on the linear-4 workflow (track_functions): a LANGUAGE sql function that cannot be
-- inlined is planned again on every call (step_transition_event cost 0.21 ms a call); the
-- REST response was computed up to three times per wait_ms request; result processing paid a
-- durable commit per step. Changes:
-- * the transition-event lookups are plpgsql, whose plans are cached per session;
-- * apply_step_result moves the step with one UPDATE and one INSERT of known event;
-- * process_step_results commits with synchronous_commit = off unless a task reached a
--   terminal state in the batch. Safe: the result it applies was stored durably by
--   complete_step together with its message; if a crash loses this commit, the message is
--   still there and the result is applied again. Final states stay durable before anyone is
--   told (the task-finished notification fires at commit).
-- * create_task can return a short answer (p_full = false) when the caller will wait for
--   the end anyway; task_response reads each step's readiness once;
-- * task_response_if_done: the state check a waiting request makes, building the full
--   response only when the task is terminal (or when asked).

CREATE OR REPLACE FUNCTION tasker.task_transition_event(p_from varchar, p_to varchar,
                                                        p_event varchar DEFAULT NULL)
RETURNS varchar LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT event FROM tasker.task_state_transitions
            WHERE from_state = p_from AND to_state = p_to AND (p_event IS NULL OR event = p_event)
            ORDER BY event LIMIT 1);
END
$$;

CREATE OR REPLACE FUNCTION tasker.step_transition_event(p_from varchar, p_to varchar,
                                                        p_event varchar DEFAULT NULL)
RETURNS varchar LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT event FROM tasker.step_state_transitions
            WHERE from_state = p_from AND to_state = p_to AND (p_event IS NULL OR event = p_event)
            ORDER BY event LIMIT 1);
END
$$;

CREATE OR REPLACE FUNCTION tasker.apply_step_result(p_step_uuid uuid, p_policy tasker.backoff_policy)
RETURNS varchar LANGUAGE plpgsql AS $$
DECLARE
    s record;
    v_to varchar;
    v_event varchar;
    v_delay integer;
BEGIN
    SELECT ws.state, ws.retryable, ws.attempts, ws.max_attempts, ws.results INTO s
    FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = p_step_uuid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    ELSIF s.state NOT IN ('enqueued_for_orchestration', 'enqueued_as_error_for_orchestration') THEN
        RETURN s.state; -- already applied (a duplicate message)
    END IF;

    IF s.state = 'enqueued_for_orchestration' AND coalesce((s.results->>'success')::boolean, false) THEN
        v_to := 'complete';
        v_event := 'complete';
    ELSIF s.state = 'enqueued_as_error_for_orchestration' AND s.retryable
          AND coalesce((s.results->'error'->>'retryable')::boolean,
                       (s.results->'metadata'->>'retryable')::boolean, true)
          AND s.attempts < s.max_attempts THEN
        v_to := 'waiting_for_retry';
        v_event := 'wait_for_retry';
        v_delay := tasker.retry_delay_seconds(
            p_policy, s.attempts, (s.results->'error'->>'retry_after_seconds')::double precision);
    ELSE
        v_to := 'error';
        v_event := 'fail';
    END IF;

    UPDATE tasker.workflow_steps
    SET state = v_to,
        last_failure_at = CASE WHEN v_to = 'complete' THEN last_failure_at ELSE now() END,
        backoff_request_seconds = CASE WHEN v_to = 'waiting_for_retry' THEN v_delay
                                       ELSE backoff_request_seconds END
    WHERE workflow_step_uuid = p_step_uuid;
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event)
    VALUES (p_step_uuid, s.state, v_to, v_event);
    RETURN v_to;
END
$$;

-- Returns, besides 0005's columns, what the orchestrator logs and measures (the task's
-- correlation_id, and for a completed step the time since its claim), so that callers need no
-- join: joining the function's result to tasks made the planner hash whole tables per call.
DROP FUNCTION tasker.process_step_results(integer, tasker.backoff_policy);
CREATE FUNCTION tasker.process_step_results(p_limit integer, p_policy tasker.backoff_policy)
RETURNS TABLE (task_uuid uuid, step_uuid uuid, step_state varchar, task_state varchar,
               correlation_id uuid, step_latency_ms double precision)
LANGUAGE plpgsql ROWS 4 AS $$
DECLARE
    r record;
    v_final boolean := false;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true); -- see the header
    FOR r IN
        WITH picked AS (
            SELECT m.msg_id FROM tasker_mq.messages m
            WHERE m.queue_name = 'orchestration_step_results' AND m.vt <= clock_timestamp()
            ORDER BY m.msg_id
            LIMIT greatest(p_limit, 0)
            FOR UPDATE SKIP LOCKED),
        taken AS (
            DELETE FROM tasker_mq.messages m USING picked WHERE m.msg_id = picked.msg_id
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

-- The task's REST representation, reading each step's readiness once.
CREATE OR REPLACE FUNCTION tasker.task_response(p_task_uuid uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v jsonb;
BEGIN
    WITH r AS (
        SELECT * FROM tasker.step_readiness sr WHERE sr.task_uuid = p_task_uuid),
    c AS (
        SELECT count(*) AS total_steps,
               count(*) FILTER (WHERE current_state = 'pending') AS pending_steps,
               count(*) FILTER (WHERE current_state = 'in_progress') AS in_progress_steps,
               count(*) FILTER (WHERE current_state IN ('complete', 'resolved_manually')) AS completed_steps,
               count(*) FILTER (WHERE current_state = 'error') AS failed_steps,
               count(*) FILTER (WHERE ready_for_execution) AS ready_steps,
               count(*) FILTER (WHERE current_state = 'waiting_for_retry') AS retrying_steps,
               count(*) FILTER (WHERE current_state IN ('enqueued', 'enqueued_for_orchestration',
                                                        'enqueued_as_error_for_orchestration')) AS enqueued_steps,
               coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.workflow_step_uuid), '[]') AS steps
        FROM r)
    SELECT jsonb_build_object(
        'task_uuid', t.task_uuid, 'name', nt.name, 'namespace', ns.name, 'version', nt.version,
        'status', t.state, 'created_at', t.created_at, 'updated_at', t.updated_at,
        'completed_at', t.completed_at, 'context', t.context, 'initiator', t.initiator,
        'source_system', t.source_system, 'reason', t.reason, 'priority', t.priority,
        'tags', t.tags, 'correlation_id', t.correlation_id,
        'parent_correlation_id', t.parent_correlation_id,
        'total_steps', c.total_steps, 'pending_steps', c.pending_steps,
        'in_progress_steps', c.in_progress_steps, 'completed_steps', c.completed_steps,
        'failed_steps', c.failed_steps, 'ready_steps', c.ready_steps,
        'execution_status', CASE WHEN c.failed_steps > 0 THEN 'blocked_by_failures'
                                 WHEN c.ready_steps > 0 THEN 'has_ready_steps'
                                 WHEN c.enqueued_steps + c.in_progress_steps > 0 THEN 'processing'
                                 WHEN c.completed_steps = c.total_steps AND c.total_steps > 0 THEN 'all_complete'
                                 ELSE 'waiting_for_dependencies' END,
        'recommended_action', CASE WHEN c.failed_steps > 0 THEN 'handle_failures'
                                   WHEN c.ready_steps > 0 THEN 'execute_ready_steps'
                                   WHEN c.enqueued_steps + c.in_progress_steps > 0 THEN 'wait_for_completion'
                                   WHEN c.completed_steps = c.total_steps AND c.total_steps > 0 THEN 'finalize_task'
                                   ELSE 'wait_for_dependencies' END,
        'completion_percentage', CASE WHEN c.total_steps = 0 THEN 0
                                      ELSE round(c.completed_steps::numeric * 100 / c.total_steps, 2)::float8 END,
        'health_status', CASE WHEN c.failed_steps > 0 THEN 'blocked'
                              WHEN c.retrying_steps > 0 THEN 'recovering'
                              ELSE 'healthy' END,
        'steps', c.steps)
    INTO v
    FROM tasker.tasks t
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    CROSS JOIN c
    WHERE t.task_uuid = p_task_uuid;
    RETURN v;
END
$$;

-- For wait_ms: whether the task is terminal (NULL: no such task) and, when it is or when
-- p_always, its full response.
CREATE FUNCTION tasker.task_response_if_done(p_task_uuid uuid, p_always boolean,
                                             OUT terminal boolean, OUT response jsonb)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT t.state IN ('complete', 'error', 'cancelled', 'resolved_manually') INTO terminal
    FROM tasker.tasks t WHERE t.task_uuid = p_task_uuid;
    IF terminal OR (terminal IS NOT NULL AND p_always) THEN
        response := tasker.task_response(p_task_uuid);
    END IF;
END
$$;

-- Task creation proper (the body of 0005's create_task): returns the new task's uuid.
CREATE FUNCTION tasker.create_task_row(p_request jsonb) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_nt record;
    v_task uuid;
BEGIN
    SELECT nt.named_task_uuid, nt.configuration, nt.identity_strategy INTO v_nt
    FROM tasker.named_tasks nt
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    WHERE ns.name = p_request->>'namespace' AND nt.name = p_request->>'name'
      AND nt.version = p_request->>'version';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'template %/%/% is not registered', p_request->>'namespace',
            p_request->>'name', p_request->>'version' USING ERRCODE = 'P0002';
    END IF;

    INSERT INTO tasker.tasks (named_task_uuid, identity_hash, context, initiator, source_system,
                              reason, tags, priority, correlation_id, parent_correlation_id)
    VALUES (v_nt.named_task_uuid,
            tasker.task_identity_hash(v_nt.named_task_uuid, v_nt.identity_strategy,
                                      p_request->'context', p_request->>'idempotency_key'),
            coalesce(p_request->'context', '{}'), p_request->>'initiator',
            p_request->>'source_system', p_request->>'reason',
            coalesce(p_request->'tags', '[]'), coalesce((p_request->>'priority')::integer, 0),
            coalesce((p_request->>'correlation_id')::uuid, tasker.uuid_generate_v7()),
            (p_request->>'parent_correlation_id')::uuid)
    RETURNING task_uuid INTO v_task;
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event)
    VALUES (v_task, NULL, 'pending', 'create');

    WITH defs AS (
        SELECT s FROM jsonb_array_elements(v_nt.configuration->'steps') s),
    created AS (
        INSERT INTO tasker.workflow_steps (task_uuid, named_step_uuid, retryable, max_attempts,
                                           inputs, handler_callable, timeout_seconds)
        SELECT v_task, n.named_step_uuid,
               coalesce((d.s->'retry'->>'retryable')::boolean, true),
               coalesce((d.s->'retry'->>'max_attempts')::integer, 3),
               coalesce(d.s->'handler'->'initialization', '{}'),
               d.s->'handler'->>'callable',
               (d.s->>'timeout_seconds')::integer
        FROM defs d JOIN tasker.named_steps n ON n.name = d.s->>'name'
        RETURNING workflow_step_uuid)
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event)
    SELECT workflow_step_uuid, NULL, 'pending', 'create' FROM created;

    INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid)
    SELECT parent.workflow_step_uuid, child.workflow_step_uuid
    FROM jsonb_array_elements(v_nt.configuration->'steps') s
    CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(s->'dependencies', '[]')) dep(name)
    JOIN tasker.named_steps cn ON cn.name = s->>'name'
    JOIN tasker.named_steps pn ON pn.name = dep.name
    JOIN tasker.workflow_steps child ON child.task_uuid = v_task AND child.named_step_uuid = cn.named_step_uuid
    JOIN tasker.workflow_steps parent ON parent.task_uuid = v_task AND parent.named_step_uuid = pn.named_step_uuid;

    PERFORM tasker.evaluate_task(v_task);
    RETURN v_task;
END
$$;

-- Two statements on purpose: task_response is STABLE and sees the snapshot of the statement
-- that calls it, which must start after create_task_row's inserts.
CREATE OR REPLACE FUNCTION tasker.create_task(p_request jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_task uuid;
BEGIN
    v_task := tasker.create_task_row(p_request);
    RETURN tasker.task_response(v_task);
END
$$;

-- create_task with a choice of answer: the full task_response (p_full), or only
-- {task_uuid, correlation_id, namespace, name, version, status} for callers that will wait.
CREATE FUNCTION tasker.create_task(p_request jsonb, p_full boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_task uuid := tasker.create_task_row(p_request);
BEGIN
    IF p_full THEN
        RETURN tasker.task_response(v_task);
    END IF;
    RETURN (SELECT jsonb_build_object('task_uuid', t.task_uuid, 'correlation_id', t.correlation_id,
                                      'namespace', p_request->>'namespace',
                                      'name', p_request->>'name',
                                      'version', p_request->>'version', 'status', t.state)
            FROM tasker.tasks t WHERE t.task_uuid = v_task);
END
$$;

-- The results of a step's ancestors by step name, and its direct parents' names: per
-- ancestor a primary-key lookup. OFFSET 0 keeps each LATERAL subquery a correlated probe:
-- without it the planner flattens it into a hash join over a sequential scan of
-- workflow_steps (it cannot estimate the recursive CTE's few rows), which grows with the
-- table.
CREATE FUNCTION tasker.step_dependency_results(p_step_uuid uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v jsonb;
BEGIN
    WITH RECURSIVE ancestors(step_uuid) AS (
        SELECT e.from_step_uuid FROM tasker.workflow_step_edges e WHERE e.to_step_uuid = p_step_uuid
        UNION
        SELECT e.from_step_uuid FROM ancestors a
        JOIN tasker.workflow_step_edges e ON e.to_step_uuid = a.step_uuid)
    SELECT jsonb_object_agg(x.name, x.result) INTO v
    FROM ancestors a
    CROSS JOIN LATERAL (
        SELECT n.name, ws.results->'result' AS result
        FROM tasker.workflow_steps ws
        JOIN tasker.named_steps n ON n.named_step_uuid = ws.named_step_uuid
        WHERE ws.workflow_step_uuid = a.step_uuid AND ws.results IS NOT NULL
        OFFSET 0) x;
    RETURN coalesce(v, '{}');
END
$$;

CREATE FUNCTION tasker.step_parent_names(p_step_uuid uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN coalesce((
        SELECT jsonb_agg(x.name ORDER BY x.name)
        FROM tasker.workflow_step_edges e
        CROSS JOIN LATERAL (
            SELECT n.name FROM tasker.workflow_steps p
            JOIN tasker.named_steps n ON n.named_step_uuid = p.named_step_uuid
            WHERE p.workflow_step_uuid = e.from_step_uuid
            OFFSET 0) x
        WHERE e.to_step_uuid = p_step_uuid), '[]');
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
DECLARE
    v_steps uuid[];
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true); -- see 0005's header: safe to lose
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

-- evaluate_task (0005) with one pass over the task's steps instead of three queries.
CREATE OR REPLACE FUNCTION tasker.evaluate_task(p_task_uuid uuid) RETURNS varchar
LANGUAGE plpgsql AS $$
DECLARE
    v_state varchar;
    v_target varchar;
    v_enqueued integer := 0;
    c record;
BEGIN
    SELECT state INTO v_state FROM tasker.tasks WHERE task_uuid = p_task_uuid FOR UPDATE;
    IF NOT FOUND OR v_state IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN
        RETURN v_state;
    END IF;

    SELECT count(*) AS total,
           count(*) FILTER (WHERE r.current_state IN ('complete', 'resolved_manually')) AS done,
           count(*) FILTER (WHERE r.current_state = 'error') AS failed,
           count(*) FILTER (WHERE r.current_state IN ('enqueued', 'in_progress',
                                                      'enqueued_for_orchestration',
                                                      'enqueued_as_error_for_orchestration')) AS in_flight,
           count(*) FILTER (WHERE r.current_state = 'waiting_for_retry') AS retrying,
           count(*) FILTER (WHERE r.ready_for_execution) AS ready
    INTO c FROM tasker.step_readiness r WHERE r.task_uuid = p_task_uuid;

    IF c.failed > 0 THEN
        v_target := CASE WHEN c.in_flight > 0 THEN 'blocked_by_failures' ELSE 'error' END;
    ELSE
        IF c.ready > 0 THEN
            v_enqueued := tasker.enqueue_ready_steps(p_task_uuid);
        END IF;
        v_target := CASE WHEN c.done = c.total THEN 'complete'
                         WHEN c.in_flight + v_enqueued > 0 THEN 'steps_in_process'
                         WHEN c.retrying > 0 THEN 'waiting_for_retry'
                         ELSE 'waiting_for_dependencies' END;
    END IF;

    IF v_target <> v_state THEN
        PERFORM tasker.move_task(p_task_uuid, v_state, v_target, v_enqueued > 0);
        IF v_target = 'error' THEN
            PERFORM tasker.dead_letter_task(p_task_uuid, v_state);
        END IF;
    END IF;
    RETURN v_target;
END
$$;
