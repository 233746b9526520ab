-- 0024_evaluate_once.sql - evaluate_task looks at a task's steps once.
--
-- evaluate_task runs after every step result (complete_step) and decides the task's next
-- state. 0006 summed step_readiness over the task, which for every step joins its parent
-- edges and the parents' rows, whatever the step's state. Here one scan of the task's steps
-- counts the states, and the parents are probed only for steps that could run (pending or
-- waiting_for_retry, attempts left, backoff over), stopping at the first unfinished one: the
-- ready test of get_next_ready_tasks (0019), which tests/sql/next_ready_tasks.sql checks
-- against step_readiness. The decisions are unchanged (tests/sql/evaluate.sql). Measured with
-- pgbench on a 4-step chain with its first step running (generic plans, four alternating
-- runs of 1,000, rolled back): 83-132 us per call before, 68-96 us after.

CREATE OR REPLACE FUNCTION tasker.evaluate_task(p_task_uuid uuid) RETURNS varchar
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

    SELECT count(*) AS total,
           count(*) FILTER (WHERE ws.state IN ('complete', 'resolved_manually')) AS done,
           count(*) FILTER (WHERE ws.state = 'error') AS failed,
           count(*) FILTER (WHERE ws.state IN ('enqueued', 'in_progress',
                                               'enqueued_for_orchestration',
                                               'enqueued_as_error_for_orchestration')) AS in_flight,
           count(*) FILTER (WHERE ws.state = 'waiting_for_retry') AS retrying,
           count(*) FILTER (
               WHERE ws.state IN ('pending', 'waiting_for_retry')
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
                     OFFSET 0)) AS ready
    INTO c FROM tasker.workflow_steps ws WHERE ws.task_uuid = p_task_uuid;

    IF c.failed > 0 THEN
        v_target := CASE WHEN c.in_flight > 0 THEN 'blocked_by_failures' ELSE 'error' END;
    ELSE
        IF c.ready > 0 THEN
            v_enqueued := tasker.enqueue_ready_steps(p_task_uuid);
        END IF;
        v_target := CASE WHEN c.done = c.total THEN 'complete'
                         WHEN c.in_flight + v_enqueued > 0 THEN 'steps_in_process'
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
