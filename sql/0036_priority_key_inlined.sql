-- 0036_priority_key_inlined.sql - the discovery order's key is computed inline, not by a call.
--
-- task_priority_key (0003) is an IMMUTABLE SQL function, which PostgreSQL inlines into the
-- query that calls it only when its body is immutable too. Its body took the epoch of a
-- timestamptz, and extract(field, timestamptz) is STABLE (some of its fields depend on the
-- session's time zone; the epoch does not), so the function was never inlined: every use ran
-- a SQL function call of its own. auto_explain on get_next_ready_tasks(100) over `tasker
-- bench sql`'s 5,000 tasks logged about 200 such calls (the ORDER BY of the candidates and of
-- the result), and so did each insert into tasks_discovery_idx, whose expression it is.
--
-- The same epoch, taken from the timestamptz at UTC (timezone(text, timestamptz) and
-- extract(field, timestamp) are both IMMUTABLE), gives the same number: both extracts return
-- the exact numeric seconds, cast to double precision alike (the 5,000 tasks' keys compared
-- equal). The index is rebuilt all the same, so no stored key can differ from a computed one.
-- pgbench on that dataset (BEGIN; get_next_ready_tasks(n); ROLLBACK pipelined, 1,000 calls,
-- two runs each): batch 1 149-152 -> 123 us, batch 10 403-408 -> 346-351 us, batch 100
-- 1,918-1,934 -> 1,614-1,663 us.

CREATE OR REPLACE FUNCTION tasker.task_priority_key(p_priority integer, p_created_at timestamptz)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_priority - extract(epoch FROM p_created_at AT TIME ZONE 'UTC')::double precision / 36000.0
$$;

REINDEX INDEX tasker.tasks_discovery_idx;
