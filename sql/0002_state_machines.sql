-- 0002_state_machines.sql - the task and step state machines, enforced by the database.
--
-- The same machines are defined in C (include/tasker/state.h); the integration test
-- tests/integration/test_state_sql.c proves the two definitions agree. src/state/README.md
-- explains the states and why this machine departs from Tasker's where it does.
--
-- Enforcement: a BEFORE UPDATE trigger on each table refuses any change of state that is not a
-- row of the transition table (SQLSTATE TK001 for tasks, TK002 for steps), whoever writes it,
-- and maintains the columns that follow from the state (state_entered_at, completed_at,
-- processed_at, the lease). The *_atomic functions are the compare-and-swap writers: they move
-- an entity only if it is still in the expected state and append the history row in the same
-- statement's transaction.

CREATE TABLE tasker.task_states (
    name varchar(32) PRIMARY KEY,
    terminal boolean NOT NULL
);
INSERT INTO tasker.task_states VALUES
    ('pending', false), ('initializing', false), ('enqueuing_steps', false),
    ('steps_in_process', false), ('evaluating_results', false),
    ('waiting_for_dependencies', false), ('waiting_for_retry', false),
    ('blocked_by_failures', false), ('complete', true), ('error', true), ('cancelled', true),
    ('resolved_manually', true);

CREATE TABLE tasker.step_states (
    name varchar(40) PRIMARY KEY,
    terminal boolean NOT NULL,
    satisfies_dependents boolean NOT NULL
);
INSERT INTO tasker.step_states VALUES
    ('pending', false, false), ('enqueued', false, false), ('in_progress', false, false),
    ('enqueued_for_orchestration', false, false),
    ('enqueued_as_error_for_orchestration', false, false), ('waiting_for_retry', false, false),
    ('complete', true, true), ('error', false, false), ('cancelled', true, false),
    ('resolved_manually', true, true);

CREATE TABLE tasker.task_state_transitions (
    from_state varchar(32) NOT NULL REFERENCES tasker.task_states,
    to_state varchar(32) NOT NULL REFERENCES tasker.task_states,
    event varchar(64) NOT NULL,
    PRIMARY KEY (from_state, to_state, event)
);
INSERT INTO tasker.task_state_transitions (from_state, to_state, event) VALUES
    ('pending', 'initializing', 'start'),
    ('initializing', 'enqueuing_steps', 'ready_steps_found'),
    ('initializing', 'complete', 'no_steps_found'),
    ('initializing', 'waiting_for_dependencies', 'no_dependencies_ready'),
    ('initializing', 'evaluating_results', 'reevaluate'),
    ('enqueuing_steps', 'steps_in_process', 'steps_enqueued'),
    ('enqueuing_steps', 'error', 'enqueue_failed'),
    ('enqueuing_steps', 'evaluating_results', 'reevaluate'),
    ('steps_in_process', 'evaluating_results', 'step_completed'),
    ('steps_in_process', 'waiting_for_retry', 'step_failed'),
    ('steps_in_process', 'error', 'staleness_timeout'),
    ('evaluating_results', 'complete', 'all_steps_successful'),
    ('evaluating_results', 'enqueuing_steps', 'ready_steps_found'),
    ('evaluating_results', 'steps_in_process', 'steps_in_flight'),
    ('evaluating_results', 'waiting_for_dependencies', 'no_dependencies_ready'),
    ('evaluating_results', 'waiting_for_retry', 'retry_pending'),
    ('evaluating_results', 'blocked_by_failures', 'permanent_failure'),
    ('evaluating_results', 'error', 'give_up'),
    ('waiting_for_dependencies', 'evaluating_results', 'dependencies_ready'),
    ('waiting_for_dependencies', 'error', 'staleness_timeout'),
    ('waiting_for_retry', 'enqueuing_steps', 'retry_ready'),
    ('waiting_for_retry', 'evaluating_results', 'reevaluate'),
    ('waiting_for_retry', 'error', 'staleness_timeout'),
    ('blocked_by_failures', 'error', 'give_up'),
    ('blocked_by_failures', 'evaluating_results', 'reevaluate'),
    ('error', 'evaluating_results', 'reset'),
    ('pending', 'cancelled', 'cancel'),
    ('initializing', 'cancelled', 'cancel'),
    ('enqueuing_steps', 'cancelled', 'cancel'),
    ('steps_in_process', 'cancelled', 'cancel'),
    ('evaluating_results', 'cancelled', 'cancel'),
    ('waiting_for_dependencies', 'cancelled', 'cancel'),
    ('waiting_for_retry', 'cancelled', 'cancel'),
    ('blocked_by_failures', 'cancelled', 'cancel'),
    ('pending', 'resolved_manually', 'resolve_manually'),
    ('initializing', 'resolved_manually', 'resolve_manually'),
    ('enqueuing_steps', 'resolved_manually', 'resolve_manually'),
    ('steps_in_process', 'resolved_manually', 'resolve_manually'),
    ('evaluating_results', 'resolved_manually', 'resolve_manually'),
    ('waiting_for_dependencies', 'resolved_manually', 'resolve_manually'),
    ('waiting_for_retry', 'resolved_manually', 'resolve_manually'),
    ('blocked_by_failures', 'resolved_manually', 'resolve_manually');

CREATE TABLE tasker.step_state_transitions (
    from_state varchar(40) NOT NULL REFERENCES tasker.step_states,
    to_state varchar(40) NOT NULL REFERENCES tasker.step_states,
    event varchar(64) NOT NULL,
    PRIMARY KEY (from_state, to_state, event)
);
INSERT INTO tasker.step_state_transitions (from_state, to_state, event) VALUES
    ('pending', 'enqueued', 'enqueue'),
    ('enqueued', 'in_progress', 'start'),
    ('in_progress', 'enqueued_for_orchestration', 'enqueue_for_orchestration'),
    ('in_progress', 'enqueued_as_error_for_orchestration', 'enqueue_as_error_for_orchestration'),
    ('in_progress', 'enqueued', 'lease_expired'),
    ('in_progress', 'error', 'fail'),
    ('enqueued_for_orchestration', 'complete', 'complete'),
    ('enqueued_for_orchestration', 'error', 'fail'),
    ('enqueued_as_error_for_orchestration', 'waiting_for_retry', 'wait_for_retry'),
    ('enqueued_as_error_for_orchestration', 'error', 'fail'),
    ('waiting_for_retry', 'pending', 'retry'),
    ('error', 'pending', 'reset_for_retry'),
    ('pending', 'cancelled', 'cancel'),
    ('enqueued', 'cancelled', 'cancel'),
    ('in_progress', 'cancelled', 'cancel'),
    ('enqueued_for_orchestration', 'cancelled', 'cancel'),
    ('enqueued_as_error_for_orchestration', 'cancelled', 'cancel'),
    ('waiting_for_retry', 'cancelled', 'cancel'),
    ('error', 'cancelled', 'cancel'),
    ('pending', 'resolved_manually', 'resolve_manually'),
    ('enqueued', 'resolved_manually', 'resolve_manually'),
    ('in_progress', 'resolved_manually', 'resolve_manually'),
    ('enqueued_for_orchestration', 'resolved_manually', 'resolve_manually'),
    ('enqueued_as_error_for_orchestration', 'resolved_manually', 'resolve_manually'),
    ('waiting_for_retry', 'resolved_manually', 'resolve_manually'),
    ('error', 'resolved_manually', 'resolve_manually'),
    ('pending', 'complete', 'complete_manually'),
    ('enqueued', 'complete', 'complete_manually'),
    ('in_progress', 'complete', 'complete_manually'),
    ('enqueued_for_orchestration', 'complete', 'complete_manually'),
    ('enqueued_as_error_for_orchestration', 'complete', 'complete_manually'),
    ('waiting_for_retry', 'complete', 'complete_manually'),
    ('error', 'complete', 'complete_manually');

-- The event of the legal transition from -> to (the given event if it is one of them), or
-- NULL when the transition is forbidden.
CREATE FUNCTION tasker.task_transition_event(p_from varchar, p_to varchar, p_event varchar DEFAULT NULL)
RETURNS varchar LANGUAGE sql STABLE AS $$
    SELECT event FROM tasker.task_state_transitions
    WHERE from_state = p_from AND to_state = p_to AND (p_event IS NULL OR event = p_event)
    ORDER BY event LIMIT 1
$$;

CREATE FUNCTION tasker.step_transition_event(p_from varchar, p_to varchar, p_event varchar DEFAULT NULL)
RETURNS varchar LANGUAGE sql STABLE AS $$
    SELECT event FROM tasker.step_state_transitions
    WHERE from_state = p_from AND to_state = p_to AND (p_event IS NULL OR event = p_event)
    ORDER BY event LIMIT 1
$$;

CREATE FUNCTION tasker.guard_task_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.task_state_transitions
                   WHERE from_state = OLD.state AND to_state = NEW.state) THEN
        RAISE EXCEPTION 'task % cannot go from % to %', OLD.task_uuid, OLD.state, NEW.state
            USING ERRCODE = 'TK001';
    END IF;
    NEW.state_entered_at := now();
    NEW.updated_at := now();
    NEW.completed_at := CASE WHEN NEW.state IN ('complete', 'error', 'cancelled', 'resolved_manually')
                             THEN now() END;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_guard_state BEFORE UPDATE OF state ON tasker.tasks
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION tasker.guard_task_state();

CREATE FUNCTION tasker.guard_step_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.step_state_transitions
                   WHERE from_state = OLD.state AND to_state = NEW.state) THEN
        RAISE EXCEPTION 'step % cannot go from % to %', OLD.workflow_step_uuid, OLD.state, NEW.state
            USING ERRCODE = 'TK002';
    END IF;
    NEW.state_entered_at := now();
    NEW.updated_at := now();
    IF OLD.state = 'in_progress' THEN           -- the worker's claim ends with the attempt
        NEW.lease_owner := NULL;
        NEW.lease_expires_at := NULL;
    END IF;
    IF NEW.state IN ('complete', 'cancelled', 'resolved_manually') THEN
        NEW.processed_at := now();
    END IF;
    IF OLD.state = 'error' AND NEW.state = 'pending' THEN  -- reset_for_retry: a fresh budget
        NEW.attempts := 0;
        NEW.backoff_request_seconds := NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER workflow_steps_guard_state BEFORE UPDATE OF state ON tasker.workflow_steps
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION tasker.guard_step_state();

-- Compare-and-swap: move the task from p_from_state to p_to_state if it is still in
-- p_from_state, and record the transition. Returns true if it moved, false if the task is in
-- another state (or does not exist). A forbidden from -> to (or an event that is not one of
-- its events) raises TK001 whatever the task's state.
CREATE FUNCTION tasker.transition_task_state_atomic(
    p_task_uuid uuid, p_from_state varchar, p_to_state varchar,
    p_processor_uuid uuid DEFAULT NULL, p_metadata jsonb DEFAULT '{}', p_event varchar DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_event varchar := tasker.task_transition_event(p_from_state, p_to_state, p_event);
BEGIN
    IF v_event IS NULL THEN
        RAISE EXCEPTION 'task transition % -> % is not allowed%', p_from_state, p_to_state,
            CASE WHEN p_event IS NULL THEN '' ELSE ' (' || p_event || ')' END
            USING ERRCODE = 'TK001';
    END IF;
    UPDATE tasker.tasks SET state = p_to_state
    WHERE task_uuid = p_task_uuid AND state = p_from_state;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, processor_uuid, metadata)
    VALUES (p_task_uuid, p_from_state, p_to_state, v_event, p_processor_uuid, coalesce(p_metadata, '{}'));
    RETURN true;
END
$$;

-- The same for a step (SQLSTATE TK002 for a forbidden transition).
CREATE FUNCTION tasker.transition_step_state_atomic(
    p_step_uuid uuid, p_from_state varchar, p_to_state varchar,
    p_metadata jsonb DEFAULT '{}', p_event varchar DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_event varchar := tasker.step_transition_event(p_from_state, p_to_state, p_event);
BEGIN
    IF v_event IS NULL THEN
        RAISE EXCEPTION 'step transition % -> % is not allowed%', p_from_state, p_to_state,
            CASE WHEN p_event IS NULL THEN '' ELSE ' (' || p_event || ')' END
            USING ERRCODE = 'TK002';
    END IF;
    UPDATE tasker.workflow_steps SET state = p_to_state
    WHERE workflow_step_uuid = p_step_uuid AND state = p_from_state;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state, event, metadata)
    VALUES (p_step_uuid, p_from_state, p_to_state, v_event, coalesce(p_metadata, '{}'));
    RETURN true;
END
$$;
