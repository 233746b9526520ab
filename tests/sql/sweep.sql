-- sweep.sql - which tasks the sweeper's stuck-task check takes (sql/0032): a task whose steps
-- are still in someone's hands (queued for a worker, running under a live lease, waiting for
-- the orchestrator or out a backoff) is left alone however old it is, and does not hide a
-- task that is really stuck; the counts say what the sweep changed, not what it looked at;
-- and steps whose message is gone are found in one pass over a long queue.
\ir lib/fixtures.sql

-- Every task and step of the test as if it had sat in its state for p_age.
CREATE FUNCTION pg_temp.age(p_task uuid, p_age interval) RETURNS void
LANGUAGE sql AS $$
    UPDATE tasker.tasks SET state_entered_at = now() - p_age WHERE task_uuid = p_task;
    UPDATE tasker.workflow_steps SET state_entered_at = now() - p_age WHERE task_uuid = p_task;
$$;

-- The queue message a step in `state` would have (its worker queue, or the orchestrator's).
CREATE FUNCTION pg_temp.queue_message(p_task uuid, p_step text, p_queue text) RETURNS void
LANGUAGE sql AS $$
    SELECT tasker_mq.send(p_queue, jsonb_build_object('task_uuid', p_task,
                                                      'step_uuid', test.step(p_task, p_step)));
$$;

CREATE FUNCTION pg_temp.sweep(p_limit integer DEFAULT 100) RETURNS jsonb
LANGUAGE sql AS $$ SELECT tasker.sweep(NULL, 60, p_limit) $$;

DO $$
DECLARE
    queued uuid;
    running uuid;
    backoff uuid;
    reporting uuid;
    stuck uuid;
    r jsonb;
BEGIN
    PERFORM tasker_mq."create"('worker_test_ns_queue');

    -- a step queued for a worker that never came (none serves the namespace)
    queued := test.make_task('{a:enqueued,b}', '{a>b}', p_state => 'steps_in_process');
    PERFORM pg_temp.queue_message(queued, 'a', 'worker_test_ns_queue');
    -- a handler running for an hour, its lease renewed
    running := test.make_task('{a:in_progress,b}', '{a>b}', p_state => 'steps_in_process');
    UPDATE tasker.workflow_steps SET lease_owner = 'w', lease_expires_at = now() + interval '30 s'
    WHERE workflow_step_uuid = test.step(running, 'a');
    -- a retry whose backoff runs another ten minutes
    backoff := test.make_task('{a:waiting_for_retry}', '{}', p_state => 'waiting_for_retry');
    PERFORM test.set_retry(test.step(backoff, 'a'), 1, 3, true, now(), 600);
    -- a result waiting in the orchestrator's queue
    reporting := test.make_task('{a:enqueued_for_orchestration,b}', '{a>b}',
                                p_state => 'steps_in_process');
    PERFORM pg_temp.queue_message(reporting, 'a', 'orchestration_step_results');
    PERFORM pg_temp.age(t, interval '2 hours') FROM unnest(ARRAY[queued, running, backoff, reporting]) t;

    r := pg_temp.sweep();
    PERFORM test.eq(r, '{"leases": 0, "retries": 0, "stuck": 0, "resent": 0}'::jsonb,
                    'waiting tasks are not stuck');
    PERFORM test.eq(r, pg_temp.sweep(), 'nor at the next sweep');
    PERFORM test.eq((SELECT string_agg(state, ',' ORDER BY state) FROM tasker.tasks),
                    'steps_in_process,steps_in_process,steps_in_process,waiting_for_retry',
                    'the waiting tasks are as they were');
    PERFORM test.eq((SELECT count(*) FROM tasker_mq.messages)::integer, 2, 'no message sent again');

    -- A task a crash left in initializing, younger than the waiting ones: with room for one
    -- task per sweep, the check still finds it.
    stuck := test.make_task('{a,b}', '{a>b}', p_state => 'initializing');
    PERFORM pg_temp.age(stuck, interval '1 hour');
    r := pg_temp.sweep(1);
    PERFORM test.eq((r->>'stuck')::integer, 1, 'the stuck task is found behind older waiting ones');
    PERFORM test.eq((SELECT state FROM tasker.tasks WHERE task_uuid = stuck)::text,
                    'steps_in_process', 'the stuck task goes on');
    PERFORM test.eq((SELECT state FROM tasker.workflow_steps WHERE workflow_step_uuid = test.step(stuck, 'a'))::text,
                    'enqueued', 'its first step is queued');
END
$$;

-- A task that cannot go on (its only pending step's parent was cancelled by hand) and a retry
-- with no attempts left are looked at, but not reported as recovered at every sweep.
DO $$
DECLARE
    blocked uuid := test.make_task('{a:cancelled,b}', '{a>b}', p_state => 'waiting_for_dependencies');
    spent uuid := test.make_task('{a:waiting_for_retry}', '{}', p_state => 'waiting_for_retry');
    r jsonb;
BEGIN
    PERFORM test.set_retry(test.step(spent, 'a'), 3, 3, true, now() - interval '1 hour', 5);
    PERFORM pg_temp.age(blocked, interval '1 hour');
    PERFORM pg_temp.age(spent, interval '1 hour');
    r := pg_temp.sweep();
    PERFORM test.eq(r, '{"leases": 0, "retries": 0, "stuck": 0, "resent": 0}'::jsonb,
                    'nothing changed, nothing counted');
    PERFORM test.eq((SELECT state FROM tasker.tasks WHERE task_uuid = blocked)::text,
                    'waiting_for_dependencies', 'the blocked task stays');
    PERFORM test.eq((SELECT state FROM tasker.tasks WHERE task_uuid = spent)::text,
                    'waiting_for_retry', 'the spent retry stays');
END
$$;

-- A long queue: 1,500 steps that wait with their messages, and two whose message is gone (a
-- purged queue). Only those two are sent again, and the sweep reads the queue once: 0005 looked
-- the messages up for each queued step, reading all of them 1,500 times (a sweep took 3.5 s
-- with a backlog of 3,000 tasks in `tasker bench`'s database; 75 ms now).
DO $$
DECLARE
    t uuid;
    lost uuid[] := '{}';
    messages integer;
    buffers integer;
BEGIN
    FOR i IN 1..1502 LOOP
        t := test.make_task('{a:enqueued}', '{}', p_state => 'steps_in_process');
        IF i <= 1500 THEN
            PERFORM pg_temp.queue_message(t, 'a', 'worker_test_ns_queue');
        ELSE
            lost := lost || test.step(t, 'a');
        END IF;
        PERFORM pg_temp.age(t, interval '1 hour');
    END LOOP;
    messages := (SELECT count(*) FROM tasker_mq.messages);
    buffers := test.buffers('SELECT tasker.sweep(NULL, 60)');
    PERFORM test.eq((SELECT count(*) FROM tasker_mq.messages
                     WHERE (message->>'step_uuid')::uuid = ANY (lost))::integer, 2,
                    'the two lost messages are sent again');
    PERFORM test.eq((SELECT count(*) FROM tasker_mq.messages)::integer, messages + 2,
                    'and nothing else');
    -- 407 buffers here; the lookup per step read 12,053
    PERFORM test.eq(buffers < 4 * 1500, true, format('the sweep reads %s buffers', buffers));
END
$$;

-- A sweep without its backlog-sized parts (p_all_parts false, sql/0033) still expires leases
-- and queues elapsed retries, and leaves a stuck task and a lost message to the next full one.
DO $$
DECLARE
    stuck uuid := test.make_task('{a,b}', '{a>b}', p_state => 'initializing');
    lost uuid := test.make_task('{a:enqueued}', '{}', p_state => 'steps_in_process');
    expired uuid := test.make_task('{a:in_progress}', '{}', p_state => 'steps_in_process');
    retry uuid := test.make_task('{a:waiting_for_retry}', '{}', p_state => 'waiting_for_retry');
BEGIN
    PERFORM pg_temp.age(t, interval '1 hour') FROM unnest(ARRAY[stuck, lost, expired, retry]) t;
    UPDATE tasker.workflow_steps SET lease_owner = 'w', lease_expires_at = now() - interval '1 s'
    WHERE workflow_step_uuid = test.step(expired, 'a');
    PERFORM test.set_retry(test.step(retry, 'a'), 1, 3, true, now() - interval '1 hour', 5);
    PERFORM test.eq(tasker.sweep(NULL, 60, 100, false),
                    '{"leases": 1, "retries": 1, "stuck": 0, "resent": 0}'::jsonb,
                    'the cheap parts only');
    PERFORM test.eq((SELECT state FROM tasker.tasks WHERE task_uuid = stuck)::text,
                    'initializing', 'the stuck task waits for a full sweep');
    PERFORM test.eq(tasker.sweep(NULL, 60, 100),
                    '{"leases": 0, "retries": 0, "stuck": 1, "resent": 1}'::jsonb,
                    'the full sweep');
END
$$;
