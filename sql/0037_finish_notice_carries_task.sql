-- 0037_finish_notice_carries_task.sql - the finish notice carries the finished task, so a
-- waiting request answers without reading it again.
--
-- A request waiting for a task (POST /v1/tasks?wait_ms, GET /v1/tasks/{uuid}?wait_ms) was
-- woken by NOTIFY tasker_task_finished and then read the task's full response in a query of
-- its own. Timed inside a patched server (linear workflow, 200 tasks, medians), that read
-- took 0.51 ms of the last 1.6 ms between the last step's result and the response's send:
-- a pooled connection idle since the task's creation, a round trip, and task_response.
--
-- Now the notice is sent at commit by a deferred constraint trigger on the task's move to a
-- terminal state (when someone waits: notify_on_finish, 0025), so it sees everything its
-- transaction did, and its payload is two lines:
--   {"task_uuid": "...", "status": "complete"}    the notice, as before
--   {...}                                          task_response of the finished task
-- The second line is left out when the payload would reach PostgreSQL's 8,000-byte limit
-- (a large context or many steps); the waiter then reads the task as before. jsonb's text
-- never holds a raw newline, so the first newline ends the notice.
--
-- move_task no longer notifies (0025's, otherwise unchanged).

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
END
$$;

-- The notice of a finished task someone waits for, sent at commit (see the header). Should
-- building the task's response fail, the notice goes without it: the commit it belongs to
-- (a step's result, a cancel) must not fail for an announcement.
CREATE FUNCTION tasker.announce_finished_task() RETURNS trigger
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_task jsonb;
    v_notice text;
    v_payload text;
BEGIN
    BEGIN
        v_task := tasker.task_response(NEW.task_uuid);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'task %: finish notice without the task: %', NEW.task_uuid, SQLERRM;
    END;
    v_notice := json_build_object('task_uuid', NEW.task_uuid,
                                  'status', coalesce(v_task->>'status', NEW.state))::text;
    v_payload := v_notice || E'\n' || v_task::text;
    IF v_payload IS NULL OR octet_length(v_payload) >= 8000 THEN
        v_payload := v_notice;
    END IF;
    PERFORM pg_notify('tasker_task_finished', v_payload);
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER tasks_announce_finish AFTER UPDATE OF state ON tasker.tasks
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.notify_on_finish AND NEW.state IN ('complete', 'error', 'cancelled', 'resolved_manually'))
    EXECUTE FUNCTION tasker.announce_finished_task();
