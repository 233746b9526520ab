-- 0032_sweep_waiting_is_not_stuck.sql - the sweeper leaves waiting tasks alone and counts
-- only what it changed.
--
-- 0005's stuck-task check took every non-terminal task older than p_stuck_seconds whose
-- in-flight steps had all been in their state that long, evaluated it, and counted it as
-- recovered. A task whose step waits in its queue for a worker (none serves the namespace, or
-- the workers are down) is such a task: `make run` showed the server logging
-- `recovered: {"stuck": 1, ...}` every five seconds for a step queued hours before for a
-- template no running worker served, and the same happened for a handler running longer than
-- p_stuck_seconds under a live lease. Evaluating those tasks changes nothing; worse, they are
-- the oldest, so with more than p_limit of them (a namespace's workers down for a while) the
-- check looked at them on every sweep and never reached a task that was really stuck.
--
-- Now a task is stuck only when no step of it is still in someone's hands: queued for a
-- worker (`enqueued`: the worker's report evaluates the task; a lost message is sent again by
-- the last part of the sweep), running (`in_progress`: its report, or the first part of the
-- sweep once its lease has expired), waiting for the orchestrator (`enqueued_*_for_
-- orchestration`, likewise) or waiting out a backoff (`waiting_for_retry`: the second part,
-- once the backoff is over). What remains is what a crash can leave behind: a task in
-- `initializing`, a finished step whose report died before starting its children, a task
-- whose steps are all done but which is not. And the counts say how many tasks the
-- evaluation moved or gave steps to queue, so a task that still cannot go on (a step
-- cancelled by hand under a waiting child, a retry with no attempts left) is not reported
-- as recovered at every sweep.
--
-- The same backlog made the last part of the sweep, which sends a lost message again,
-- quadratic: for each step queued longer than p_stuck_seconds it looked for the step's message
-- with a containment test that no index serves, reading the whole queue each time. With 3,000
-- linear tasks queued for an hour in `tasker bench`'s database a sweep took seconds (every
-- five seconds, by default); it reads the queue once now: 3.49-3.56 s against 72-75 ms,
-- two alternating runs each.
-- tests/sql/sweep.sql.

-- The task's state and how many of its steps are still to run, as one value to compare.
CREATE FUNCTION tasker.task_progress_mark(p_task_uuid uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT t.state || '/' || (SELECT count(*) FROM tasker.workflow_steps ws
                              WHERE ws.task_uuid = t.task_uuid
                                AND ws.state IN ('pending', 'waiting_for_retry'))
    FROM tasker.tasks t WHERE t.task_uuid = p_task_uuid
$$;

-- Evaluate a task again (tasker.evaluate_task, which locks it) and say whether that changed
-- anything: the task's state, or the number of its steps still to run (pending or waiting
-- for a retry; evaluate_task only ever queues those).
CREATE FUNCTION tasker.reevaluate_task(p_task_uuid uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_before text;
    v_after text;
BEGIN
    v_before := tasker.task_progress_mark(p_task_uuid);
    PERFORM tasker.evaluate_task(p_task_uuid);
    v_after := tasker.task_progress_mark(p_task_uuid);
    RETURN v_before IS DISTINCT FROM v_after;
END
$$;

-- 0005's sweep with the stuck-task check above, and counts of what changed. Same arguments
-- and result: {"leases": n, "retries": n, "stuck": n, "resent": n}.
CREATE OR REPLACE FUNCTION tasker.sweep(p_policy tasker.backoff_policy, p_stuck_seconds integer,
                                        p_limit integer DEFAULT 100)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_leases integer := 0;
    v_retries integer := 0;
    v_stuck integer := 0;
    v_resent integer := 0;
    v_stuck_before timestamptz := now() - make_interval(secs => p_stuck_seconds);
    v_queued jsonb;
BEGIN
    FOR r IN
        SELECT ws.task_uuid, ws.workflow_step_uuid FROM tasker.workflow_steps ws
        JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
        WHERE ws.state = 'in_progress' AND ws.lease_expires_at < now()
          AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
        ORDER BY ws.task_uuid, ws.workflow_step_uuid LIMIT p_limit
    LOOP
        PERFORM 1 FROM tasker.tasks t WHERE t.task_uuid = r.task_uuid FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        PERFORM tasker.expire_lease(r.workflow_step_uuid);
        PERFORM tasker.evaluate_task(r.task_uuid);
        v_leases := v_leases + 1;
    END LOOP;

    FOR r IN
        SELECT DISTINCT ws.task_uuid FROM tasker.workflow_steps ws
        JOIN tasker.tasks t ON t.task_uuid = ws.task_uuid
        WHERE ws.state = 'waiting_for_retry'
          AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
          AND (ws.last_failure_at IS NULL OR ws.backoff_request_seconds IS NULL
               OR ws.last_failure_at + make_interval(secs => ws.backoff_request_seconds) <= now())
        ORDER BY ws.task_uuid LIMIT p_limit
    LOOP
        PERFORM 1 FROM tasker.tasks t WHERE t.task_uuid = r.task_uuid FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        IF tasker.reevaluate_task(r.task_uuid) THEN
            v_retries := v_retries + 1;
        END IF;
    END LOOP;

    FOR r IN
        SELECT t.task_uuid FROM tasker.tasks t
        WHERE t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
          AND t.state_entered_at < v_stuck_before
          AND NOT EXISTS (SELECT 1 FROM tasker.workflow_steps ws
                          WHERE ws.task_uuid = t.task_uuid
                            AND ws.state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration',
                                             'enqueued_as_error_for_orchestration',
                                             'waiting_for_retry'))
        ORDER BY t.state_entered_at LIMIT p_limit
        FOR UPDATE OF t SKIP LOCKED
    LOOP
        IF tasker.reevaluate_task(r.task_uuid) THEN
            v_stuck := v_stuck + 1;
        END IF;
    END LOOP;

    -- Steps left queued whose message is gone. The steps that have a message are read once,
    -- into a JSON object used as a set (a key lookup is a binary search), and each task is
    -- found by its key: a queue of thousands costs one pass over it, not one per step.
    IF EXISTS (SELECT 1 FROM tasker.workflow_steps ws
               WHERE ws.state IN ('enqueued', 'enqueued_for_orchestration',
                                  'enqueued_as_error_for_orchestration')
                 AND ws.state_entered_at < v_stuck_before) THEN
        SELECT coalesce(jsonb_object_agg(m.message->>'step_uuid', true), '{}') INTO v_queued
        FROM tasker_mq.messages m WHERE m.message ? 'step_uuid';
        FOR r IN
            SELECT ws.task_uuid, ws.workflow_step_uuid, ws.state, ws.handler_callable,
                   t.correlation_id, t.queue
            FROM tasker.workflow_steps ws
            CROSS JOIN LATERAL (
                SELECT t.correlation_id, 'worker_' || ns.name || '_queue' AS queue
                FROM tasker.tasks t
                JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid
                JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
                WHERE t.task_uuid = ws.task_uuid
                  AND t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
                OFFSET 0) t
            WHERE ws.state IN ('enqueued', 'enqueued_for_orchestration',
                               'enqueued_as_error_for_orchestration')
              AND ws.state_entered_at < v_stuck_before
              AND NOT v_queued ? ws.workflow_step_uuid::text
            ORDER BY ws.state_entered_at LIMIT p_limit
        LOOP
            IF r.state = 'enqueued' THEN
                PERFORM tasker_mq.send(r.queue, jsonb_build_object(
                    'task_uuid', r.task_uuid, 'step_uuid', r.workflow_step_uuid,
                    'correlation_id', r.correlation_id, 'handler', r.handler_callable));
            ELSE
                PERFORM tasker_mq.send('orchestration_step_results', jsonb_build_object(
                    'kind', 'step_result', 'task_uuid', r.task_uuid,
                    'step_uuid', r.workflow_step_uuid, 'correlation_id', r.correlation_id));
            END IF;
            v_resent := v_resent + 1;
        END LOOP;
    END IF;

    RETURN jsonb_build_object('leases', v_leases, 'retries', v_retries, 'stuck', v_stuck,
                              'resent', v_resent);
END
$$;
