-- execution_context.sql - get_task_execution_context and get_task_execution_contexts_batch:
-- every execution_status with its recommended_action, the precedence between them (a step in
-- error wins over ready steps, ready steps over running ones), health_status, the step counts,
-- completion_percentage, unknown tasks, and the batch form.
\ir lib/fixtures.sql

-- The whole row as text, in column order after task_uuid/named_task_uuid:
-- (status, total, pending, in_progress, completed, failed, ready, execution_status,
--  recommended_action, completion_percentage, health_status, enqueued)
CREATE FUNCTION test.ctx(p_task uuid) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c record;
    n integer;
BEGIN
    SELECT count(*) INTO n FROM tasker.get_task_execution_context(p_task);
    IF n <> 1 THEN
        RAISE EXCEPTION 'get_task_execution_context(%) returned % rows', p_task, n;
    END IF;
    SELECT * INTO STRICT c FROM tasker.get_task_execution_context(p_task);
    IF c.task_uuid IS DISTINCT FROM p_task OR c.named_task_uuid IS DISTINCT FROM
            (SELECT named_task_uuid FROM tasker.tasks WHERE task_uuid = p_task) THEN
        RAISE EXCEPTION 'get_task_execution_context(%): wrong task/named task', p_task;
    END IF;
    RETURN format('%s|%s/%s/%s/%s/%s|ready %s|%s|%s|%s|%s|enq %s', c.status, c.total_steps,
                  c.pending_steps, c.in_progress_steps, c.completed_steps, c.failed_steps,
                  c.ready_steps, c.execution_status, c.recommended_action,
                  c.completion_percentage, c.health_status, c.enqueued_steps);
END
$$;

DO $$
DECLARE
    t uuid;
BEGIN
    -- has_ready_steps: a fresh linear task (root ready).
    t := test.make_shape('linear');
    PERFORM test.eq(test.ctx(t),
        'pending|4/4/0/0/0|ready 1|has_ready_steps|execute_ready_steps|0.00|healthy|enq 0',
        'fresh linear');

    -- processing: the only runnable step is queued, running, or awaiting orchestration.
    PERFORM test.set_task_state(t, 'steps_in_process');
    PERFORM test.set_step_state(t, 'a', 'enqueued');
    PERFORM test.eq(test.ctx(t),
        'steps_in_process|4/3/0/0/0|ready 0|processing|wait_for_completion|0.00|healthy|enq 1',
        'linear, a enqueued');
    PERFORM test.set_step_state(t, 'a', 'in_progress');
    PERFORM test.eq(test.ctx(t),
        'steps_in_process|4/3/1/0/0|ready 0|processing|wait_for_completion|0.00|healthy|enq 0',
        'linear, a in_progress');
    PERFORM test.set_step_state(t, 'a', 'enqueued_for_orchestration');
    PERFORM test.eq(test.ctx(t),
        'steps_in_process|4/3/0/0/0|ready 0|processing|wait_for_completion|0.00|healthy|enq 1',
        'linear, a enqueued_for_orchestration');
    PERFORM test.set_step_state(t, 'a', 'enqueued_as_error_for_orchestration');
    PERFORM test.eq(test.ctx(t),
        'steps_in_process|4/3/0/0/0|ready 0|processing|wait_for_completion|0.00|healthy|enq 1',
        'linear, a enqueued_as_error_for_orchestration');

    -- has_ready_steps again once a is complete; 1 of 4 done.
    PERFORM test.set_step_state(t, 'a', 'complete');
    PERFORM test.eq(test.ctx(t),
        'steps_in_process|4/3/0/1/0|ready 1|has_ready_steps|execute_ready_steps|25.00|healthy|enq 0',
        'linear, a complete');

    -- all_complete, with resolved_manually counting as completed.
    PERFORM test.set_step_state(t, 'b', 'complete');
    PERFORM test.set_step_state(t, 'c', 'resolved_manually');
    PERFORM test.set_step_state(t, 'd', 'complete');
    PERFORM test.set_task_state(t, 'evaluating_results');
    PERFORM test.eq(test.ctx(t),
        'evaluating_results|4/0/0/4/0|ready 0|all_complete|finalize_task|100.00|healthy|enq 0',
        'linear, all complete');
END
$$;

-- Ready steps take precedence over running ones; a step in error over everything.
DO $$
DECLARE
    t uuid := test.make_task('{start:complete,b:in_progress,c,end}',
                             '{start>b,start>c,b>end,c>end}');
BEGIN
    PERFORM test.eq(test.ctx(t),
        'pending|4/2/1/1/0|ready 1|has_ready_steps|execute_ready_steps|25.00|healthy|enq 0',
        'diamond, b running, c ready');
    PERFORM test.set_step_state(t, 'b', 'error');
    PERFORM test.eq(test.ctx(t),
        'pending|4/2/0/1/1|ready 1|blocked_by_failures|handle_failures|25.00|blocked|enq 0',
        'diamond, b error, c still ready: error wins');
    PERFORM test.set_step_state(t, 'c', 'in_progress');
    PERFORM test.eq(test.ctx(t),
        'pending|4/1/1/1/1|ready 0|blocked_by_failures|handle_failures|25.00|blocked|enq 0',
        'diamond, b error, c running: error wins');
    PERFORM test.set_step_state(t, 'c', 'complete');
    PERFORM test.eq(test.ctx(t),
        'pending|4/1/0/2/1|ready 0|blocked_by_failures|handle_failures|50.00|blocked|enq 0',
        'diamond, b error, c complete');
END
$$;

-- waiting_for_dependencies and health recovering: the only step left waits out its backoff.
DO $$
DECLARE
    t uuid := test.make_task('{a:complete,b:waiting_for_retry,c}', '{a>b,b>c}');
    b uuid;
BEGIN
    b := test.step(t, 'b');
    PERFORM test.set_retry(b, 1, 3, true, now() - interval '10 seconds', 60);
    PERFORM test.eq(test.ctx(t),
        'pending|3/1/0/1/0|ready 0|waiting_for_dependencies|wait_for_dependencies|33.33|recovering|enq 0',
        'b in backoff');
    -- backoff elapsed: the retry is ready, still recovering
    PERFORM test.set_retry(b, 1, 3, true, now() - interval '10 seconds', 5);
    PERFORM test.eq(test.ctx(t),
        'pending|3/1/0/1/0|ready 1|has_ready_steps|execute_ready_steps|33.33|recovering|enq 0',
        'b past its backoff');
END
$$;

-- Percentages round to 2 decimals; a task without steps; an unknown task.
DO $$
DECLARE
    t uuid;
    n integer;
BEGIN
    t := test.make_task('{a:complete,b:complete,c}');
    PERFORM test.eq(test.ctx(t),
        'pending|3/1/0/2/0|ready 1|has_ready_steps|execute_ready_steps|66.67|healthy|enq 0',
        'two of three complete');
    t := test.make_shape('tree');
    PERFORM test.set_step_state(t, 'root', 'complete');
    PERFORM test.set_step_state(t, 'L', 'complete');
    PERFORM test.set_step_state(t, 'R', 'complete');
    PERFORM test.eq(test.ctx(t),
        'pending|8/5/0/3/0|ready 4|has_ready_steps|execute_ready_steps|37.50|healthy|enq 0',
        'tree, three of eight complete');

    t := test.make_task('{}');
    PERFORM test.eq(test.ctx(t),
        'pending|0/0/0/0/0|ready 0|waiting_for_dependencies|wait_for_dependencies|0.00|healthy|enq 0',
        'task without steps');

    SELECT count(*) INTO n FROM get_task_execution_context(gen_random_uuid());
    PERFORM test.eq(n, 0, 'unknown task: zero rows');
    SELECT count(*) INTO n FROM get_task_execution_context(NULL);
    PERFORM test.eq(n, 0, 'NULL task: zero rows');
END
$$;

-- Batch: one row per existing task (unknown ones skipped), ordered by task_uuid, each equal
-- to the single-task row.
DO $$
DECLARE
    t1 uuid := test.make_shape('diamond', p_task_uuid => 'ffffffff-0000-7000-8000-000000000001');
    t2 uuid := test.make_shape('linear', p_task_uuid => '00000000-0000-7000-8000-000000000002');
    t3 uuid := test.make_task('{x:error,y}', p_task_uuid => '80000000-0000-7000-8000-000000000003');
    n integer;
    order_text text;
BEGIN
    PERFORM test.set_step_state(t1, 'start', 'complete');
    SELECT count(*) INTO n FROM get_task_execution_contexts_batch(ARRAY[t1, gen_random_uuid(), t3, t2]);
    PERFORM test.eq(n, 3, 'batch: three known tasks');
    SELECT string_agg(task_uuid::text || ':' || execution_status, ',' ORDER BY o) INTO order_text
    FROM get_task_execution_contexts_batch(ARRAY[t1, t3, t2]) WITH ORDINALITY AS b(
        task_uuid, named_task_uuid, status, total_steps, pending_steps, in_progress_steps,
        completed_steps, failed_steps, ready_steps, execution_status, recommended_action,
        completion_percentage, health_status, enqueued_steps, o);
    PERFORM test.eq(order_text,
        t2 || ':has_ready_steps,' || t3 || ':blocked_by_failures,' || t1 || ':has_ready_steps',
        'batch: ordered by task_uuid, with each task''s status');
    SELECT count(*) INTO n FROM (
        SELECT * FROM get_task_execution_contexts_batch(ARRAY[t1, t2, t3])
        EXCEPT ALL
        (SELECT * FROM get_task_execution_context(t1) UNION ALL
         SELECT * FROM get_task_execution_context(t2) UNION ALL
         SELECT * FROM get_task_execution_context(t3))) x;
    PERFORM test.eq(n, 0, 'batch: rows equal the single-task rows');
    SELECT count(*) INTO n FROM get_task_execution_contexts_batch('{}');
    PERFORM test.eq(n, 0, 'batch: empty array');
END
$$;
