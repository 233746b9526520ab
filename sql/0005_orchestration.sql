-- 0005_orchestration.sql - the orchestration hot paths, one SQL call (one round trip) each.
--
--   register_template   a worker or `tasker dev` registers a template version
--   create_task         POST /v1/tasks: task, steps, edges, history, root steps enqueued
--   claim_steps         a worker takes steps from its queues with a lease
--   extend_step_leases  the worker's heartbeat
--   complete_step       the worker stores a result and notifies orchestration
--   process_step_results the orchestrator applies results, retries with backoff, enqueues
--                       children and moves the task (evaluate_task)
--   sweep               recovery: expired leases, elapsed backoffs, stuck tasks, lost messages
--   cancel_task, reset_step, resolve_step_manually, complete_step_manually
--   task_response, step_response, list_tasks   the REST API's JSON, built in one query
--
-- Locking protocol (what makes any number of orchestrators and workers safe):
-- * Everything that changes a task's state, or the states of several of its steps, first
--   locks the task row (SELECT ... FOR UPDATE). Per transaction, tasks are locked in uuid
--   order, so two batches never deadlock. A worker's claim or completion touches only its own
--   step row, with a compare-and-swap on the step's state (and lease owner).
-- * Steps are queued in the same transaction that marks them enqueued, and results are sent
--   in the same transaction that stores them: a message exists exactly when its step is
--   waiting for it (no lost or phantom work after a crash).
-- * Claims and heartbeats commit with synchronous_commit = off: if the database crashes
--   before they reach disk, the step simply goes back to its queue and runs again, which
--   at-least-once handlers must tolerate anyway. Results, task creation and state changes
--   stay durable.

-- The step's handler, and its timeout, as declared by the template when the task was made,
-- so that re-registering a template never changes a running task.
ALTER TABLE tasker.workflow_steps
    ADD COLUMN handler_callable varchar(500) NOT NULL DEFAULT '',
    ADD COLUMN timeout_seconds integer CHECK (timeout_seconds > 0);

CREATE TYPE tasker.backoff_policy AS (
    base_seconds double precision,   -- delay after the first failure
    multiplier double precision,     -- growth per further failure
    max_seconds double precision,    -- cap (also on a handler's retry_after)
    jitter double precision          -- +- fraction, 0..1
);

SELECT tasker_mq."create"('orchestration_step_results');

-- Upsert a template: namespace, named task (configuration = the template as JSON), its step
-- names, and the namespace's worker queue. The template has been validated by the caller
-- (src/template); the namespace CHECK still guards the name. Returns the named task's uuid.
CREATE FUNCTION tasker.register_template(p_template jsonb) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_namespace text := p_template->>'namespace_name';
    v_ns_uuid uuid;
    v_nt_uuid uuid;
BEGIN
    INSERT INTO tasker.task_namespaces (name) VALUES (v_namespace) ON CONFLICT (name) DO NOTHING;
    SELECT task_namespace_uuid INTO v_ns_uuid FROM tasker.task_namespaces WHERE name = v_namespace;
    INSERT INTO tasker.named_tasks (task_namespace_uuid, name, version, description,
                                    configuration, identity_strategy)
    VALUES (v_ns_uuid, p_template->>'name', p_template->>'version', p_template->>'description',
            p_template,
            coalesce((p_template->>'identity_strategy')::tasker.identity_strategy, 'strict'))
    ON CONFLICT (task_namespace_uuid, name, version) DO UPDATE
        SET description = EXCLUDED.description, configuration = EXCLUDED.configuration,
            identity_strategy = EXCLUDED.identity_strategy, updated_at = now()
        WHERE named_tasks.configuration IS DISTINCT FROM EXCLUDED.configuration
           OR named_tasks.identity_strategy IS DISTINCT FROM EXCLUDED.identity_strategy;
    SELECT named_task_uuid INTO v_nt_uuid FROM tasker.named_tasks
    WHERE task_namespace_uuid = v_ns_uuid AND name = p_template->>'name'
      AND version = p_template->>'version';
    INSERT INTO tasker.named_steps (name)
    SELECT s->>'name' FROM jsonb_array_elements(p_template->'steps') s
    ON CONFLICT (name) DO NOTHING;
    PERFORM tasker_mq."create"('worker_' || v_namespace || '_queue');
    RETURN v_nt_uuid;
END
$$;

-- Identity of a task request (Tasker's rules): an idempotency key wins; otherwise the named
-- task's strategy: strict = the context (jsonb text is canonical: keys sorted, no spacing
-- differences), always_unique = a fresh uuid, caller_provided = the key is required.
CREATE FUNCTION tasker.task_identity_hash(p_named_task_uuid uuid, p_strategy tasker.identity_strategy,
                                          p_context jsonb, p_idempotency_key text)
RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_idempotency_key IS NOT NULL THEN
        RETURN encode(sha256(convert_to(p_named_task_uuid::text || ':key:' || p_idempotency_key, 'UTF8')), 'hex');
    ELSIF p_strategy = 'always_unique' THEN
        RETURN tasker.uuid_generate_v7()::text;
    ELSIF p_strategy = 'caller_provided' THEN
        RAISE EXCEPTION 'idempotency_key is required: this template identifies tasks by a caller-provided key'
            USING ERRCODE = '22023';
    END IF;
    RETURN encode(sha256(convert_to(p_named_task_uuid::text || ':ctx:' || coalesce(p_context, '{}')::text, 'UTF8')), 'hex');
END
$$;

-- Move a task along the legal path from its current state p_from to p_to, recording every
-- hop. The caller holds the task's row lock. p_enqueued: steps were just queued (the path to
-- steps_in_process then goes through enqueuing_steps). Sends the task-finished notification
-- when p_to is terminal.
CREATE FUNCTION tasker.move_task(p_task_uuid uuid, p_from varchar, p_to varchar,
                                 p_enqueued boolean, p_metadata jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_state varchar := p_from;
    v_next varchar;
    v_hops integer := 0;
BEGIN
    WHILE v_state <> p_to LOOP
        v_next := CASE
            -- steps were queued: say so on the way (ready_steps_found, steps_enqueued)
            WHEN p_to = 'steps_in_process' AND p_enqueued
                 AND v_state IN ('initializing', 'evaluating_results', 'waiting_for_retry')
                THEN 'enqueuing_steps'
            WHEN tasker.task_transition_event(v_state, p_to) IS NOT NULL THEN p_to
            WHEN v_state = 'pending' THEN 'initializing'
            ELSE 'evaluating_results' END;
        IF NOT tasker.transition_task_state_atomic(p_task_uuid, v_state, v_next, NULL, p_metadata) THEN
            RAISE EXCEPTION 'task % left state % while locked', p_task_uuid, v_state;
        END IF;
        v_state := v_next;
        v_hops := v_hops + 1;
        IF v_hops > 6 THEN
            RAISE EXCEPTION 'no path for task % from % to %', p_task_uuid, p_from, p_to;
        END IF;
    END LOOP;
    IF p_to IN ('complete', 'error', 'cancelled', 'resolved_manually') AND p_from <> p_to THEN
        PERFORM pg_notify('tasker_task_finished',
                          json_build_object('task_uuid', p_task_uuid, 'status', p_to)::text);
    END IF;
END
$$;

-- Queue every ready step of a task: waiting_for_retry -> pending -> enqueued, pending ->
-- enqueued, and one message per step on worker_<namespace>_queue (one send per call). The
-- caller holds the task's row lock. Returns how many steps were queued.
CREATE FUNCTION tasker.enqueue_ready_steps(p_task_uuid uuid) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_ready uuid[];
    v_msgs jsonb[];
    v_queue text;
BEGIN
    SELECT array_agg(r.workflow_step_uuid ORDER BY r.workflow_step_uuid) INTO v_ready
    FROM tasker.step_readiness r
    WHERE r.task_uuid = p_task_uuid AND r.ready_for_execution;
    IF v_ready IS NULL THEN
        RETURN 0;
    END IF;

    WITH retried AS (
        UPDATE tasker.workflow_steps ws SET state = 'pending'
        WHERE ws.workflow_step_uuid = ANY (v_ready) AND ws.state = 'waiting_for_retry'
        RETURNING ws.workflow_step_uuid)
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event)
    SELECT workflow_step_uuid, 'waiting_for_retry', 'pending', 'retry' FROM retried;

    WITH queued AS (
        UPDATE tasker.workflow_steps ws SET state = 'enqueued'
        WHERE ws.workflow_step_uuid = ANY (v_ready) AND ws.state = 'pending'
        RETURNING ws.workflow_step_uuid, ws.handler_callable),
    history AS (
        INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event)
        SELECT workflow_step_uuid, 'pending', 'enqueued', 'enqueue' FROM queued)
    SELECT array_agg(jsonb_build_object('task_uuid', p_task_uuid,
                                        'step_uuid', q.workflow_step_uuid,
                                        'correlation_id', t.correlation_id,
                                        'handler', q.handler_callable)
                     ORDER BY q.workflow_step_uuid),
           min('worker_' || ns.name || '_queue')
    INTO v_msgs, v_queue
    FROM queued q
    JOIN tasker.tasks t ON t.task_uuid = p_task_uuid
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid;

    IF v_msgs IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM tasker_mq.send_batch(v_queue, v_msgs);
    RETURN cardinality(v_msgs);
END
$$;

-- Decide what a task does next and do it; the single place where task states are chosen.
-- Locks the task. A step in error: the task waits for the steps still running
-- (blocked_by_failures) and then ends in error (with a DLQ entry when retries ran out).
-- Otherwise ready steps are queued; every step complete -> complete; something queued or
-- running -> steps_in_process; a step waiting out its backoff -> waiting_for_retry; else
-- waiting_for_dependencies. Terminal tasks are left alone. Returns the task's state.
CREATE FUNCTION tasker.evaluate_task(p_task_uuid uuid) RETURNS varchar
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

    SELECT count(*) FILTER (WHERE state = 'error') AS failed,
           count(*) FILTER (WHERE state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration',
                                            'enqueued_as_error_for_orchestration')) AS in_flight
    INTO c FROM tasker.workflow_steps WHERE task_uuid = p_task_uuid;
    IF c.failed > 0 THEN
        v_target := CASE WHEN c.in_flight > 0 THEN 'blocked_by_failures' ELSE 'error' END;
    ELSE
        v_enqueued := tasker.enqueue_ready_steps(p_task_uuid);
        SELECT count(*) AS total,
               count(*) FILTER (WHERE state IN ('complete', 'resolved_manually')) AS done,
               count(*) FILTER (WHERE state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration',
                                                'enqueued_as_error_for_orchestration')) AS in_flight,
               count(*) FILTER (WHERE state = 'waiting_for_retry') AS retrying
        INTO c FROM tasker.workflow_steps WHERE task_uuid = p_task_uuid;
        v_target := CASE WHEN c.done = c.total THEN 'complete'
                         WHEN c.in_flight > 0 THEN 'steps_in_process'
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

-- Open a DLQ entry for a task that ended in error because a step ran out of attempts or
-- failed permanently (reason max_retries_exceeded), with a snapshot of its steps.
CREATE FUNCTION tasker.dead_letter_task(p_task_uuid uuid, p_original_state varchar,
                                        p_reason tasker.dlq_reason DEFAULT 'max_retries_exceeded')
RETURNS uuid LANGUAGE sql AS $$
    INSERT INTO tasker.tasks_dlq (task_uuid, original_state, dlq_reason, task_snapshot, metadata)
    SELECT t.task_uuid, p_original_state, p_reason,
           jsonb_build_object(
               'task_uuid', t.task_uuid, 'correlation_id', t.correlation_id,
               'context', t.context, 'priority', t.priority, 'created_at', t.created_at,
               'steps', (SELECT jsonb_agg(jsonb_build_object(
                                 'step_uuid', ws.workflow_step_uuid, 'name', ns.name,
                                 'state', ws.state, 'attempts', ws.attempts,
                                 'max_attempts', ws.max_attempts, 'results', ws.results)
                             ORDER BY ws.workflow_step_uuid)
                         FROM tasker.workflow_steps ws
                         JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
                         WHERE ws.task_uuid = t.task_uuid)),
           jsonb_build_object('detection_method', 'step_failure')
    FROM tasker.tasks t WHERE t.task_uuid = p_task_uuid
    ON CONFLICT (task_uuid) WHERE resolution_status = 'pending' DO NOTHING
    RETURNING dlq_entry_uuid
$$;

-- The task's full REST representation (Tasker's TaskResponse) as JSON, or NULL.
CREATE FUNCTION tasker.task_response(p_task_uuid uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
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
        'execution_status', c.execution_status, 'recommended_action', c.recommended_action,
        'completion_percentage', c.completion_percentage::float8, 'health_status', c.health_status,
        'steps', coalesce((SELECT jsonb_agg(to_jsonb(r) ORDER BY r.workflow_step_uuid)
                           FROM tasker.step_readiness r WHERE r.task_uuid = t.task_uuid), '[]'))
    FROM tasker.tasks t
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    JOIN tasker.task_execution_context c ON c.task_uuid = t.task_uuid
    WHERE t.task_uuid = p_task_uuid
$$;

-- One step's REST representation (Tasker's StepResponse) as JSON, or NULL when the step is
-- not a step of that task.
CREATE FUNCTION tasker.step_response(p_task_uuid uuid, p_step_uuid uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'step_uuid', ws.workflow_step_uuid, 'task_uuid', ws.task_uuid, 'name', r.name,
        'handler', ws.handler_callable,
        'created_at', ws.created_at, 'updated_at', ws.updated_at,
        'completed_at', ws.processed_at, 'results', ws.results,
        'current_state', ws.state, 'dependencies_satisfied', r.dependencies_satisfied,
        'retry_eligible', r.retry_eligible, 'ready_for_execution', r.ready_for_execution,
        'total_parents', r.total_parents, 'completed_parents', r.completed_parents,
        'attempts', ws.attempts, 'max_attempts', ws.max_attempts, 'retryable', ws.retryable,
        'last_failure_at', ws.last_failure_at, 'next_retry_at', r.next_retry_at,
        'last_attempted_at', ws.last_attempted_at, 'lease_owner', ws.lease_owner,
        'lease_expires_at', ws.lease_expires_at)
    FROM tasker.workflow_steps ws
    JOIN tasker.step_readiness r ON r.workflow_step_uuid = ws.workflow_step_uuid
    WHERE ws.workflow_step_uuid = p_step_uuid AND ws.task_uuid = p_task_uuid
$$;

CREATE FUNCTION tasker.task_steps_response(p_task_uuid uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(tasker.step_response(ws.task_uuid, ws.workflow_step_uuid)
                              ORDER BY ws.created_at, ws.workflow_step_uuid), '[]')
    FROM tasker.workflow_steps ws WHERE ws.task_uuid = p_task_uuid
$$;

-- POST /v1/tasks. p_request is Tasker's TaskRequest: name, namespace, version, context,
-- initiator, source_system, reason, tags, priority, correlation_id, parent_correlation_id,
-- idempotency_key. In one transaction: the task, its steps (with the template's retry
-- settings, handler and initialization), edges, creation history, then evaluate_task queues
-- the root steps. Returns the task_response. Errors: unknown template -> P0002; duplicate
-- identity -> 23505 (unique violation); caller_provided without key -> 22023.
CREATE FUNCTION tasker.create_task(p_request jsonb) RETURNS jsonb
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
    RETURN tasker.task_response(v_task);
END
$$;

-- A worker takes up to p_limit steps from p_queues whose handler it has (p_handlers; NULL:
-- any). Each message is removed; its step moves enqueued -> in_progress with attempts + 1
-- and a lease for p_lease_seconds owned by p_worker_id. A message whose step is no longer
-- enqueued (cancelled, already taken) is dropped. Returns what the handler needs: task
-- context, step config, the results of every ancestor by step name, the names of its
-- direct parents.
CREATE FUNCTION tasker.claim_steps(p_queues text[], p_handlers text[], p_limit integer,
                                   p_worker_id text, p_lease_seconds integer)
RETURNS TABLE (task_uuid uuid, step_uuid uuid, correlation_id uuid, namespace_name text,
               task_name text, task_version text, step_name text, handler text,
               attempts integer, max_attempts integer, retryable boolean,
               timeout_seconds integer, lease_expires_at timestamptz, context jsonb,
               config jsonb, dependency_results jsonb, parents jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_steps uuid[];
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true); -- see the header: safe to lose
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
    SELECT c.task_uuid, c.workflow_step_uuid, t.correlation_id, ns.name::text, nt.name::text,
           nt.version::text, sn.name::text, c.handler_callable::text, c.attempts,
           c.max_attempts, c.retryable, c.timeout_seconds, c.lease_expires_at, t.context,
           c.inputs,
           coalesce((SELECT jsonb_object_agg(d.step_name, d.results->'result')
                     FROM tasker.get_step_transitive_dependencies(c.workflow_step_uuid) d
                     WHERE d.results IS NOT NULL), '{}'),
           coalesce((SELECT jsonb_agg(pn.name ORDER BY pn.name)
                     FROM tasker.workflow_step_edges e
                     JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
                     JOIN tasker.named_steps pn ON pn.named_step_uuid = p.named_step_uuid
                     WHERE e.to_step_uuid = c.workflow_step_uuid), '[]')
    FROM claimed c
    JOIN tasker.tasks t ON t.task_uuid = c.task_uuid
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    JOIN tasker.named_steps sn ON sn.named_step_uuid = c.named_step_uuid;
END
$$;

-- Heartbeat: push back the lease of the given steps that p_worker_id still holds. Returns the
-- steps whose lease was extended (a step missing from the answer is no longer ours).
CREATE FUNCTION tasker.extend_step_leases(p_worker_id text, p_steps uuid[], p_lease_seconds integer)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true); -- a lost heartbeat only shortens a lease
    RETURN QUERY
    UPDATE tasker.workflow_steps ws
    SET lease_expires_at = now() + make_interval(secs => p_lease_seconds)
    WHERE ws.workflow_step_uuid = ANY (p_steps) AND ws.state = 'in_progress'
      AND ws.lease_owner = p_worker_id
    RETURNING ws.workflow_step_uuid;
END
$$;

-- A worker reports a handler's result (Tasker's StepExecutionResult JSON: success, result,
-- error{message, error_type, retryable, retry_after_seconds, backtrace}, metadata). Accepted
-- only while the worker holds the step's lease; the step moves to enqueued_for_orchestration
-- (success) or enqueued_as_error_for_orchestration and a message goes to
-- orchestration_step_results, in one transaction. Returns false if the lease was lost.
CREATE FUNCTION tasker.complete_step(p_step_uuid uuid, p_worker_id text, p_result jsonb)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_ok boolean := coalesce((p_result->>'success')::boolean, false);
    v_task uuid;
BEGIN
    UPDATE tasker.workflow_steps ws
    SET state = CASE WHEN v_ok THEN 'enqueued_for_orchestration'
                     ELSE 'enqueued_as_error_for_orchestration' END,
        results = p_result
    WHERE ws.workflow_step_uuid = p_step_uuid AND ws.state = 'in_progress'
      AND ws.lease_owner = p_worker_id
    RETURNING ws.task_uuid INTO v_task;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event, metadata)
    VALUES (p_step_uuid, 'in_progress',
            CASE WHEN v_ok THEN 'enqueued_for_orchestration' ELSE 'enqueued_as_error_for_orchestration' END,
            CASE WHEN v_ok THEN 'enqueue_for_orchestration' ELSE 'enqueue_as_error_for_orchestration' END,
            jsonb_build_object('worker_id', p_worker_id,
                               'execution_time_ms', p_result->'metadata'->'execution_time_ms'));
    PERFORM tasker_mq.send('orchestration_step_results',
                           jsonb_build_object('kind', 'step_result', 'task_uuid', v_task,
                                              'step_uuid', p_step_uuid,
                                              'correlation_id', (SELECT t.correlation_id FROM tasker.tasks t WHERE t.task_uuid = v_task)));
    RETURN true;
END
$$;

-- Delay before retrying a step that failed its p_attempts-th attempt: the handler's
-- retry_after_seconds if it gave one, else base * multiplier^(attempts - 1); capped at
-- max_seconds, then +- jitter. Whole seconds (backoff_request_seconds is an integer).
CREATE FUNCTION tasker.retry_delay_seconds(p_policy tasker.backoff_policy, p_attempts integer,
                                           p_retry_after double precision)
RETURNS integer LANGUAGE sql VOLATILE AS $$
    SELECT greatest(0, round(
        least(coalesce(p_retry_after,
                       p_policy.base_seconds * power(p_policy.multiplier, greatest(p_attempts - 1, 0))),
              p_policy.max_seconds)
        * (1 + p_policy.jitter * (2 * random() - 1))))::integer
$$;

-- Apply a stored result to its step (the caller holds the task's lock): success -> complete;
-- failure -> waiting_for_retry with a backoff when the step is retryable, the handler said
-- the error is retryable and attempts remain, else error. Anything else (already applied) is
-- left alone. Returns the step's state.
CREATE FUNCTION tasker.apply_step_result(p_step_uuid uuid, p_policy tasker.backoff_policy)
RETURNS varchar LANGUAGE plpgsql AS $$
DECLARE
    s record;
    v_retry boolean;
BEGIN
    SELECT ws.state, ws.retryable, ws.attempts, ws.max_attempts, ws.results INTO s
    FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = p_step_uuid FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    ELSIF s.state = 'enqueued_for_orchestration' AND coalesce((s.results->>'success')::boolean, false) THEN
        PERFORM tasker.transition_step_state_atomic(p_step_uuid, s.state, 'complete');
        RETURN 'complete';
    ELSIF s.state NOT IN ('enqueued_for_orchestration', 'enqueued_as_error_for_orchestration') THEN
        RETURN s.state;
    END IF;

    v_retry := s.state = 'enqueued_as_error_for_orchestration' AND s.retryable
               AND coalesce((s.results->'error'->>'retryable')::boolean,
                            (s.results->'metadata'->>'retryable')::boolean, true)
               AND s.attempts < s.max_attempts;
    IF v_retry THEN
        UPDATE tasker.workflow_steps
        SET last_failure_at = now(),
            backoff_request_seconds = tasker.retry_delay_seconds(
                p_policy, s.attempts, (s.results->'error'->>'retry_after_seconds')::double precision)
        WHERE workflow_step_uuid = p_step_uuid;
        PERFORM tasker.transition_step_state_atomic(p_step_uuid, s.state, 'waiting_for_retry');
        RETURN 'waiting_for_retry';
    END IF;
    UPDATE tasker.workflow_steps SET last_failure_at = now() WHERE workflow_step_uuid = p_step_uuid;
    PERFORM tasker.transition_step_state_atomic(p_step_uuid, s.state, 'error');
    RETURN 'error';
END
$$;

-- After a step goes to waiting_for_retry, a message to orchestration that becomes visible when
-- the backoff ends brings the task back at the right time (the sweeper is only a fallback).
CREATE FUNCTION tasker.schedule_retry(p_task_uuid uuid, p_step_uuid uuid) RETURNS void
LANGUAGE sql AS $$
    SELECT tasker_mq.send('orchestration_step_results',
                          jsonb_build_object('kind', 'evaluate', 'task_uuid', p_task_uuid,
                                             'step_uuid', p_step_uuid),
                          coalesce(ws.backoff_request_seconds, 0))
    FROM tasker.workflow_steps ws WHERE ws.workflow_step_uuid = p_step_uuid
$$;

-- The orchestrator's main call: take up to p_limit messages from orchestration_step_results,
-- and for each (tasks locked in uuid order) apply the step's result and evaluate its task.
-- Returns one row per message processed.
CREATE FUNCTION tasker.process_step_results(p_limit integer, p_policy tasker.backoff_policy)
RETURNS TABLE (task_uuid uuid, step_uuid uuid, step_state varchar, task_state varchar)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
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
        PERFORM 1 FROM tasker.tasks t WHERE t.task_uuid = r.task_uuid FOR UPDATE;
        task_uuid := r.task_uuid;
        step_uuid := r.step_uuid;
        step_state := NULL;
        IF r.kind = 'step_result' THEN
            step_state := tasker.apply_step_result(r.step_uuid, p_policy);
            IF step_state = 'waiting_for_retry' THEN
                PERFORM tasker.schedule_retry(r.task_uuid, r.step_uuid);
            END IF;
        END IF;
        task_state := tasker.evaluate_task(r.task_uuid);
        RETURN NEXT;
    END LOOP;
END
$$;

-- Recovery, run every few seconds by each orchestrator (concurrent sweeps skip each other's
-- tasks). Each part handles at most p_limit items:
-- * expired leases (the worker died): the step goes back to its queue (lease_expired) while
--   it is retryable with attempts left, else it fails with error_type worker_lost;
-- * steps waiting out a backoff that has elapsed, and tasks that have sat in any non-terminal
--   state longer than p_stuck_seconds: their task is evaluated again;
-- * steps left enqueued or enqueued_*_for_orchestration longer than p_stuck_seconds whose
--   message is gone (e.g. a purged queue): the message is sent again.
-- Returns counts: {"leases": n, "retries": n, "stuck": n, "resent": n}.
CREATE FUNCTION tasker.sweep(p_policy tasker.backoff_policy, p_stuck_seconds integer,
                             p_limit integer DEFAULT 100)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_leases integer := 0;
    v_retries integer := 0;
    v_stuck integer := 0;
    v_resent integer := 0;
    v_stuck_before timestamptz := now() - make_interval(secs => p_stuck_seconds);
BEGIN
    FOR r IN
        SELECT ws.task_uuid, ws.workflow_step_uuid FROM tasker.workflow_steps ws
        JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
        WHERE ws.state = 'in_progress' AND ws.lease_expires_at < now()
          AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
        ORDER BY ws.task_uuid, ws.workflow_step_uuid LIMIT p_limit
    LOOP
        PERFORM 1 FROM tasker.tasks t WHERE t.task_uuid = r.task_uuid FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        PERFORM tasker.expire_lease(r.workflow_step_uuid);
        PERFORM tasker.evaluate_task(r.task_uuid);
        v_leases := v_leases + 1;
    END LOOP;

    FOR r IN
        SELECT DISTINCT ws.task_uuid FROM tasker.workflow_steps ws
        JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
        WHERE ws.state = 'waiting_for_retry'
          AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
          AND (ws.last_failure_at IS NULL OR ws.backoff_request_seconds IS NULL
               OR ws.last_failure_at + make_interval(secs => ws.backoff_request_seconds) <= now())
        ORDER BY ws.task_uuid LIMIT p_limit
    LOOP
        PERFORM 1 FROM tasker.tasks t WHERE t.task_uuid = r.task_uuid FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        PERFORM tasker.evaluate_task(r.task_uuid);
        v_retries := v_retries + 1;
    END LOOP;

    FOR r IN
        SELECT t.task_uuid FROM tasker.tasks t
        WHERE t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
          AND t.state_entered_at < v_stuck_before
          -- a task whose steps are simply still running is not stuck
          AND NOT EXISTS (SELECT 1 FROM tasker.workflow_steps ws
                          WHERE ws.task_uuid = t.task_uuid
                            AND ws.state IN ('enqueued', 'in_progress')
                            AND ws.state_entered_at >= v_stuck_before)
        ORDER BY t.state_entered_at LIMIT p_limit
        FOR UPDATE OF t SKIP LOCKED
    LOOP
        PERFORM tasker.evaluate_task(r.task_uuid);
        v_stuck := v_stuck + 1;
    END LOOP;

    FOR r IN
        SELECT ws.task_uuid, ws.workflow_step_uuid, ws.state, ws.handler_callable, t.correlation_id,
               'worker_' || ns.name || '_queue' AS queue
        FROM tasker.workflow_steps ws
        JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
        JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
        JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
        WHERE ws.state IN ('enqueued', 'enqueued_for_orchestration', 'enqueued_as_error_for_orchestration')
          AND ws.state_entered_at < v_stuck_before
          AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
          AND NOT EXISTS (SELECT 1 FROM tasker_mq.messages m
                          WHERE m.message @> jsonb_build_object('step_uuid', ws.workflow_step_uuid))
        ORDER BY ws.state_entered_at LIMIT p_limit
    LOOP
        IF r.state = 'enqueued' THEN
            PERFORM tasker_mq.send(r.queue, jsonb_build_object(
                'task_uuid', r.task_uuid, 'step_uuid', r.workflow_step_uuid,
                'correlation_id', r.correlation_id, 'handler', r.handler_callable));
        ELSE
            PERFORM tasker_mq.send('orchestration_step_results', jsonb_build_object(
                'kind', 'step_result', 'task_uuid', r.task_uuid,
                'step_uuid', r.workflow_step_uuid, 'correlation_id', r.correlation_id));
        END IF;
        v_resent := v_resent + 1;
    END LOOP;

    RETURN jsonb_build_object('leases', v_leases, 'retries', v_retries, 'stuck', v_stuck,
                              'resent', v_resent);
END
$$;

-- A step whose worker stopped heartbeating (the caller holds the task's lock): back to its
-- queue if it may run again, else failed with error_type worker_lost. Returns the new state,
-- or NULL if the lease is no longer expired.
CREATE FUNCTION tasker.expire_lease(p_step_uuid uuid) RETURNS varchar
LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    SELECT ws.*, t.correlation_id, 'worker_' || ns.name || '_queue' AS queue INTO s
    FROM tasker.workflow_steps ws
    JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    WHERE ws.workflow_step_uuid = p_step_uuid AND ws.state = 'in_progress'
      AND ws.lease_expires_at < now()
    FOR UPDATE OF ws;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF s.retryable AND s.attempts < s.max_attempts THEN
        PERFORM tasker.transition_step_state_atomic(
            p_step_uuid, 'in_progress', 'enqueued',
            jsonb_build_object('lease_owner', s.lease_owner, 'attempt', s.attempts));
        PERFORM tasker_mq.send(s.queue, jsonb_build_object(
            'task_uuid', s.task_uuid, 'step_uuid', p_step_uuid,
            'correlation_id', s.correlation_id, 'handler', s.handler_callable));
        RETURN 'enqueued';
    END IF;
    UPDATE tasker.workflow_steps
    SET last_failure_at = now(),
        results = jsonb_build_object(
            'step_uuid', p_step_uuid, 'success', false, 'status', 'error', 'result', '{}'::jsonb,
            'error', jsonb_build_object(
                'message', format('worker %s stopped heartbeating during attempt %s of %s',
                                  s.lease_owner, s.attempts, s.max_attempts),
                'error_type', 'worker_lost', 'retryable', false))
    WHERE workflow_step_uuid = p_step_uuid;
    PERFORM tasker.transition_step_state_atomic(p_step_uuid, 'in_progress', 'error',
                                                jsonb_build_object('lease_owner', s.lease_owner));
    RETURN 'error';
END
$$;

-- DELETE /v1/tasks/{uuid}: cancel every step that is not finished, then the task. Raises
-- P0002 for an unknown task and 22023 for a task that already finished. Returns the
-- task_response.
CREATE FUNCTION tasker.cancel_task(p_task_uuid uuid) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_state varchar;
BEGIN
    SELECT state INTO v_state FROM tasker.tasks WHERE task_uuid = p_task_uuid FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task % not found', p_task_uuid USING ERRCODE = 'P0002';
    ELSIF v_state IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN
        RAISE EXCEPTION 'cannot cancel task %: it already finished (%)', p_task_uuid, v_state
            USING ERRCODE = '22023';
    END IF;
    WITH cancelled AS (
        UPDATE tasker.workflow_steps ws SET state = 'cancelled'
        FROM tasker.workflow_steps old
        WHERE ws.task_uuid = p_task_uuid AND old.workflow_step_uuid = ws.workflow_step_uuid
          AND ws.state NOT IN ('complete', 'cancelled', 'resolved_manually')
        RETURNING ws.workflow_step_uuid, old.state AS from_state)
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event)
    SELECT workflow_step_uuid, from_state, 'cancelled', 'cancel' FROM cancelled;
    DELETE FROM tasker_mq.messages m
    WHERE m.message->>'task_uuid' = p_task_uuid::text
      AND (m.queue_name LIKE 'worker\_%\_queue' OR m.message->>'kind' = 'evaluate');
    PERFORM tasker.move_task(p_task_uuid, v_state, 'cancelled', false);
    RETURN tasker.task_response(p_task_uuid);
END
$$;

-- PATCH /v1/tasks/{task}/workflow_steps/{step}: an operator's action on one step, then the
-- task is evaluated again (and resumed from error or blocked_by_failures when the action
-- clears the last failure). p_action: reset_for_retry (error -> pending, attempts back to 0),
-- resolve_manually (any unfinished state -> resolved_manually), complete_manually (->
-- complete with p_result stored as the step's result, marked manually completed).
-- Raises P0002 for an unknown task/step, TK002 when the step's state does not allow it.
-- Returns the step_response.
CREATE FUNCTION tasker.step_manual_action(p_task_uuid uuid, p_step_uuid uuid, p_action text,
                                          p_actor text, p_reason text, p_result jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_task_state varchar;
    v_step_state varchar;
    v_to varchar;
    v_event varchar;
    v_meta jsonb := jsonb_strip_nulls(jsonb_build_object('actor', p_actor, 'reason', p_reason));
BEGIN
    SELECT state INTO v_task_state FROM tasker.tasks WHERE task_uuid = p_task_uuid FOR UPDATE;
    SELECT state INTO v_step_state FROM tasker.workflow_steps
    WHERE workflow_step_uuid = p_step_uuid AND task_uuid = p_task_uuid FOR UPDATE;
    IF v_task_state IS NULL OR v_step_state IS NULL THEN
        RAISE EXCEPTION 'step % of task % not found', p_step_uuid, p_task_uuid USING ERRCODE = 'P0002';
    END IF;
    IF v_task_state IN ('complete', 'cancelled', 'resolved_manually') THEN
        RAISE EXCEPTION 'cannot change a step of task %: the task is %', p_task_uuid, v_task_state
            USING ERRCODE = 'TK002';
    END IF;
    CASE p_action
        WHEN 'reset_for_retry' THEN v_to := 'pending'; v_event := 'reset_for_retry';
        WHEN 'resolve_manually' THEN v_to := 'resolved_manually'; v_event := 'resolve_manually';
        WHEN 'complete_manually' THEN v_to := 'complete'; v_event := 'complete_manually';
        ELSE RAISE EXCEPTION 'unknown action "%": use reset_for_retry, resolve_manually or complete_manually',
                 p_action USING ERRCODE = '22023';
    END CASE;
    IF tasker.step_transition_event(v_step_state, v_to, v_event) IS NULL THEN
        RAISE EXCEPTION 'cannot %: step % is %', p_action, p_step_uuid, v_step_state
            USING ERRCODE = 'TK002';
    END IF;
    IF p_action = 'complete_manually' THEN
        UPDATE tasker.workflow_steps
        SET results = jsonb_build_object('step_uuid', p_step_uuid, 'success', true,
                                         'status', 'completed',
                                         'result', coalesce(p_result->'result', p_result, '{}'::jsonb),
                                         'metadata', coalesce(p_result->'metadata', '{}'::jsonb)
                                                     || jsonb_build_object('manually_completed', true))
        WHERE workflow_step_uuid = p_step_uuid;
    END IF;
    PERFORM tasker.transition_step_state_atomic(p_step_uuid, v_step_state, v_to, v_meta, v_event);
    IF v_task_state = 'error' THEN
        PERFORM tasker.transition_task_state_atomic(p_task_uuid, 'error', 'evaluating_results',
                                                    NULL, v_meta, 'reset');
    END IF;
    PERFORM tasker.evaluate_task(p_task_uuid);
    RETURN tasker.step_response(p_task_uuid, p_step_uuid);
END
$$;

-- GET /v1/tasks: a page of tasks, newest first, with Tasker's pagination object. Filters may
-- be NULL. Each task is the short form (no steps array).
CREATE FUNCTION tasker.list_tasks(p_namespace text, p_status text, p_initiator text,
                                  p_source_system text, p_page integer, p_per_page integer)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    WITH matching AS (
        SELECT t.task_uuid, t.created_at
        FROM tasker.tasks t
        JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
        JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
        WHERE (p_namespace IS NULL OR ns.name = p_namespace)
          AND (p_status IS NULL OR t.state = p_status)
          AND (p_initiator IS NULL OR t.initiator = p_initiator)
          AND (p_source_system IS NULL OR t.source_system = p_source_system)),
    total AS (SELECT count(*) AS n FROM matching),
    page AS (
        SELECT m.task_uuid FROM matching m
        ORDER BY m.created_at DESC, m.task_uuid DESC
        LIMIT p_per_page OFFSET (p_page - 1) * p_per_page)
    SELECT jsonb_build_object(
        'tasks', coalesce((SELECT jsonb_agg(tasker.task_response(p.task_uuid) - 'steps'
                                            ORDER BY p.task_uuid DESC) FROM page p), '[]'),
        'pagination', jsonb_build_object(
            'page', p_page, 'per_page', p_per_page, 'total_count', total.n,
            'total_pages', (total.n + p_per_page - 1) / p_per_page,
            'has_next', p_page * p_per_page < total.n, 'has_previous', p_page > 1))
    FROM total
$$;
