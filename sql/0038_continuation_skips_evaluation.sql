-- 0038_continuation_skips_evaluation.sql - a report that starts its step's continuation does
-- not evaluate the task again when nothing else can have changed.
--
-- report_outcome (0031), behind every single-step report (complete_step and its busy-task
-- follow-up), started the step's ready children for the reporting worker and then always
-- ran evaluate_task, which counts the states of all the task's steps and probes the parents
-- of every step that could run. After a continuation started, that evaluation can only come
-- to "steps_in_process, nothing to queue" unless
-- * a child of the step is still pending: ready_children started at most p_next of them, and
--   none whose handler this worker lacks; evaluate_task queues the others that are ready;
-- * a step of the task failed for good (the task goes to blocked_by_failures): a failure is
--   stored and evaluated under the task's lock, so none should be there while the task is
--   in steps_in_process, but the check costs one look at the task's steps;
-- and the task was in steps_in_process (the only state in which a continuation starts) and
-- now has a step in flight, the continuation, so it is neither complete nor waiting. A step
-- whose retry backoff ends is queued by its own delayed message (process_step_results),
-- whichever step reports. So with a continuation started, no pending child of the step and
-- no failed step, the evaluation is left out; otherwise it runs as before.
--
-- In `tasker bench e2e` this is every link of the linear chain but the last, and every step
-- of the other shapes whose children all started with it. pgbench, complete_step of a linear
-- task's first step (BEGIN ... ROLLBACK, three alternating runs of 2,000): 0.529-0.581 ms
-- before, 0.484-0.553 ms after.

CREATE OR REPLACE FUNCTION tasker.report_outcome(p_task_uuid uuid, p_task_state varchar,
                                                 p_step_uuid uuid, p_applied varchar,
                                                 p_worker_id text, p_queues text[],
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
    v_next uuid[];
BEGIN
    IF p_applied = 'complete' AND p_task_state = 'steps_in_process' THEN
        v_next := tasker.ready_children(p_task_uuid, p_step_uuid, p_queues, p_handlers, p_next);
        IF cardinality(v_next) > 0 THEN
            v_next := tasker.start_steps(v_next, 'pending', p_worker_id, p_lease_seconds);
        END IF;
    END IF;
    IF cardinality(v_next) > 0
       AND NOT EXISTS (
           SELECT 1 FROM tasker.workflow_step_edges e
           CROSS JOIN LATERAL (
               SELECT s.state FROM tasker.workflow_steps s
               WHERE s.workflow_step_uuid = e.to_step_uuid
               OFFSET 0) child
           WHERE e.from_step_uuid = p_step_uuid AND child.state = 'pending')
       AND NOT EXISTS (
           SELECT 1 FROM tasker.workflow_steps s
           WHERE s.task_uuid = p_task_uuid AND s.state = 'error') THEN
        task_state := p_task_state; -- what evaluate_task would find (see the header)
    ELSE
        task_state := tasker.evaluate_task(p_task_uuid);
    END IF;
    accepted := true;
    step_state := p_applied;
    RETURN NEXT; -- the verdict row (no step)
    IF cardinality(v_next) > 0 THEN
        RETURN QUERY SELECT true, NULL::varchar, NULL::varchar, c.*
                     FROM tasker.claimed_steps(v_next) c;
    END IF;
END
$$;
