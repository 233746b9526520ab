-- history.sql - task and step history rows (0027_history_without_fks.sql): written without a
-- foreign-key check, and still deleted with their step or task, and with nothing else.

\ir lib/fixtures.sql

DO $$
BEGIN
    PERFORM test.eq((SELECT count(*) FROM pg_constraint
                     WHERE contype = 'f'
                       AND conrelid IN ('tasker.task_transitions'::regclass,
                                        'tasker.workflow_step_transitions'::regclass)),
                    0::bigint, 'no foreign key on the history tables');
    PERFORM tasker.register_template(jsonb_build_object('name', 'hist', 'namespace_name', 'hs',
        'version', '1.0.0', 'steps', jsonb_build_array(
            test.template_step('first'), test.template_step('second', '{first}'))));
END $$;

CREATE FUNCTION pg_temp.create(p_n integer) RETURNS uuid LANGUAGE sql AS $$
    SELECT tasker.create_task_row(jsonb_build_object(
        'namespace', 'hs', 'name', 'hist', 'version', '1.0.0', 'context',
        jsonb_build_object('n', p_n)))
$$;

-- History rows of a task (its own and its steps'), as "task rows/step rows".
CREATE FUNCTION pg_temp.rows(p_task uuid) RETURNS text LANGUAGE sql AS $$
    SELECT (SELECT count(*) FROM tasker.task_transitions WHERE task_uuid = p_task) || '/' ||
           (SELECT count(*) FROM tasker.workflow_step_transitions h
            WHERE h.workflow_step_uuid IN (SELECT ws.workflow_step_uuid
                                           FROM tasker.workflow_steps ws
                                           WHERE ws.task_uuid = p_task))
$$;

DO $$
DECLARE
    v_kept uuid := pg_temp.create(1);
    v_task uuid := pg_temp.create(2);
    v_other uuid := pg_temp.create(3);
    v_second uuid;
    v_orphans bigint;
BEGIN
    PERFORM test.eq(pg_temp.rows(v_task), '4/3', 'created: 4 task rows, 2 + 1 step rows');

    -- one step: its history goes, its task's and its sibling's stay
    SELECT ws.workflow_step_uuid INTO v_second FROM tasker.workflow_steps ws
    JOIN tasker.named_steps n USING (named_step_uuid)
    WHERE ws.task_uuid = v_task AND n.name = 'second';
    DELETE FROM tasker.workflow_steps WHERE workflow_step_uuid = v_second;
    PERFORM test.eq((SELECT count(*) FROM tasker.workflow_step_transitions
                     WHERE workflow_step_uuid = v_second), 0::bigint, 'the step''s history went');
    PERFORM test.eq(pg_temp.rows(v_task), '4/2', 'the rest stayed');

    -- two tasks in one statement: theirs go (steps through the steps' key), the third's stays
    DELETE FROM tasker.tasks WHERE task_uuid IN (v_task, v_other);
    PERFORM test.eq((SELECT count(*) FROM tasker.task_transitions
                     WHERE task_uuid IN (v_task, v_other)), 0::bigint, 'the tasks'' history went');
    SELECT count(*) INTO v_orphans FROM tasker.workflow_step_transitions h
    WHERE NOT EXISTS (SELECT 1 FROM tasker.workflow_steps ws
                      WHERE ws.workflow_step_uuid = h.workflow_step_uuid);
    PERFORM test.eq(v_orphans, 0::bigint, 'no step history left without its step');
    PERFORM test.eq(pg_temp.rows(v_kept), '4/3', 'the other task kept all of its history');
END $$;
