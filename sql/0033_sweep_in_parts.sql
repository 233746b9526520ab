-- 0033_sweep_in_parts.sql - the sweep's four parts are functions of their own, and a sweep can
-- leave out the two whose cost grows with a backlog.
--
-- Expired leases and elapsed backoffs are found through the active-steps index and cost
-- nothing while there are none. The other two parts look at every task or step that has
-- waited longer than p_stuck_seconds: with 30,000 linear tasks queued for a namespace no
-- worker served (`tasker bench`'s database, after ANALYZE), a sweep took 218-226 ms, about
-- 99 ms of it finding no stuck task and 110 ms finding no lost message, every five seconds
-- by default, and ten times that for 300,000. Both only catch what a crash or an operator
-- leaves behind, and the stuck check waits p_stuck_seconds (300 by default) anyway, so the
-- orchestrator now runs them every tenth of p_stuck_seconds (at most every minute) and the
-- two cheap parts at every sweep (src/orchestration/orchestrator.c). With another 30,000
-- such tasks in a second database, in one session: the cheap parts 1.0-1.6 ms a sweep, the
-- whole sweep 202 ms (444 ms at its first call).
--
-- tasker.sweep keeps its arguments and result, with a fourth argument p_all_parts (default
-- true: the whole sweep, as before). The parts are 0032's loops, unchanged.

DROP FUNCTION tasker.sweep(tasker.backoff_policy, integer, integer);

-- Steps whose lease expired (the worker died): back to their queue, or failed as worker_lost
-- when out of attempts (tasker.expire_lease); their task is evaluated. Returns how many.
CREATE FUNCTION tasker.sweep_expired_leases(p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n integer := 0;
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
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- Tasks with a step whose backoff is over: evaluated again, which queues the retry. Returns
-- how many of them that changed (tasker.reevaluate_task).
CREATE FUNCTION tasker.sweep_elapsed_backoffs(p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
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
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;

-- Tasks unchanged for p_stuck_seconds none of whose steps is in someone's hands (0032):
-- evaluated again. Returns how many of them that changed.
CREATE FUNCTION tasker.sweep_stuck_tasks(p_stuck_seconds integer, p_limit integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN
        SELECT t.task_uuid FROM tasker.tasks t
        WHERE t.state NOT IN ('complete', 'error', 'cancelled', 'resolved_manually')
          AND t.state_entered_at < now() - make_interval(secs => p_stuck_seconds)
          AND NOT EXISTS (SELECT 1 FROM tasker.workflow_steps ws
                          WHERE ws.task_uuid = t.task_uuid
                            AND ws.state IN ('enqueued', 'in_progress', 'enqueued_for_orchestration',
                                             'enqueued_as_error_for_orchestration',
                                             'waiting_for_retry'))
        ORDER BY t.state_entered_at LIMIT p_limit
        FOR UPDATE OF t SKIP LOCKED
    LOOP
        IF tasker.reevaluate_task(r.task_uuid) THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;

-- Steps queued for a worker or the orchestrator longer than p_stuck_seconds whose message is
-- gone (a purged queue): the message is sent again. The steps that have a message are read
-- once, into a JSON object used as a set (0032). Returns how many were sent.
CREATE FUNCTION tasker.sweep_lost_messages(p_stuck_seconds integer, p_limit integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    r record;
    n integer := 0;
    v_before timestamptz := now() - make_interval(secs => p_stuck_seconds);
    v_queued jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.workflow_steps ws
                   WHERE ws.state IN ('enqueued', 'enqueued_for_orchestration',
                                      'enqueued_as_error_for_orchestration')
                     AND ws.state_entered_at < v_before) THEN
        RETURN 0;
    END IF;
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
          AND ws.state_entered_at < v_before
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
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- Recovery, run every few seconds by each orchestrator (concurrent sweeps skip each other's
-- tasks): the four parts above in this order, each handling at most p_limit items; with
-- p_all_parts false only the first two. p_policy is unused (kept for callers).
-- Returns counts: {"leases": n, "retries": n, "stuck": n, "resent": n}.
CREATE FUNCTION tasker.sweep(p_policy tasker.backoff_policy, p_stuck_seconds integer,
                             p_limit integer DEFAULT 100, p_all_parts boolean DEFAULT true)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_leases integer := tasker.sweep_expired_leases(p_limit);
    v_retries integer := tasker.sweep_elapsed_backoffs(p_limit);
    v_stuck integer := 0;
    v_resent integer := 0;
BEGIN
    IF p_all_parts THEN
        v_stuck := tasker.sweep_stuck_tasks(p_stuck_seconds, p_limit);
        v_resent := tasker.sweep_lost_messages(p_stuck_seconds, p_limit);
    END IF;
    RETURN jsonb_build_object('leases', v_leases, 'retries', v_retries, 'stuck', v_stuck,
                              'resent', v_resent);
END
$$;
