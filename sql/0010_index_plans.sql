-- 0010_index_plans.sql - the hot paths look rows up by index even in a young database.
--
-- The hot-path functions keep one generic plan per statement and session (0008). Planned
-- while a table is small and has no statistics yet, a statement can get a sequential scan,
-- cheaper than an index at that size, and keep it as the table grows, until an ANALYZE of the
-- table invalidates the plan. Measured on a new cluster with autovacuum off (so no ANALYZE
-- came): 600 linear-4 tasks through `tasker dev` made 6,103 sequential scans of
-- workflow_step_edges reading 5.0 million rows; with this migration, none. (With autovacuum on
-- the first ANALYZE usually comes soon enough; a busy autovacuum leaves the window open.)
-- Every statement on these paths looks rows up by key, so the planner is told to avoid
-- sequential scans there (it still uses one where no index applies). Like plan_cache_mode,
-- the setting applies to what these functions run and is undone on return.
ALTER FUNCTION tasker.complete_step(uuid, text, jsonb, tasker.backoff_policy, text[], text[],
                                    integer, integer) SET enable_seqscan = off;
ALTER FUNCTION tasker.complete_step(uuid, text, jsonb) SET enable_seqscan = off;
ALTER FUNCTION tasker.claim_steps(text[], text[], integer, text, integer) SET enable_seqscan = off;
ALTER FUNCTION tasker.create_task(jsonb) SET enable_seqscan = off;
ALTER FUNCTION tasker.create_task(jsonb, boolean) SET enable_seqscan = off;
ALTER FUNCTION tasker.task_response_if_done(uuid, boolean) SET enable_seqscan = off;
ALTER FUNCTION tasker.process_step_results(integer, tasker.backoff_policy) SET enable_seqscan = off;
ALTER FUNCTION tasker.extend_step_leases(text, uuid[], integer) SET enable_seqscan = off;
