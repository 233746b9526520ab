-- 0014_recursion_plans.sql - the ancestor walks probe the edge index, whatever the plan cache holds.
--
-- step_dependency_results (0006; every claimed step's dependency results, so every claim
-- and continuation runs it) walks a step's ancestors with a recursive CTE whose recursive
-- term joined the work table to workflow_step_edges. A session keeps one generic plan per
-- statement (0008), made at its first call from the statistics of that moment. Made while
-- the edge table was small, that plan can be a hash join over the whole table, read by an
-- index-only scan of its unique index (enable_seqscan = off, 0010, does not rule that out),
-- at every level of every walk, for as long as the session lives, while the table grows.
-- Seen with auto_explain in `tasker bench all` runs: sessions of the Ruby and Python workers
-- (started after the C pass had filled the tables a little) held that plan, median 0.97 ms
-- per call against 0.02-0.03 ms for the index probe; workflow_step_edges_to_idx read 198
-- entries per scan on average (49 million in one run), and complete_step read 400 buffers
-- per call; those workers' steps took 1.1-1.7 ms longer each than the C worker's, which had
-- planned on empty tables. Which sessions got the plan depended on timing, so the same
-- benchmark sometimes slowed the C worker instead.
--
-- The recursive term now looks each level's parents up in a LATERAL subquery kept apart by
-- OFFSET 0, as claimed_steps and step_parent_names already do: a per-row index probe is
-- then the only plan. get_step_transitive_dependencies (the same walk, for the API and the
-- SQL benchmark) gets the same change.

CREATE OR REPLACE FUNCTION tasker.step_dependency_results(p_step_uuid uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v jsonb;
BEGIN
    WITH RECURSIVE ancestors(step_uuid) AS (
        SELECT e.from_step_uuid FROM tasker.workflow_step_edges e WHERE e.to_step_uuid = p_step_uuid
        UNION
        SELECT p.from_step_uuid FROM ancestors a
        CROSS JOIN LATERAL (
            SELECT e.from_step_uuid FROM tasker.workflow_step_edges e
            WHERE e.to_step_uuid = a.step_uuid
            OFFSET 0) p)
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

CREATE OR REPLACE FUNCTION tasker.get_step_transitive_dependencies(target_step_uuid uuid)
RETURNS TABLE (
    workflow_step_uuid uuid, task_uuid uuid, named_step_uuid uuid, step_name varchar,
    results jsonb, processed boolean, distance integer)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE ancestors(step_uuid, distance) AS (
        SELECT e.from_step_uuid, 1
        FROM tasker.workflow_step_edges e
        WHERE e.to_step_uuid = target_step_uuid
        UNION
        SELECT p.from_step_uuid, a.distance + 1
        FROM ancestors a
        CROSS JOIN LATERAL (
            SELECT e.from_step_uuid FROM tasker.workflow_step_edges e
            WHERE e.to_step_uuid = a.step_uuid
            OFFSET 0) p
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
