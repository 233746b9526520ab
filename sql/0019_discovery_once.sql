-- 0019_discovery_once.sql - get_next_ready_tasks counts each candidate's ready steps once.
--
-- 0009's discovery tested a waiting task through step_readiness twice: an EXISTS to pick it,
-- then a count(*) for ready_steps_count. Both walked every step of the task with every
-- parent edge and parent row, including steps that cannot be ready (complete, in flight, out
-- of attempts). Here one LATERAL count per candidate serves both the filter and the column,
-- and it looks at parents only for steps that could run (pending or waiting_for_retry, with
-- attempts left and the backoff over), stopping at the first unfinished parent. On the
-- 5,000-task dataset of `tasker bench sql` (three alternating runs, p50) the call went from
-- 469-498 to 369-447 us at batch 10 and from 2,686-4,040 to 1,836-1,985 us at batch 100.
--
-- The count is step_readiness' ready_for_execution spelled out: "no parent that is not
-- complete or resolved_manually" is the view's total_parents = completed_parents. Each
-- lookup is a subquery kept apart by OFFSET 0 (as in 0016), and seq scans are off for the
-- function: a generic plan made while workflow_steps was small scanned all of it for every
-- candidate. So whatever the statistics, the plan walks the discovery index and probes each
-- candidate's steps, edges, parents and names by key. Same rows, order, columns and locks as
-- 0009.

CREATE OR REPLACE FUNCTION tasker.get_next_ready_tasks(p_limit integer DEFAULT 5)
RETURNS TABLE (
    task_uuid uuid, task_name varchar, priority integer, namespace_name varchar,
    ready_steps_count bigint, computed_priority numeric, current_state varchar)
LANGUAGE plpgsql VOLATILE ROWS 10
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
    RETURN QUERY
    WITH claimed AS (
        SELECT t.task_uuid, t.named_task_uuid, t.priority, t.state, t.created_at, r.ready
        FROM tasker.tasks t
        CROSS JOIN LATERAL (
            SELECT count(*) AS ready
            FROM tasker.workflow_steps ws
            WHERE ws.task_uuid = t.task_uuid
              AND ws.state IN ('pending', 'waiting_for_retry')
              AND (ws.attempts = 0 OR (ws.retryable AND ws.attempts < ws.max_attempts))
              AND (ws.last_failure_at IS NULL OR ws.backoff_request_seconds IS NULL
                   OR ws.last_failure_at + make_interval(secs => ws.backoff_request_seconds) <= now())
              AND NOT EXISTS (
                  SELECT 1 FROM tasker.workflow_step_edges e
                  CROSS JOIN LATERAL (
                      SELECT s.state FROM tasker.workflow_steps s
                      WHERE s.workflow_step_uuid = e.from_step_uuid
                      OFFSET 0) parent
                  WHERE e.to_step_uuid = ws.workflow_step_uuid
                    AND parent.state NOT IN ('complete', 'resolved_manually')
                  OFFSET 0)
            OFFSET 0) r
        WHERE t.state IN ('pending', 'waiting_for_dependencies', 'waiting_for_retry')
          AND (t.state = 'pending' OR r.ready > 0)
        ORDER BY tasker.task_priority_key(t.priority, t.created_at) DESC, t.task_uuid
        LIMIT greatest(p_limit, 0)
        FOR UPDATE OF t SKIP LOCKED
    )
    SELECT c.task_uuid, n.task_name, c.priority, n.namespace_name, c.ready,
           round((c.priority + extract(epoch FROM now() - c.created_at) / 36000.0)::numeric, 4),
           c.state
    FROM claimed c
    CROSS JOIN LATERAL (
        SELECT nt.name AS task_name, ns.name AS namespace_name
        FROM tasker.named_tasks nt
        JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
        WHERE nt.named_task_uuid = c.named_task_uuid
        OFFSET 0) n
    ORDER BY tasker.task_priority_key(c.priority, c.created_at) DESC, c.task_uuid;
END
$$;
