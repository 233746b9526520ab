-- indexes.sql - the indexes of the history and edge tables (0028_keys_nobody_reads.sql): only
-- those a query reads, a duplicate edge still refused, and history still deletable when its
-- tables have no primary key.

\ir lib/fixtures.sql

-- Index definitions of a table, as "name: columns" in name order.
CREATE FUNCTION pg_temp.indexes(p_table regclass) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(c.relname || ': ' || regexp_replace(pg_get_indexdef(i.indexrelid),
                                                          '^.*USING btree ', ''),
                      '; ' ORDER BY c.relname)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE i.indrelid = p_table
$$;

DO $$
DECLARE
    v_task uuid;
    v_first uuid;
    v_second uuid;
BEGIN
    PERFORM test.eq(pg_temp.indexes('tasker.task_transitions'),
                    'task_transitions_task_idx: (task_uuid, created_at)',
                    'task history: only the lookup by task');
    PERFORM test.eq(pg_temp.indexes('tasker.workflow_step_transitions'),
                    'workflow_step_transitions_step_idx: (workflow_step_uuid, created_at)',
                    'step history: only the lookup by step');
    PERFORM test.eq(pg_temp.indexes('tasker.workflow_step_edges'),
                    'workflow_step_edges_pkey: (from_step_uuid, to_step_uuid); '
                    || 'workflow_step_edges_to_idx: (to_step_uuid)',
                    'edges: keyed by (from, to), looked up by to');
    PERFORM test.eq((SELECT string_agg(relname || '=' || relreplident::text, ',' ORDER BY relname)
                     FROM pg_class
                     WHERE oid IN ('tasker.task_transitions'::regclass,
                                   'tasker.workflow_step_transitions'::regclass)),
                    'task_transitions=f,workflow_step_transitions=f',
                    'history without a key replicates its deletes by the full row');

    PERFORM tasker.register_template(jsonb_build_object('name', 'idx', 'namespace_name', 'ix',
        'version', '1.0.0', 'steps', jsonb_build_array(
            test.template_step('first'), test.template_step('second', '{first}'))));
    v_task := tasker.create_task_row(jsonb_build_object(
        'namespace', 'ix', 'name', 'idx', 'version', '1.0.0', 'context', '{}'::jsonb));
    SELECT e.from_step_uuid, e.to_step_uuid INTO v_first, v_second
    FROM tasker.workflow_step_edges e
    JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = e.to_step_uuid
    WHERE ws.task_uuid = v_task;
    PERFORM test.expect_error(format('INSERT INTO tasker.workflow_step_edges (from_step_uuid, '
                                     'to_step_uuid) VALUES (%L, %L)', v_first, v_second),
                              '23505', 'a second edge between the same two steps is refused');

    DELETE FROM tasker.tasks WHERE task_uuid = v_task;
    PERFORM test.eq((SELECT count(*) FROM tasker.task_transitions WHERE task_uuid = v_task)
                    + (SELECT count(*) FROM tasker.workflow_step_transitions
                       WHERE workflow_step_uuid IN (v_first, v_second)),
                    0::bigint, 'the task''s history went with it');
END $$;
