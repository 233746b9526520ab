-- 0021_task_guard_after.sql - a task's state change no longer pays for a BEFORE trigger.
--
-- tasks_guard_state was a BEFORE UPDATE row trigger. PostgreSQL runs a BEFORE row trigger on
-- UPDATE only after locking the row again (GetTupleForTrigger: a tuple lock and its WAL
-- record), and then calls the plpgsql function; a WHEN clause cannot avoid that, as it is
-- checked after the lock. The engine's own state changes (move_task and
-- transition_task_state_atomic, the only writers of tasks.state) already check their
-- transition and say so with tasker.recorded_path (0008), so for them the trigger only set
-- the timestamps. `tasker bench sql`, three alternating runs before and after, p50 of
-- transition_task_state_atomic's five scenarios (BEGIN; call; ROLLBACK pipelined): 111-274
-- (mostly 120-134) us before, 114-144 (mostly 116-126) us after. (The same change measured
-- on a step's UPDATE with pgbench: 106-124 us with the BEFORE trigger, 84-86 us with the
-- skipped AFTER trigger, 77-80 us with no trigger; the steps' guard is left as it is.)
--
-- Now:
-- * the two functions set state_entered_at, updated_at and completed_at in their UPDATE;
-- * the guard is an AFTER UPDATE OF state row trigger whose WHEN clause skips the recorded
--   path, so for the engine it is not even queued;
-- * any other UPDATE of the state (an operator's SQL) is still checked against
--   task_state_transitions (TK001, the statement fails) and then gets its timestamps from the
--   trigger's own UPDATE of the row, so the columns mean what they meant.
-- An UPDATE ... RETURNING on that other path returns the row before its timestamps are set.

CREATE OR REPLACE FUNCTION tasker.guard_task_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.task_state_transitions
                   WHERE from_state = OLD.state AND to_state = NEW.state) THEN
        RAISE EXCEPTION 'task % cannot go from % to %', OLD.task_uuid, OLD.state, NEW.state
            USING ERRCODE = 'TK001';
    END IF;
    UPDATE tasker.tasks t
    SET state_entered_at = now(), updated_at = now(),
        completed_at = CASE WHEN NEW.state IN ('complete', 'error', 'cancelled', 'resolved_manually')
                            THEN now() END
    WHERE t.task_uuid = NEW.task_uuid;
    RETURN NULL;
END
$$;

DROP TRIGGER tasks_guard_state ON tasker.tasks;
CREATE TRIGGER tasks_guard_state AFTER UPDATE OF state ON tasker.tasks
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
                       AND current_setting('tasker.recorded_path', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION tasker.guard_task_state();

-- 0008's functions; the UPDATE now sets the timestamps the trigger used to set.

CREATE OR REPLACE FUNCTION tasker.move_task(p_task_uuid uuid, p_from varchar, p_to varchar,
                                            p_enqueued boolean, p_metadata jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_state varchar := p_from;
    v_next varchar;
    v_path varchar[] := '{}';
    v_events varchar[] := '{}';
    v_event varchar;
    v_guard text;
BEGIN
    WHILE v_state <> p_to LOOP
        v_next := CASE
            -- steps were queued: say so on the way (ready_steps_found, steps_enqueued)
            WHEN p_to = 'steps_in_process' AND p_enqueued
                 AND v_state IN ('initializing', 'evaluating_results', 'waiting_for_retry')
                THEN 'enqueuing_steps'
            WHEN tasker.task_transition_event(v_state, p_to) IS NOT NULL THEN p_to
            WHEN v_state = 'pending' THEN 'initializing'
            ELSE 'evaluating_results' END;
        v_event := tasker.task_transition_event(v_state, v_next);
        IF v_event IS NULL THEN
            RAISE EXCEPTION 'task transition % -> % is not allowed', v_state, v_next
                USING ERRCODE = 'TK001';
        END IF;
        v_path := v_path || v_next;
        v_events := v_events || v_event;
        v_state := v_next;
        IF cardinality(v_path) > 6 THEN
            RAISE EXCEPTION 'no path for task % from % to %', p_task_uuid, p_from, p_to;
        END IF;
    END LOOP;
    IF cardinality(v_path) = 0 THEN
        RETURN;
    END IF;

    v_guard := set_config('tasker.recorded_path', 'on', true);
    UPDATE tasker.tasks
    SET state = p_to, state_entered_at = now(), updated_at = now(),
        completed_at = CASE WHEN p_to IN ('complete', 'error', 'cancelled', 'resolved_manually')
                            THEN now() END
    WHERE task_uuid = p_task_uuid AND state = p_from;
    v_guard := set_config('tasker.recorded_path', 'off', true); -- (an assignment keeps FOUND)
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task % left state % while locked', p_task_uuid, p_from;
    END IF;
    -- one row per hop, in order (created_at one microsecond apart, so it sorts the same)
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, metadata, created_at)
    SELECT p_task_uuid, coalesce(v_path[h.i - 1], p_from), v_path[h.i], v_events[h.i],
           coalesce(p_metadata, '{}'), clock_timestamp() + make_interval(secs => h.i * 1e-6)
    FROM generate_subscripts(v_path, 1) AS h(i);

    IF p_to IN ('complete', 'error', 'cancelled', 'resolved_manually') THEN
        PERFORM pg_notify('tasker_task_finished',
                          json_build_object('task_uuid', p_task_uuid, 'status', p_to)::text);
    END IF;
END
$$;


CREATE OR REPLACE FUNCTION tasker.transition_task_state_atomic(
    p_task_uuid uuid, p_from_state varchar, p_to_state varchar,
    p_processor_uuid uuid DEFAULT NULL, p_metadata jsonb DEFAULT '{}', p_event varchar DEFAULT NULL)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_event varchar;
    v_guard text;
BEGIN
    SELECT event INTO v_event FROM tasker.task_state_transitions
    WHERE from_state = p_from_state AND to_state = p_to_state
      AND (p_event IS NULL OR event = p_event)
    ORDER BY event LIMIT 1;
    IF v_event IS NULL THEN
        RAISE EXCEPTION 'task transition % -> % is not allowed%', p_from_state, p_to_state,
            CASE WHEN p_event IS NULL THEN '' ELSE ' (' || p_event || ')' END
            USING ERRCODE = 'TK001';
    END IF;
    v_guard := set_config('tasker.recorded_path', 'on', true);
    UPDATE tasker.tasks
    SET state = p_to_state, state_entered_at = now(), updated_at = now(),
        completed_at = CASE WHEN p_to_state IN ('complete', 'error', 'cancelled', 'resolved_manually')
                            THEN now() END
    WHERE task_uuid = p_task_uuid AND state = p_from_state;
    v_guard := set_config('tasker.recorded_path', 'off', true); -- (an assignment keeps FOUND)
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, processor_uuid, metadata)
    VALUES (p_task_uuid, p_from_state, p_to_state, v_event, p_processor_uuid, coalesce(p_metadata, '{}'));
    RETURN true;
END
$$;

