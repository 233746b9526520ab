-- 0009_discovery.sql - get_next_ready_tasks without planning on every call.
--
-- 0003's get_next_ready_tasks is a LANGUAGE sql function that cannot be inlined (it locks
-- rows), so PostgreSQL planned its body, with the step_readiness view expanded twice, on
-- every call: about 1 ms of its 1.2-1.6 ms at batch 1 and 10 on the 5,000-task dataset of
-- `tasker bench sql`. The same query in plpgsql keeps one generic plan per session. Two
-- details make that plan the right one:
-- * plan_cache_mode = force_generic_plan: under auto, PostgreSQL kept choosing custom plans
--   for small batches, i.e. planning every call again;
-- * the readiness EXISTS repeats `t.state <> 'pending'` inside the subquery. Without it the
--   generic plan turned the EXISTS into a hashed subplan that computes the readiness of
--   every step of every task (15 ms on 5,000 tasks); a condition on the outer row alone
--   inside the subquery keeps it a per-candidate probe, evaluated only for the few
--   candidates the discovery-ordered index scan visits before the LIMIT is reached.
-- Same rows, order, columns and locks as 0003. Measured in one run on that dataset (p50 of
-- the call, no round trip): batch 1 1,244 -> 84 us, 10: 1,592 -> 365 us, 100: 4,060 -> 3,004 us.

CREATE OR REPLACE FUNCTION tasker.get_next_ready_tasks(p_limit integer DEFAULT 5)
RETURNS TABLE (
    task_uuid uuid, task_name varchar, priority integer, namespace_name varchar,
    ready_steps_count bigint, computed_priority numeric, current_state varchar)
LANGUAGE plpgsql VOLATILE ROWS 10 SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    WITH claimed AS (
        SELECT t.task_uuid, t.named_task_uuid, t.priority, t.state, t.created_at
        FROM tasker.tasks t
        WHERE t.state IN ('pending', 'waiting_for_dependencies', 'waiting_for_retry')
          AND (t.state = 'pending'
               OR EXISTS (SELECT 1 FROM tasker.step_readiness r
                          WHERE r.task_uuid = t.task_uuid AND r.ready_for_execution
                            AND t.state <> 'pending')) -- keeps it a probe: see the header
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
    ORDER BY tasker.task_priority_key(c.priority, c.created_at) DESC, c.task_uuid;
END
$$;
