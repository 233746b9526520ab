-- create_task.sql - what creating a task writes (0026_create_one_statement.sql): the task with
-- its history, every step with its history, one edge per declared dependency and a queue
-- message per root step; and the notify_on_finish flag of create_task's 4-argument form, set
-- in the INSERT rather than by a second write of the task's row.

\ir lib/fixtures.sql

-- Two roots, a join of both, a redundant edge (d needs a and c, c needs a) and a step named
-- before its parent: the edges must follow the names, not the positions.
DO $$
BEGIN
    PERFORM tasker.register_template(jsonb_build_object('name', 'shape', 'namespace_name', 'ct',
        'version', '1.0.0', 'steps', jsonb_build_array(
            test.template_step('d', '{a, c}'), test.template_step('a'), test.template_step('b'),
            test.template_step('c', '{a, b}'))));
    PERFORM tasker.register_template(jsonb_build_object('name', 'empty', 'namespace_name', 'ct',
        'version', '1.0.0', 'steps', '[]'::jsonb));
END $$;

DO $$
DECLARE
    v_response jsonb;
    v_task uuid;
    v_updates bigint;
    v_got text;
BEGIN
    SELECT n_tup_upd INTO v_updates FROM pg_stat_xact_user_tables
    WHERE relid = 'tasker.tasks'::regclass;
    v_response := tasker.create_task(jsonb_build_object(
        'namespace', 'ct', 'name', 'shape', 'version', '1.0.0', 'context', '{"n": 1}'::jsonb),
        false, NULL, true);
    v_task := (v_response->>'task_uuid')::uuid;
    PERFORM test.eq(v_response->>'status', 'steps_in_process',
                    'short answer: ' || v_response::text);
    PERFORM test.eq((SELECT notify_on_finish FROM tasker.tasks WHERE task_uuid = v_task), true,
                    'a waited task carries the flag');
    PERFORM test.eq((SELECT n_tup_upd FROM pg_stat_xact_user_tables
                     WHERE relid = 'tasker.tasks'::regclass) - v_updates, 0::bigint,
                    'the flag is written with the task, not by an UPDATE of it');

    PERFORM test.eq(test.edges(v_task), 'a>c,a>d,b>c,c>d', 'one edge per dependency');
    PERFORM test.eq((SELECT count(*) FROM tasker.workflow_step_edges e
                     JOIN tasker.workflow_steps s ON s.workflow_step_uuid = e.to_step_uuid
                     JOIN tasker.workflow_steps p ON p.workflow_step_uuid = e.from_step_uuid
                     WHERE s.task_uuid = v_task AND p.task_uuid <> v_task), 0::bigint,
                    'edges stay inside the task');

    SELECT string_agg(n.name || ':' || s.state, ',' ORDER BY s.workflow_step_uuid) INTO v_got
    FROM tasker.workflow_steps s JOIN tasker.named_steps n USING (named_step_uuid)
    WHERE s.task_uuid = v_task;
    PERFORM test.eq(v_got, 'd:pending,a:enqueued,b:enqueued,c:pending',
                    'steps in template order, roots enqueued');
    PERFORM test.eq(test.ready_names(v_task), '', 'nothing else is ready yet');

    SELECT string_agg(coalesce(from_state, '-') || '>' || to_state || ':' || event, ','
                      ORDER BY created_at) INTO v_got
    FROM tasker.task_transitions WHERE task_uuid = v_task;
    PERFORM test.eq(v_got, '->pending:create,pending>initializing:start,'
                           'initializing>enqueuing_steps:ready_steps_found,'
                           'enqueuing_steps>steps_in_process:steps_enqueued',
                    'task history');
    SELECT string_agg(n.name || '=' || h.events, ',' ORDER BY n.name) INTO v_got
    FROM tasker.workflow_steps s JOIN tasker.named_steps n USING (named_step_uuid)
    CROSS JOIN LATERAL (
        SELECT string_agg(x.event, '+' ORDER BY x.created_at) AS events
        FROM tasker.workflow_step_transitions x
        WHERE x.workflow_step_uuid = s.workflow_step_uuid) h
    WHERE s.task_uuid = v_task;
    PERFORM test.eq(v_got, 'a=create+enqueue,b=create+enqueue,c=create,d=create',
                    'step history');

    SELECT string_agg(n.name, ',' ORDER BY m.msg_id) INTO v_got
    FROM tasker_mq.messages m
    JOIN tasker.workflow_steps s ON s.workflow_step_uuid = (m.message->>'step_uuid')::uuid
    JOIN tasker.named_steps n USING (named_step_uuid)
    WHERE m.queue_name = 'worker_ct_queue' AND s.task_uuid = v_task;
    PERFORM test.eq(v_got, 'a,b', 'one message per root');

    v_task := (tasker.create_task(jsonb_build_object(
        'namespace', 'ct', 'name', 'shape', 'version', '1.0.0', 'context', '{"n": 2}'::jsonb),
        false, NULL, false)->>'task_uuid')::uuid;
    PERFORM test.eq((SELECT notify_on_finish FROM tasker.tasks WHERE task_uuid = v_task), false,
                    'a task nobody waits for has no flag');

    v_response := tasker.create_task(jsonb_build_object(
        'namespace', 'ct', 'name', 'empty', 'version', '1.0.0', 'context', '{}'::jsonb),
        false, NULL, true);
    PERFORM test.eq(v_response->>'status', 'complete',
                    'a task without steps: ' || v_response::text);
    PERFORM test.eq((SELECT count(*) FROM tasker.workflow_steps
                     WHERE task_uuid = (v_response->>'task_uuid')::uuid), 0::bigint,
                    'no steps');
END $$;
