-- 0029_create_batch_at_once.sql - a batch of tasks (POST /v1/tasks/batch) is created in a few
-- set-based statements instead of one create_task_row call per task.
--
-- 0012's create_tasks called create_task_row once per request: five statements and a NOTIFY
-- per task, each statement run again for every task. Inside the server, 200
-- one-step tasks took 463-513 us per task (a loop of batches, each rolled back), which capped
-- how fast `tasker bench throughput --workflow noop` and the peer comparison could submit
-- (about 1,100 tasks/s) and took CPU from the workers.
--
-- create_tasks_at_once writes the whole batch in a few statements, whatever its size: the
-- tasks; their history, steps, steps' history and edges; one queue send (one NOTIFY) per
-- namespace; evaluate_task for a task whose template has no steps, as create_task_row does;
-- the answer. Each task gets what create_task_row would have written: the same
-- columns, history, root steps enqueued, edges by name and one message per root; the
-- messages of a namespace are sent in input order. UUIDs come from uuid_v7_in_order: tasks in
-- input order, each task's steps in template order.
--
-- Measured: the same loop of 200 one-step tasks, alternating, 121-141 us per task against
-- 472-487 us one by one;
-- `tasker bench throughput --workflow noop --tp-tasks 4000 --submit-batch 200`, four
-- alternating pairs: submissions accepted 731-1,095 tasks/s before, 1,964-2,277 after; tasks
-- done 546-724 tasks/s (median 604) before, 706-838 (median 763) after, higher in every pair.
--
-- create_tasks tries it first. When it fails, the attempt is rolled back and 0012's
-- one-by-one creation (now create_tasks_one_by_one) runs instead: it fails on the same item
-- and names it ("tasks[i]: ..."), with the SQLSTATE and DETAIL kept, as before. A failed
-- batch costs twice; a good one costs far less.

ALTER FUNCTION tasker.create_tasks(jsonb) RENAME TO create_tasks_one_by_one;

-- The tasks of p_requests (a JSON array of TaskRequests), in one go. Raises without naming the
-- item at fault (P0002 when a template is not registered); create_tasks names it. Returns the
-- short answers of create_task(request, false), in input order.
CREATE FUNCTION tasker.create_tasks_at_once(p_requests jsonb)
RETURNS jsonb LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_at timestamptz := clock_timestamp();
    v_tasks uuid[];
    v_created bigint;
    v_sends jsonb;
    v_send record;
BEGIN
    WITH req AS (
        SELECT r.ord, r.req, nt.named_task_uuid, nt.identity_strategy,
               jsonb_array_length(coalesce(nt.configuration->'steps', '[]')) > 0 AS runs,
               tasker.uuid_v7_in_order(v_at, r.ord::integer - 1) AS task_uuid
        FROM jsonb_array_elements(p_requests) WITH ORDINALITY r(req, ord)
        CROSS JOIN LATERAL (
            SELECT nt.named_task_uuid, nt.identity_strategy, nt.configuration
            FROM tasker.named_tasks nt
            JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
            WHERE ns.name = r.req->>'namespace' AND nt.name = r.req->>'name'
              AND nt.version = r.req->>'version'
            OFFSET 0) nt),
    inserted AS (
        INSERT INTO tasker.tasks (task_uuid, named_task_uuid, identity_hash, context, initiator,
                                  source_system, reason, tags, priority, correlation_id,
                                  parent_correlation_id, state)
        SELECT q.task_uuid, q.named_task_uuid,
               tasker.task_identity_hash(q.named_task_uuid, q.identity_strategy,
                                         q.req->'context', q.req->>'idempotency_key'),
               coalesce(q.req->'context', '{}'), q.req->>'initiator', q.req->>'source_system',
               q.req->>'reason', coalesce(q.req->'tags', '[]'),
               coalesce((q.req->>'priority')::integer, 0),
               coalesce((q.req->>'correlation_id')::uuid, tasker.uuid_generate_v7()),
               (q.req->>'parent_correlation_id')::uuid,
               CASE WHEN q.runs THEN 'steps_in_process' ELSE 'pending' END
        FROM req q ORDER BY q.ord
        RETURNING 1)
    SELECT array_agg(q.task_uuid ORDER BY q.ord), (SELECT count(*) FROM inserted)
    INTO v_tasks, v_created FROM req q;
    IF v_created <> jsonb_array_length(p_requests) THEN
        RAISE EXCEPTION 'a template of the batch is not registered' USING ERRCODE = 'P0002';
    END IF;

    -- As create_task_row: the task's history (created, then with steps the hops to
    -- steps_in_process, one microsecond apart), the steps with theirs (UUIDs in template
    -- order), the edges by name.
    WITH t AS (
        SELECT u.task_uuid, u.ord, x.correlation_id, x.state, x.configuration, x.ns_name
        FROM unnest(v_tasks) WITH ORDINALITY u(task_uuid, ord)
        CROSS JOIN LATERAL (
            SELECT tk.correlation_id, tk.state, nt.configuration, ns.name AS ns_name
            FROM tasker.tasks tk
            JOIN tasker.named_tasks nt ON nt.named_task_uuid = tk.named_task_uuid
            JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
            WHERE tk.task_uuid = u.task_uuid
            OFFSET 0) x),
    hops AS MATERIALIZED (
        SELECT h.i, h.from_state, h.to_state,
               coalesce(h.event, tasker.task_transition_event(h.from_state, h.to_state)) AS event
        FROM (VALUES (0, NULL::varchar, 'pending'::varchar, 'create'::varchar),
                     (1, 'pending', 'initializing', NULL),
                     (2, 'initializing', 'enqueuing_steps', NULL),
                     (3, 'enqueuing_steps', 'steps_in_process', NULL))
             h(i, from_state, to_state, event)),
    task_history AS (
        INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, created_at)
        SELECT t.task_uuid, h.from_state, h.to_state, h.event,
               v_at + make_interval(secs => h.i * 1e-6)
        FROM t CROSS JOIN hops h
        WHERE h.i = 0 OR t.state = 'steps_in_process'),
    defs AS (
        SELECT t.task_uuid, d.s, d.s->>'name' AS name,
               jsonb_array_length(coalesce(d.s->'dependencies', '[]')) = 0 AS root,
               tasker.uuid_v7_in_order(v_at, d.ord::integer - 1) AS step_uuid,
               n.named_step_uuid
        FROM t
        CROSS JOIN LATERAL jsonb_array_elements(t.configuration->'steps') WITH ORDINALITY d(s, ord)
        CROSS JOIN LATERAL (
            SELECT n.named_step_uuid FROM tasker.named_steps n WHERE n.name = d.s->>'name'
            OFFSET 0) n),
    created AS (
        INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, state,
                                           retryable, max_attempts, inputs, handler_callable,
                                           timeout_seconds)
        SELECT d.step_uuid, d.task_uuid, d.named_step_uuid,
               CASE WHEN d.root THEN 'enqueued' ELSE 'pending' END,
               coalesce((d.s->'retry'->>'retryable')::boolean, true),
               coalesce((d.s->'retry'->>'max_attempts')::integer, 3),
               coalesce(d.s->'handler'->'initialization', '{}'),
               d.s->'handler'->>'callable',
               (d.s->>'timeout_seconds')::integer
        FROM defs d
        RETURNING workflow_step_uuid, task_uuid, state, handler_callable),
    history AS (
        INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state,
                                                      event, created_at)
        SELECT c.workflow_step_uuid, NULL, 'pending', 'create', clock_timestamp() FROM created c
        UNION ALL
        SELECT c.workflow_step_uuid, 'pending', 'enqueued', 'enqueue',
               clock_timestamp() + interval '1 microsecond'
        FROM created c WHERE c.state = 'enqueued'),
    edges AS (
        INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid)
        SELECT parent.step_uuid, child.step_uuid
        FROM defs child
        CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(child.s->'dependencies', '[]'))
                           dep(name)
        JOIN defs parent ON parent.task_uuid = child.task_uuid AND parent.name = dep.name)
    -- the messages of the root steps, per namespace, in batch order
    SELECT jsonb_object_agg(m.ns_name, m.msgs) INTO v_sends
    FROM (SELECT t.ns_name,
                 jsonb_agg(jsonb_build_object('task_uuid', t.task_uuid,
                                              'step_uuid', c.workflow_step_uuid,
                                              'correlation_id', t.correlation_id,
                                              'handler', c.handler_callable)
                           ORDER BY t.ord, c.workflow_step_uuid) AS msgs
          FROM created c JOIN t ON t.task_uuid = c.task_uuid
          WHERE c.state = 'enqueued'
          GROUP BY t.ns_name) m;

    FOR v_send IN SELECT key, value FROM jsonb_each(coalesce(v_sends, '{}')) LOOP
        PERFORM tasker_mq.send_batch('worker_' || v_send.key || '_queue',
                                     ARRAY(SELECT e.msg FROM jsonb_array_elements(v_send.value)
                                                             WITH ORDINALITY e(msg, ord)
                                           ORDER BY e.ord));
    END LOOP;
    -- no step to run: let evaluate_task decide (complete), as create_task_row does
    PERFORM tasker.evaluate_task(tk.task_uuid)
    FROM tasker.tasks tk WHERE tk.task_uuid = ANY (v_tasks) AND tk.state = 'pending';

    RETURN (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'task_uuid', tk.task_uuid, 'correlation_id', tk.correlation_id,
                       'namespace', p_requests->(u.ord::integer - 1)->>'namespace',
                       'name', p_requests->(u.ord::integer - 1)->>'name',
                       'version', p_requests->(u.ord::integer - 1)->>'version',
                       'status', tk.state) ORDER BY u.ord), '[]')
            FROM unnest(v_tasks) WITH ORDINALITY u(task_uuid, ord)
            CROSS JOIN LATERAL (SELECT tk.task_uuid, tk.correlation_id, tk.state
                                FROM tasker.tasks tk WHERE tk.task_uuid = u.task_uuid
                                OFFSET 0) tk);
END
$$;

-- POST /v1/tasks/batch: the batch at once; on any error, one by one, to name the item.
CREATE FUNCTION tasker.create_tasks(p_requests jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_typeof(p_requests) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'create_tasks expects a JSON array of task requests'
            USING ERRCODE = '22023';
    END IF;
    BEGIN
        RETURN tasker.create_tasks_at_once(p_requests);
    EXCEPTION WHEN OTHERS THEN
        NULL; -- rolled back: the one-by-one creation below fails on the same item and names it
    END;
    RETURN tasker.create_tasks_one_by_one(p_requests);
END
$$;
