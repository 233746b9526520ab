-- 0003_dag_functions.sql - DAG integrity and the seed's SQL hot-path functions.
--
-- get_step_readiness_status[_batch], get_task_execution_context[s_batch],
-- get_next_ready_tasks, get_step_transitive_dependencies keep Tasker's names, columns and
-- meaning, with its bugs fixed (reference/tasker-data-layer.md section 7):
-- * a readiness call filtered to some steps still sees every parent (bug 2);
-- * a step that is not retryable is never retry-eligible after its first attempt (bug 5);
-- * transitive dependencies list each ancestor once, at its shortest distance (bug 6);
-- * get_next_ready_tasks really locks what it returns (FOR UPDATE SKIP LOCKED on tasks), so
--   concurrent callers in open transactions never get the same task (bug 1), and has no
--   hard-coded time-in-state cut-offs or priority discontinuity (bug 20);
-- * edges that would join two tasks or close a cycle are refused (bug 13).

-- Edges must stay inside one task and keep the graph acyclic. Checked once per INSERT or
-- UPDATE statement over all its new or changed edges: from each such edge's child, walk the
-- descendants; reaching that edge's parent means a cycle. SQLSTATE TK003.
CREATE FUNCTION tasker.guard_step_edges() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_step uuid;
BEGIN
    SELECT n.from_step_uuid INTO v_step
    FROM new_edges n
    JOIN tasker.workflow_steps f ON f.workflow_step_uuid = n.from_step_uuid
    JOIN tasker.workflow_steps t ON t.workflow_step_uuid = n.to_step_uuid
    WHERE f.task_uuid <> t.task_uuid
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'edge from step % joins steps of different tasks', v_step
            USING ERRCODE = 'TK003';
    END IF;
    WITH RECURSIVE reach(origin, step) AS (
        SELECT n.from_step_uuid, n.to_step_uuid FROM new_edges n
        UNION
        SELECT r.origin, e.to_step_uuid
        FROM reach r JOIN tasker.workflow_step_edges e ON e.from_step_uuid = r.step
    )
    SELECT origin INTO v_step FROM reach WHERE step = origin LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'edges would create a cycle through step %', v_step
            USING ERRCODE = 'TK003';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER workflow_step_edges_guard AFTER INSERT ON tasker.workflow_step_edges
    REFERENCING NEW TABLE AS new_edges
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.guard_step_edges();
-- The same for UPDATE (a trigger with a transition table can have only one event).
CREATE TRIGGER workflow_step_edges_guard_update AFTER UPDATE ON tasker.workflow_step_edges
    REFERENCING NEW TABLE AS new_edges
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.guard_step_edges();

-- Readiness of every step, computed from the current states (one row per step).
-- A step is ready when it is pending or waiting_for_retry, all its parents are complete or
-- resolved_manually, it is retry-eligible (first attempt, or retryable with attempts left) and
-- its backoff after the last failure has elapsed.
CREATE VIEW tasker.step_readiness AS
SELECT ws.workflow_step_uuid,
       ws.task_uuid,
       ws.named_step_uuid,
       ns.name::text AS name,
       ws.state::text AS current_state,
       p.total_parents = p.completed_parents AS dependencies_satisfied,
       (ws.attempts = 0 OR (ws.retryable AND ws.attempts < ws.max_attempts)) AS retry_eligible,
       (ws.state IN ('pending', 'waiting_for_retry')
        AND p.total_parents = p.completed_parents
        AND (ws.attempts = 0 OR (ws.retryable AND ws.attempts < ws.max_attempts))
        AND (ws.last_failure_at IS NULL OR ws.backoff_request_seconds IS NULL
             OR ws.last_failure_at + make_interval(secs => ws.backoff_request_seconds) <= now()))
           AS ready_for_execution,
       ws.last_failure_at,
       ws.last_failure_at + make_interval(secs => ws.backoff_request_seconds) AS next_retry_at,
       p.total_parents,
       p.completed_parents,
       ws.attempts,
       ws.max_attempts,
       ws.backoff_request_seconds,
       ws.last_attempted_at
FROM tasker.workflow_steps ws
LEFT JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
CROSS JOIN LATERAL (
    SELECT count(*)::integer AS total_parents,
           (count(*) FILTER (WHERE parent.state IN ('complete', 'resolved_manually')))::integer
               AS completed_parents
    FROM tasker.workflow_step_edges e
    JOIN tasker.workflow_steps parent ON parent.workflow_step_uuid = e.from_step_uuid
    WHERE e.to_step_uuid = ws.workflow_step_uuid) p;

CREATE FUNCTION tasker.get_step_readiness_status_batch(input_task_uuids uuid[], step_uuids uuid[] DEFAULT NULL)
RETURNS TABLE (
    workflow_step_uuid uuid, task_uuid uuid, named_step_uuid uuid, name text, current_state text,
    dependencies_satisfied boolean, retry_eligible boolean, ready_for_execution boolean,
    last_failure_at timestamptz, next_retry_at timestamptz, total_parents integer,
    completed_parents integer, attempts integer, max_attempts integer,
    backoff_request_seconds integer, last_attempted_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT r.workflow_step_uuid, r.task_uuid, r.named_step_uuid, r.name, r.current_state,
           r.dependencies_satisfied, r.retry_eligible, r.ready_for_execution,
           r.last_failure_at, r.next_retry_at, r.total_parents, r.completed_parents,
           r.attempts, r.max_attempts, r.backoff_request_seconds, r.last_attempted_at
    FROM tasker.step_readiness r
    WHERE r.task_uuid = ANY (input_task_uuids)
      AND (step_uuids IS NULL OR r.workflow_step_uuid = ANY (step_uuids))
    ORDER BY r.task_uuid, r.workflow_step_uuid
$$;

CREATE FUNCTION tasker.get_step_readiness_status(input_task_uuid uuid, step_uuids uuid[] DEFAULT NULL)
RETURNS TABLE (
    workflow_step_uuid uuid, task_uuid uuid, named_step_uuid uuid, name text, current_state text,
    dependencies_satisfied boolean, retry_eligible boolean, ready_for_execution boolean,
    last_failure_at timestamptz, next_retry_at timestamptz, total_parents integer,
    completed_parents integer, attempts integer, max_attempts integer,
    backoff_request_seconds integer, last_attempted_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT r.workflow_step_uuid, r.task_uuid, r.named_step_uuid, r.name, r.current_state,
           r.dependencies_satisfied, r.retry_eligible, r.ready_for_execution,
           r.last_failure_at, r.next_retry_at, r.total_parents, r.completed_parents,
           r.attempts, r.max_attempts, r.backoff_request_seconds, r.last_attempted_at
    FROM tasker.step_readiness r
    WHERE r.task_uuid = input_task_uuid
      AND (step_uuids IS NULL OR r.workflow_step_uuid = ANY (step_uuids))
    ORDER BY r.workflow_step_uuid
$$;

-- Aggregate view of a task's steps: counts by state, what the task should do next.
-- execution_status, first match wins: a step in error -> blocked_by_failures; a ready step ->
-- has_ready_steps; a step queued or running or awaiting orchestration -> processing; every
-- step complete -> all_complete; otherwise waiting_for_dependencies (which includes steps
-- waiting out a retry backoff). health_status: blocked (a step failed for good), recovering
-- (a step is waiting to be retried), else healthy.
CREATE VIEW tasker.task_execution_context AS
SELECT t.task_uuid,
       t.named_task_uuid,
       t.state::text AS status,
       c.total_steps, c.pending_steps, c.in_progress_steps, c.completed_steps, c.failed_steps,
       c.ready_steps,
       CASE WHEN c.failed_steps > 0 THEN 'blocked_by_failures'
            WHEN c.ready_steps > 0 THEN 'has_ready_steps'
            WHEN c.enqueued_steps + c.in_progress_steps > 0 THEN 'processing'
            WHEN c.completed_steps = c.total_steps AND c.total_steps > 0 THEN 'all_complete'
            ELSE 'waiting_for_dependencies' END AS execution_status,
       CASE WHEN c.failed_steps > 0 THEN 'handle_failures'
            WHEN c.ready_steps > 0 THEN 'execute_ready_steps'
            WHEN c.enqueued_steps + c.in_progress_steps > 0 THEN 'wait_for_completion'
            WHEN c.completed_steps = c.total_steps AND c.total_steps > 0 THEN 'finalize_task'
            ELSE 'wait_for_dependencies' END AS recommended_action,
       CASE WHEN c.total_steps = 0 THEN 0.00
            ELSE round(c.completed_steps::numeric * 100 / c.total_steps, 2) END
           AS completion_percentage,
       CASE WHEN c.failed_steps > 0 THEN 'blocked'
            WHEN c.retrying_steps > 0 THEN 'recovering'
            ELSE 'healthy' END AS health_status,
       c.enqueued_steps
FROM tasker.tasks t
CROSS JOIN LATERAL (
    SELECT count(*) AS total_steps,
           count(*) FILTER (WHERE r.current_state = 'pending') AS pending_steps,
           count(*) FILTER (WHERE r.current_state = 'in_progress') AS in_progress_steps,
           count(*) FILTER (WHERE r.current_state IN ('complete', 'resolved_manually'))
               AS completed_steps,
           count(*) FILTER (WHERE r.current_state = 'error') AS failed_steps,
           count(*) FILTER (WHERE r.ready_for_execution) AS ready_steps,
           count(*) FILTER (WHERE r.current_state = 'waiting_for_retry') AS retrying_steps,
           count(*) FILTER (WHERE r.current_state IN ('enqueued', 'enqueued_for_orchestration',
                                                      'enqueued_as_error_for_orchestration'))
               AS enqueued_steps
    FROM tasker.step_readiness r
    WHERE r.task_uuid = t.task_uuid) c;

CREATE FUNCTION tasker.get_task_execution_context(input_task_uuid uuid)
RETURNS TABLE (
    task_uuid uuid, named_task_uuid uuid, status text, total_steps bigint, pending_steps bigint,
    in_progress_steps bigint, completed_steps bigint, failed_steps bigint, ready_steps bigint,
    execution_status text, recommended_action text, completion_percentage numeric,
    health_status text, enqueued_steps bigint)
LANGUAGE sql STABLE AS $$
    SELECT * FROM tasker.task_execution_context c WHERE c.task_uuid = input_task_uuid
$$;

CREATE FUNCTION tasker.get_task_execution_contexts_batch(input_task_uuids uuid[])
RETURNS TABLE (
    task_uuid uuid, named_task_uuid uuid, status text, total_steps bigint, pending_steps bigint,
    in_progress_steps bigint, completed_steps bigint, failed_steps bigint, ready_steps bigint,
    execution_status text, recommended_action text, completion_percentage numeric,
    health_status text, enqueued_steps bigint)
LANGUAGE sql STABLE AS $$
    SELECT * FROM tasker.task_execution_context c WHERE c.task_uuid = ANY (input_task_uuids)
    ORDER BY c.task_uuid
$$;

-- Discovery order of tasks: base priority plus 0.1 per hour of age (Tasker's escalation, so
-- no task starves), without Tasker's later decay and cut-offs. priority + age_hours * 0.1 ranks
-- tasks exactly like priority - created_at_hours * 0.1, which does not depend on the current
-- time and can therefore be indexed. IMMUTABLE is correct: the epoch of a timestamptz does not
-- depend on the session's time zone.
CREATE FUNCTION tasker.task_priority_key(p_priority integer, p_created_at timestamptz)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_priority - extract(epoch FROM p_created_at)::double precision / 36000.0
$$;

CREATE INDEX tasks_discovery_idx ON tasker.tasks
    (tasker.task_priority_key(priority, created_at) DESC, task_uuid)
    WHERE state IN ('pending', 'waiting_for_dependencies', 'waiting_for_retry');

-- Tasks that need the orchestrator: pending ones, and waiting ones with a step ready to run,
-- highest computed priority first. The returned tasks are locked (FOR UPDATE SKIP LOCKED) until
-- the caller's transaction ends, so concurrent callers get disjoint sets.
CREATE FUNCTION tasker.get_next_ready_tasks(p_limit integer DEFAULT 5)
RETURNS TABLE (
    task_uuid uuid, task_name varchar, priority integer, namespace_name varchar,
    ready_steps_count bigint, computed_priority numeric, current_state varchar)
LANGUAGE sql VOLATILE AS $$
    WITH claimed AS (
        SELECT t.task_uuid, t.named_task_uuid, t.priority, t.state, t.created_at
        FROM tasker.tasks t
        WHERE t.state IN ('pending', 'waiting_for_dependencies', 'waiting_for_retry')
          AND (t.state = 'pending'
               OR EXISTS (SELECT 1 FROM tasker.step_readiness r
                          WHERE r.task_uuid = t.task_uuid AND r.ready_for_execution))
        ORDER BY tasker.task_priority_key(t.priority, t.created_at) DESC, t.task_uuid
        LIMIT greatest(p_limit, 0)
        FOR UPDATE OF t SKIP LOCKED
    )
    SELECT c.task_uuid, nt.name, c.priority, ns.name,
           (SELECT count(*) FROM tasker.step_readiness r
            WHERE r.task_uuid = c.task_uuid AND r.ready_for_execution),
           round((c.priority + extract(epoch FROM now() - c.created_at) / 36000.0)::numeric, 4),
           c.state
    FROM claimed c
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = c.named_task_uuid
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    ORDER BY tasker.task_priority_key(c.priority, c.created_at) DESC, c.task_uuid
$$;

-- Every ancestor of a step once, with its shortest distance (1 = direct parent), nearest
-- first. processed = the ancestor is complete, resolved_manually or cancelled.
CREATE FUNCTION tasker.get_step_transitive_dependencies(target_step_uuid uuid)
RETURNS TABLE (
    workflow_step_uuid uuid, task_uuid uuid, named_step_uuid uuid, step_name varchar,
    results jsonb, processed boolean, distance integer)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE ancestors(step_uuid, distance) AS (
        SELECT e.from_step_uuid, 1
        FROM tasker.workflow_step_edges e
        WHERE e.to_step_uuid = target_step_uuid
        UNION
        SELECT e.from_step_uuid, a.distance + 1
        FROM ancestors a
        JOIN tasker.workflow_step_edges e ON e.to_step_uuid = a.step_uuid
        WHERE a.distance < 1000
    ), nearest AS (
        SELECT step_uuid, min(distance) AS distance FROM ancestors GROUP BY step_uuid
    )
    SELECT ws.workflow_step_uuid, ws.task_uuid, ws.named_step_uuid, ns.name, ws.results,
           ws.state IN ('complete', 'resolved_manually', 'cancelled'), n.distance
    FROM nearest n
    JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = n.step_uuid
    JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
    ORDER BY n.distance, ws.workflow_step_uuid
$$;
