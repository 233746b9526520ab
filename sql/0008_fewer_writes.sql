-- 0008_fewer_writes.sql - the same moves and the same history, with fewer statements.
--
-- Measured with pg_stat_statements on 100 linear-4 tasks after 0007: complete_step cost about
-- 1.05 ms a call and create_task 1.9 ms, spread over some 25 statements of 0.04-0.4 ms each.
-- Each hop of a state machine was its own UPDATE (a new row version, every index touched,
-- the guard trigger) and its own INSERT into the history; and the continuation claimed a
-- child back from the queue it had just been sent to, so its NOTIFY then woke the worker's
-- dispatcher for nothing (3 of its 4 claims per task were empty). Changes:
--
-- * A row can move along several hops in one UPDATE, its history getting one row per hop in
--   one INSERT: move_task (e.g. pending -> initializing -> enqueuing_steps ->
--   steps_in_process when a task is created), a successful result (in_progress ->
--   enqueued_for_orchestration -> complete) and a continued child (pending -> enqueued ->
--   in_progress). The guard triggers accept such an UPDATE only while the transaction-local
--   setting tasker.recorded_path is 'on', which these functions set around it after checking
--   every hop against the transition tables; any other UPDATE is checked as before.
-- * The continuation takes, among the children of the step just completed, those that are
--   ready now and that this worker can run (its queues and handlers), before evaluate_task,
--   and starts them directly: no message, no NOTIFY. evaluate_task then queues only the other
--   ready steps. Only those children can have become ready through this result; the
--   readiness test is step_readiness' ready_for_execution for a pending step. Nothing is
--   continued unless the task is in steps_in_process (not blocked by a failure). A step
--   started this way is as recoverable as any claimed step: its lease expires if the worker
--   dies.
-- * transition_task_state_atomic checks its transition once (the guard trigger repeated the
--   lookup) and reads the event without a nested function call.
-- * The hot-path entry points plan their statements once per session (see the end).
-- The lock order is unchanged (the task row first). Failures still go through
-- apply_step_result, the single place that decides between retry and error.

CREATE OR REPLACE FUNCTION tasker.guard_task_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('tasker.recorded_path', true) IS DISTINCT FROM 'on'
       AND NOT EXISTS (SELECT 1 FROM tasker.task_state_transitions
                       WHERE from_state = OLD.state AND to_state = NEW.state) THEN
        RAISE EXCEPTION 'task % cannot go from % to %', OLD.task_uuid, OLD.state, NEW.state
            USING ERRCODE = 'TK001';
    END IF;
    NEW.state_entered_at := now();
    NEW.updated_at := now();
    NEW.completed_at := CASE WHEN NEW.state IN ('complete', 'error', 'cancelled', 'resolved_manually')
                             THEN now() END;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION tasker.guard_step_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('tasker.recorded_path', true) IS DISTINCT FROM 'on'
       AND NOT EXISTS (SELECT 1 FROM tasker.step_state_transitions
                       WHERE from_state = OLD.state AND to_state = NEW.state) THEN
        RAISE EXCEPTION 'step % cannot go from % to %', OLD.workflow_step_uuid, OLD.state, NEW.state
            USING ERRCODE = 'TK002';
    END IF;
    NEW.state_entered_at := now();
    NEW.updated_at := now();
    IF OLD.state = 'in_progress' THEN           -- the worker's claim ends with the attempt
        NEW.lease_owner := NULL;
        NEW.lease_expires_at := NULL;
    END IF;
    IF NEW.state IN ('complete', 'cancelled', 'resolved_manually') THEN
        NEW.processed_at := now();
    END IF;
    IF OLD.state = 'error' AND NEW.state = 'pending' THEN  -- reset_for_retry: a fresh budget
        NEW.attempts := 0;
        NEW.backoff_request_seconds := NULL;
    END IF;
    RETURN NEW;
END
$$;

-- 0005's move_task: the same path (each hop a legal transition, recorded with its event),
-- written with one UPDATE and one INSERT.
CREATE OR REPLACE FUNCTION tasker.move_task(p_task_uuid uuid, p_from varchar, p_to varchar,
                                            p_enqueued boolean, p_metadata jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_state varchar := p_from;
    v_next varchar;
    v_path varchar[] := '{}';
    v_events varchar[] := '{}';
    v_event varchar;
    v_guard text;
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
        v_event := tasker.task_transition_event(v_state, v_next);
        IF v_event IS NULL THEN
            RAISE EXCEPTION 'task transition % -> % is not allowed', v_state, v_next
                USING ERRCODE = 'TK001';
        END IF;
        v_path := v_path || v_next;
        v_events := v_events || v_event;
        v_state := v_next;
        IF cardinality(v_path) > 6 THEN
            RAISE EXCEPTION 'no path for task % from % to %', p_task_uuid, p_from, p_to;
        END IF;
    END LOOP;
    IF cardinality(v_path) = 0 THEN
        RETURN;
    END IF;

    v_guard := set_config('tasker.recorded_path', 'on', true);
    UPDATE tasker.tasks SET state = p_to WHERE task_uuid = p_task_uuid AND state = p_from;
    v_guard := set_config('tasker.recorded_path', 'off', true); -- (an assignment keeps FOUND)
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task % left state % while locked', p_task_uuid, p_from;
    END IF;
    -- one row per hop, in order (created_at one microsecond apart, so it sorts the same)
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, metadata, created_at)
    SELECT p_task_uuid, coalesce(v_path[h.i - 1], p_from), v_path[h.i], v_events[h.i],
           coalesce(p_metadata, '{}'), clock_timestamp() + make_interval(secs => h.i * 1e-6)
    FROM generate_subscripts(v_path, 1) AS h(i);

    IF p_to IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN
        PERFORM pg_notify('tasker_task_finished',
                          json_build_object('task_uuid', p_task_uuid, 'status', p_to)::text);
    END IF;
END
$$;

-- Start steps for a worker: p_from_state ('enqueued', or 'pending' for a step queued and
-- started at once) -> in_progress with a lease, one history row per hop. Steps no longer in
-- p_from_state are left out. Returns the steps started; claimed_steps describes them.
CREATE FUNCTION tasker.start_steps(p_steps uuid[], p_from_state varchar, p_worker_id text,
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
        SET state = 'in_progress', attempts = ws.attempts + 1, last_attempted_at = now(),
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

-- What a worker needs to run steps it holds: claim_steps' columns. Read-only. OFFSET 0
-- keeps the per-step lookups correlated index probes (see step_dependency_results in 0006).
CREATE FUNCTION tasker.claimed_steps(p_steps uuid[])
RETURNS TABLE (task_uuid uuid, step_uuid uuid, correlation_id uuid, namespace_name text,
               task_name text, task_version text, step_name text, handler text,
               attempts integer, max_attempts integer, retryable boolean,
               timeout_seconds integer, lease_expires_at timestamptz, context jsonb,
               config jsonb, dependency_results jsonb, parents jsonb)
LANGUAGE plpgsql STABLE ROWS 4 AS $$
BEGIN
    RETURN QUERY
    SELECT ws.task_uuid, ws.workflow_step_uuid, x.correlation_id, x.namespace_name, x.task_name,
           x.task_version, x.step_name, ws.handler_callable::text, ws.attempts, ws.max_attempts,
           ws.retryable, ws.timeout_seconds, ws.lease_expires_at, x.context, ws.inputs,
           tasker.step_dependency_results(ws.workflow_step_uuid),
           tasker.step_parent_names(ws.workflow_step_uuid)
    FROM tasker.workflow_steps ws
    CROSS JOIN LATERAL (
        SELECT t.correlation_id, ns.name::text AS namespace_name, nt.name::text AS task_name,
               nt.version::text AS task_version, sn.name::text AS step_name, t.context
        FROM tasker.tasks t
        JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
        JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
        JOIN tasker.named_steps sn ON sn.named_step_uuid = ws.named_step_uuid
        WHERE t.task_uuid = ws.task_uuid
        OFFSET 0) x
    WHERE ws.workflow_step_uuid = ANY (p_steps);
END
$$;

-- 0007's claim: take messages, start their steps, describe them.
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
        DELETE FROM tasker_mq.messages m USING picked WHERE m.msg_id = picked.msg_id
        RETURNING (m.message->>'step_uuid')::uuid AS step_uuid)
    SELECT array_agg(taken.step_uuid) INTO v_steps FROM taken;
    IF v_steps IS NULL THEN
        RETURN;
    END IF;
    v_steps := tasker.start_steps(v_steps, 'enqueued', p_worker_id, p_lease_seconds);
    RETURN QUERY SELECT * FROM tasker.claimed_steps(v_steps);
END
$$;

-- The children of p_step_uuid that are ready now and that a worker of p_queues with
-- p_handlers (NULL: any) can run, at most p_limit, in uuid order. The caller holds the task's
-- row lock and has checked that the task may run steps.
CREATE FUNCTION tasker.ready_children(p_task_uuid uuid, p_step_uuid uuid, p_queues text[],
                                      p_handlers text[], p_limit integer)
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
        JOIN tasker.workflow_steps c ON c.workflow_step_uuid = e.to_step_uuid
        WHERE e.from_step_uuid = p_step_uuid AND c.state = 'pending'
          AND (p_handlers IS NULL OR c.handler_callable = ANY (p_handlers))
          AND (c.attempts = 0 OR (c.retryable AND c.attempts < c.max_attempts))
          AND (c.last_failure_at IS NULL OR c.backoff_request_seconds IS NULL
               OR c.last_failure_at + make_interval(secs => c.backoff_request_seconds) <= now())
          AND NOT EXISTS (
              SELECT 1 FROM tasker.workflow_step_edges pe
              JOIN tasker.workflow_steps p ON p.workflow_step_uuid = pe.from_step_uuid
              WHERE pe.to_step_uuid = c.workflow_step_uuid
                AND p.state NOT IN ('complete', 'resolved_manually'))
        ORDER BY c.workflow_step_uuid
        LIMIT p_limit);
END
$$;

-- 0007's complete_step with the changes of the header.
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
    FROM tasker.workflow_steps ws JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
    WHERE ws.workflow_step_uuid = p_step_uuid
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

-- Generic plans for the hot paths. Every statement in these functions (and in the functions
-- they call) looks rows up by key, so one plan per statement and session serves all calls;
-- but PostgreSQL's default (auto) kept building a custom plan on every call for some of
-- them: perf on the linear-4 benchmark put the planner at 9-12% of the database's CPU, and
-- at 0.2% with this setting. A function's SET applies to everything it runs and is undone on
-- return, so other sessions and the caller's own queries keep their mode.
ALTER FUNCTION tasker.complete_step(uuid, text, jsonb, tasker.backoff_policy, text[], text[],
                                    integer, integer) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker.complete_step(uuid, text, jsonb) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker.claim_steps(text[], text[], integer, text, integer)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker.create_task(jsonb) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker.create_task(jsonb, boolean) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker.task_response_if_done(uuid, boolean) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker.process_step_results(integer, tasker.backoff_policy)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tasker.extend_step_leases(text, uuid[], integer) SET plan_cache_mode = force_generic_plan;

-- 0002's compare-and-swap, with its one check of the transition done once: the event is read
-- here (not through task_transition_event, a call level less) and the guard trigger, which
-- would read the same table again, is told the path is recorded.
CREATE OR REPLACE FUNCTION tasker.transition_task_state_atomic(
    p_task_uuid uuid, p_from_state varchar, p_to_state varchar,
    p_processor_uuid uuid DEFAULT NULL, p_metadata jsonb DEFAULT '{}', p_event varchar DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_event varchar;
    v_guard text;
BEGIN
    SELECT event INTO v_event FROM tasker.task_state_transitions
    WHERE from_state = p_from_state AND to_state = p_to_state
      AND (p_event IS NULL OR event = p_event)
    ORDER BY event LIMIT 1;
    IF v_event IS NULL THEN
        RAISE EXCEPTION 'task transition % -> % is not allowed%', p_from_state, p_to_state,
            CASE WHEN p_event IS NULL THEN '' ELSE ' (' || p_event || ')' END
            USING ERRCODE = 'TK001';
    END IF;
    v_guard := set_config('tasker.recorded_path', 'on', true);
    UPDATE tasker.tasks SET state = p_to_state
    WHERE task_uuid = p_task_uuid AND state = p_from_state;
    v_guard := set_config('tasker.recorded_path', 'off', true); -- (an assignment keeps FOUND)
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, processor_uuid, metadata)
    VALUES (p_task_uuid, p_from_state, p_to_state, v_event, p_processor_uuid, coalesce(p_metadata, '{}'));
    RETURN true;
END
$$;
