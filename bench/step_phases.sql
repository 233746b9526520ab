-- step_phases.sql - where a step's time went, per namespace, from the history the run left.
--
--   psql "postgresql:///tasker_bench?host=/tmp&port=PORT&user=tasker" -X \
--        -v ns='linear%' -f bench/step_phases.sql
--
-- After `tasker bench e2e` (or all) the database tasker_bench keeps every task of the run
-- until the next run recreates it (start the bench's cluster with `tasker db start
-- --data-dir .tasker/bench/pgdata`, and take its port from `tasker db url`). For each step:
--   start    its enqueued -> in_progress transition (written while the claim, or the
--            previous step's complete_step for a continuation, was still running)
--   handler  started_at and completed_at in the result's metadata (written by the worker,
--            to the microsecond)
--   report   its in_progress -> enqueued_for_orchestration transition (written by
--            complete_step once it holds the task's row lock)
-- start -> handler is the rest of that transaction (its commit included), the hand-over to
-- a handler thread and, for Ruby and Python, taking the interpreter lock; handler -> report
-- is the report's round trip up to the task lock, sibling reports included.
WITH s AS (
    SELECT ns.name AS namespace,
           (SELECT min(x.created_at) FROM tasker.workflow_step_transitions x
            WHERE x.workflow_step_uuid = ws.workflow_step_uuid
              AND x.to_state = 'in_progress') AS started,
           (SELECT min(x.created_at) FROM tasker.workflow_step_transitions x
            WHERE x.workflow_step_uuid = ws.workflow_step_uuid
              AND x.to_state = 'enqueued_for_orchestration') AS reported,
           (ws.results->'metadata'->>'started_at')::timestamptz AS handler_started,
           (ws.results->'metadata'->>'completed_at')::timestamptz AS handler_done
    FROM tasker.workflow_steps ws
    JOIN tasker.tasks t USING (task_uuid)
    JOIN tasker.named_tasks nt USING (named_task_uuid)
    JOIN tasker.task_namespaces ns USING (task_namespace_uuid)
    WHERE ns.name LIKE :'ns' AND ws.state = 'complete'),
ms AS (
    SELECT namespace,
           extract(epoch FROM handler_started - started) * 1000 AS to_handler,
           extract(epoch FROM handler_done - handler_started) * 1000 AS in_handler,
           extract(epoch FROM reported - handler_done) * 1000 AS to_report
    FROM s)
SELECT namespace, count(*) AS steps,
       round(avg(to_handler)::numeric, 2) AS start_to_handler_avg_ms,
       round(avg(in_handler)::numeric, 2) AS handler_avg_ms,
       round(avg(to_report)::numeric, 2) AS handler_to_report_avg_ms,
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY to_report)::numeric, 2)
           AS handler_to_report_p90_ms
FROM ms GROUP BY namespace ORDER BY namespace;
