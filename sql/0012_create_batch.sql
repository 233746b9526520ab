-- 0012_create_batch.sql - many tasks created in one transaction (POST /v1/tasks/batch).
--
-- Each POST /v1/tasks is one transaction, so one durable commit (a WAL flush) per task, and
-- since creating a task queues its root steps, whose send NOTIFYs, those commits are also
-- serialized by PostgreSQL's global notify lock: task creation, not the workers, bounded the
-- no-op throughput. create_tasks creates a whole array of TaskRequests with create_task_row
-- (0011), one after the other in input order, in the caller's single transaction: one commit
-- for the batch.
--
-- All or nothing: when item i fails (unknown template, duplicate identity, a bad value), the
-- error is raised again with its SQLSTATE and DETAIL kept and its message prefixed with
-- "tasks[i]: " (i 0-based), and the caller's transaction rolls back every task of the batch.
-- The index is tracked by one exception block around the whole loop (one subtransaction per
-- call, not one per item: a transaction with more than 64 subtransactions makes every
-- snapshot check of other sessions consult pg_subtrans).
--
-- Returns a JSON array with, in input order, the short answer of create_task(p_request,
-- false): task_uuid, correlation_id, namespace, name, version, status.

CREATE FUNCTION tasker.create_tasks(p_requests jsonb)
RETURNS jsonb LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_uuids uuid[] := '{}';
    v_index integer := 0;
    v_request jsonb;
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    IF jsonb_typeof(p_requests) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'create_tasks expects a JSON array of task requests'
            USING ERRCODE = '22023';
    END IF;
    BEGIN
        FOR v_request IN
            SELECT r.request FROM jsonb_array_elements(p_requests) WITH ORDINALITY r(request, ord)
            ORDER BY r.ord
        LOOP
            v_uuids := v_uuids || tasker.create_task_row(v_request);
            v_index := v_index + 1;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL;
        v_message := format('tasks[%s]: %s', v_index, v_message);
        IF coalesce(v_detail, '') <> '' THEN
            RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_message, DETAIL = v_detail;
        END IF;
        RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_message;
    END;
    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'task_uuid', t.task_uuid, 'correlation_id', t.correlation_id,
                       'namespace', p_requests->(u.ord::integer - 1)->>'namespace',
                       'name', p_requests->(u.ord::integer - 1)->>'name',
                       'version', p_requests->(u.ord::integer - 1)->>'version',
                       'status', t.state) ORDER BY u.ord), '[]')
            FROM unnest(v_uuids) WITH ORDINALITY u(task_uuid, ord)
            JOIN tasker.tasks t ON t.task_uuid = u.task_uuid);
END
$$;
