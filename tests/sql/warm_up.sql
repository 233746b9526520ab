-- warm_up.sql - tasker.warm_up() (0041) runs a task's whole life (create, claim, a report
-- starting two children, the two reported together, the last report, the final read) and
-- leaves nothing behind: no template, queue, task, step, message or history.
\ir lib/fixtures.sql

-- The rows of every table the warm-up writes to.
CREATE FUNCTION pg_temp.row_counts() RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'named_tasks', (SELECT count(*) FROM tasker.named_tasks),
        'named_steps', (SELECT count(*) FROM tasker.named_steps),
        'namespaces', (SELECT count(*) FROM tasker.task_namespaces),
        'queues', (SELECT count(*) FROM tasker_mq.queues),
        'tasks', (SELECT count(*) FROM tasker.tasks),
        'messages', (SELECT count(*) FROM tasker_mq.messages),
        'task_history', (SELECT count(*) FROM tasker.task_transitions),
        'step_history', (SELECT count(*) FROM tasker.workflow_step_transitions))
$$;

DO $$
DECLARE
    before jsonb := pg_temp.row_counts();
BEGIN
    PERFORM test.eq(tasker.warm_up(), 4, 'steps the warm-up completed');
    PERFORM test.eq(tasker.warm_up(), 4, 'and again in the same session');
    PERFORM test.eq(pg_temp.row_counts(), before, 'rows left behind');
END
$$;
