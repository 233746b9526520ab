-- 0041_warm_up.sql - a new session can run a task's whole life once, rolled back, so that the
-- first real task does not pay for compiling the engine's functions.
--
-- PostgreSQL compiles a plpgsql function, plans each of its statements and loads the catalog
-- entries they touch the first time a session runs them. For the first task of a freshly
-- started `tasker server` and `tasker worker` (`make run`'s first workflow took 137 ms,
-- the next ones 10-17 ms), the database log gave: create 36 ms (and 3.7 ms to prepare the
-- API's statement), the worker's first claim 18 ms, its first complete_step 33 ms (and 4.4
-- ms), the announcement at the task's end 4 ms; the second task took 15 ms in all.
--
-- tasker.warm_up() makes those calls on a task of its own: it registers a template of four
-- steps (a, then b and c, then d), creates a task that someone waits for, claims its first
-- step, reports it with room for both children, reports those two together, then the last,
-- and reads the task's response, all in a subtransaction that it then rolls back. Nothing
-- it wrote remains (template, queue, task, messages, notifications); only the session's
-- compiled functions and plans do. The server runs it on its first pooled connection and the
-- worker on the connections it claims and reports on, when they open (src/db/conn.c,
-- tk_conn_warm_up). Concurrent warm-ups wait for each other's uncommitted template row
-- for a moment, then roll back alike. Measured the same way with it: the first task 20 ms
-- (create 1.8 ms, claim 1.2 ms, first complete_step 1.8 ms), the next ones 13-14 ms.

-- Returns how many of the task's four steps it completed (4 when every call did its part).
CREATE FUNCTION tasker.warm_up() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_done integer := 0;
    v_queue text[] := ARRAY['worker_tasker_warm_up_queue'];
    v_ok jsonb := '{"success": true, "result": {}}';
    v_task uuid;
    v_steps uuid[];
BEGIN
    BEGIN
        PERFORM tasker.register_template(jsonb_build_object(
            'name', 'warm_up', 'namespace_name', 'tasker_warm_up', 'version', '0.0.0',
            'steps', jsonb_build_array(
                jsonb_build_object('name', 'tasker_warm_up_a',
                                   'handler', jsonb_build_object('callable', 'builtin.noop')),
                jsonb_build_object('name', 'tasker_warm_up_b', 'dependencies', '["tasker_warm_up_a"]'::jsonb,
                                   'handler', jsonb_build_object('callable', 'builtin.noop')),
                jsonb_build_object('name', 'tasker_warm_up_c', 'dependencies', '["tasker_warm_up_a"]'::jsonb,
                                   'handler', jsonb_build_object('callable', 'builtin.noop')),
                jsonb_build_object('name', 'tasker_warm_up_d',
                                   'dependencies', '["tasker_warm_up_b", "tasker_warm_up_c"]'::jsonb,
                                   'handler', jsonb_build_object('callable', 'builtin.noop')))));
        v_task := (tasker.create_task(jsonb_build_object('namespace', 'tasker_warm_up',
                                                         'name', 'warm_up', 'version', '0.0.0'),
                                      false, NULL, true)->>'task_uuid')::uuid;
        v_steps := ARRAY(SELECT c.step_uuid
                         FROM tasker.claim_steps(v_queue, NULL, 1, 'tasker-warm-up', 60) c);
        v_steps := ARRAY(SELECT r.step_uuid
                         FROM tasker.complete_step(v_steps[1], 'tasker-warm-up', v_ok, NULL,
                                                   v_queue, NULL, 2, 60) r
                         WHERE r.step_uuid IS NOT NULL);
        v_steps := ARRAY(SELECT r.step_uuid
                         FROM tasker.complete_steps(v_steps, 'tasker-warm-up',
                                                    jsonb_build_array(v_ok, v_ok), NULL,
                                                    v_queue, NULL, 1, 60) r
                         WHERE r.step_uuid IS NOT NULL);
        PERFORM * FROM tasker.complete_step(v_steps[1], 'tasker-warm-up', v_ok, NULL, v_queue,
                                            NULL, 1, 60);
        SELECT count(*) INTO v_done FROM tasker.workflow_steps ws
        WHERE ws.task_uuid = v_task AND ws.state = 'complete'
          AND (SELECT r.terminal FROM tasker.task_response_if_done(v_task, false, true) r);
        RAISE EXCEPTION USING ERRCODE = 'TKW01', MESSAGE = 'warm-up done: roll it back';
    EXCEPTION WHEN SQLSTATE 'TKW01' THEN
        NULL; -- everything above is undone
    END;
    RETURN v_done;
END
$$;
