-- 0027_history_without_fks.sql - history rows no longer check and lock their task or step.
--
-- Every row of task_transitions and workflow_step_transitions ran a foreign-key check at the
-- end of its statement: a query that found the task or step and KEY SHARE-locked it, which
-- writes the lock into the row and a WAL record. A linear task of four steps writes about 26
-- history rows, so 26 checks; the WAL of one such task held 17 row-lock records on
-- workflow_steps. The check never finds anything wrong: the engine writes history only in the
-- transaction that has just created, updated or locked that task or step, so the row exists
-- and cannot go away before commit. On a copy of the `tasker dev` database, a step's start (an
-- UPDATE of the step and a two-row history INSERT, rolled back, pgbench) took the INSERT from
-- about 69-78 us to 56 us without the check.
--
-- What the keys still did is delete history with its task or step (ON DELETE CASCADE). Two
-- statement triggers do that now, once per DELETE statement, with the deleted rows as a
-- transition table. Deleting a task still cascades to its steps through their own key, whose
-- DELETE runs the steps' trigger in turn.

ALTER TABLE tasker.task_transitions DROP CONSTRAINT task_transitions_task_uuid_fkey;
ALTER TABLE tasker.workflow_step_transitions
    DROP CONSTRAINT workflow_step_transitions_workflow_step_uuid_fkey;

CREATE FUNCTION tasker.delete_task_history() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.task_transitions h USING deleted_tasks d WHERE h.task_uuid = d.task_uuid;
    RETURN NULL;
END
$$;

CREATE FUNCTION tasker.delete_step_history() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tasker.workflow_step_transitions h USING deleted_steps d
    WHERE h.workflow_step_uuid = d.workflow_step_uuid;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_delete_history AFTER DELETE ON tasker.tasks
    REFERENCING OLD TABLE AS deleted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.delete_task_history();
CREATE TRIGGER workflow_steps_delete_history AFTER DELETE ON tasker.workflow_steps
    REFERENCING OLD TABLE AS deleted_steps
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.delete_step_history();
