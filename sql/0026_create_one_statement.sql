-- 0026_create_one_statement.sql - a task's rows are written in one statement, and a waited
-- task carries its notify_on_finish flag from the INSERT.
--
-- create_task_row (0017) wrote a task in four statements: the task, its history, the steps
-- with theirs, then the edges, which it found again by looking up every parent and child step
-- by (task, named step). Here the task's history, the steps, their history and the edges are
-- one statement: each step's UUID is made once, in `defs`, and an edge joins two rows of
-- `defs` by name. The foreign keys and the edges' guard (cycle and same-task check) still run,
-- at the end of that statement. On a copy of the `tasker dev` database, a linear task created
-- and rolled back with pgbench (prepared, alternating runs of 4-5 s, mean per call): 0.83-1.25
-- ms before, 0.78-0.95 ms after.
--
-- 0025's create_task(request, full, task_uuid, notify_on_finish), which POST /v1/tasks?wait_ms
-- calls, set the flag with an UPDATE of the new task's row after creating it. The flag is now
-- an argument of create_task_row and goes into the INSERT.

DROP FUNCTION tasker.create_task_row(jsonb, uuid);

-- 0017's create_task_row in one statement, with the flag.
CREATE FUNCTION tasker.create_task_row(p_request jsonb, p_task_uuid uuid DEFAULT NULL,
                                       p_notify_on_finish boolean DEFAULT false)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_nt record;
    v_task uuid;
    v_correlation uuid;
    v_msgs jsonb[];
    v_runs boolean; -- the template has steps: the task starts them now
    v_at timestamptz;
BEGIN
    SELECT nt.named_task_uuid, nt.configuration, nt.identity_strategy, ns.name AS ns_name
    INTO v_nt
    FROM tasker.named_tasks nt
    JOIN tasker.task_namespaces ns ON ns.task_namespace_uuid = nt.task_namespace_uuid
    WHERE ns.name = p_request->>'namespace' AND nt.name = p_request->>'name'
      AND nt.version = p_request->>'version';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'template %/%/% is not registered', p_request->>'namespace',
            p_request->>'name', p_request->>'version' USING ERRCODE = 'P0002';
    END IF;

    v_runs := jsonb_array_length(coalesce(v_nt.configuration->'steps', '[]')) > 0;
    INSERT INTO tasker.tasks (task_uuid, named_task_uuid, identity_hash, context, initiator,
                              source_system, reason, tags, priority, correlation_id,
                              parent_correlation_id, state, notify_on_finish)
    VALUES (coalesce(p_task_uuid, tasker.uuid_generate_v7()), v_nt.named_task_uuid,
            tasker.task_identity_hash(v_nt.named_task_uuid, v_nt.identity_strategy,
                                      p_request->'context', p_request->>'idempotency_key'),
            coalesce(p_request->'context', '{}'), p_request->>'initiator',
            p_request->>'source_system', p_request->>'reason',
            coalesce(p_request->'tags', '[]'), coalesce((p_request->>'priority')::integer, 0),
            coalesce((p_request->>'correlation_id')::uuid, tasker.uuid_generate_v7()),
            (p_request->>'parent_correlation_id')::uuid,
            CASE WHEN v_runs THEN 'steps_in_process' ELSE 'pending' END, p_notify_on_finish)
    RETURNING task_uuid, correlation_id INTO v_task, v_correlation;
    -- One statement writes the task's history (created, then with steps the hops of
    -- move_task(pending -> steps_in_process, enqueued), in order, one microsecond apart), the
    -- steps with theirs, and the edges. Each step's UUID is made once, in defs, so an edge joins
    -- two rows of defs by name.
    v_at := clock_timestamp();
    WITH task_history AS (
        INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, created_at)
        SELECT v_task, h.from_state, h.to_state,
               coalesce(h.event, tasker.task_transition_event(h.from_state, h.to_state)),
               v_at + make_interval(secs => h.i * 1e-6)
        FROM (VALUES (0, NULL::varchar, 'pending'::varchar, 'create'::varchar),
                     (1, 'pending', 'initializing', NULL),
                     (2, 'initializing', 'enqueuing_steps', NULL),
                     (3, 'enqueuing_steps', 'steps_in_process', NULL))
             h(i, from_state, to_state, event)
        WHERE h.i = 0 OR v_runs),
    defs AS (
        SELECT d.s, d.s->>'name' AS name, d.ord,
               jsonb_array_length(coalesce(d.s->'dependencies', '[]')) = 0 AS root,
               tasker.uuid_v7_in_order(v_at, d.ord::integer - 1) AS step_uuid, n.named_step_uuid
        FROM jsonb_array_elements(v_nt.configuration->'steps') WITH ORDINALITY d(s, ord)
        CROSS JOIN LATERAL (
            SELECT n.named_step_uuid FROM tasker.named_steps n WHERE n.name = d.s->>'name'
            OFFSET 0) n),
    created AS (
        INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, state,
                                           retryable, max_attempts, inputs, handler_callable,
                                           timeout_seconds)
        SELECT d.step_uuid, v_task, d.named_step_uuid,
               CASE WHEN d.root THEN 'enqueued' ELSE 'pending' END,
               coalesce((d.s->'retry'->>'retryable')::boolean, true),
               coalesce((d.s->'retry'->>'max_attempts')::integer, 3),
               coalesce(d.s->'handler'->'initialization', '{}'),
               d.s->'handler'->>'callable',
               (d.s->>'timeout_seconds')::integer
        FROM defs d
        RETURNING workflow_step_uuid, state, handler_callable),
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
        CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(child.s->'dependencies', '[]')) dep(name)
        JOIN defs parent ON parent.name = dep.name)
    SELECT array_agg(jsonb_build_object('task_uuid', v_task, 'step_uuid', c.workflow_step_uuid,
                                        'correlation_id', v_correlation,
                                        'handler', c.handler_callable)
                     ORDER BY c.workflow_step_uuid) FILTER (WHERE c.state = 'enqueued')
    INTO v_msgs FROM created c;

    IF NOT v_runs THEN
        PERFORM tasker.evaluate_task(v_task); -- no step to run: let it decide (complete)
    ELSE
        PERFORM tasker_mq.send_batch('worker_' || v_nt.ns_name || '_queue', v_msgs);
    END IF;
    RETURN v_task;
END
$$;

-- 0025's create_task(request, full, task_uuid, notify_on_finish): 0011's create_task with the
-- flag passed to create_task_row.
CREATE OR REPLACE FUNCTION tasker.create_task(p_request jsonb, p_full boolean, p_task_uuid uuid,
                                              p_notify_on_finish boolean)
RETURNS jsonb LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    v_task uuid := tasker.create_task_row(p_request, p_task_uuid, p_notify_on_finish);
BEGIN
    IF p_full THEN
        RETURN tasker.task_response(v_task);
    END IF;
    RETURN (SELECT jsonb_build_object('task_uuid', t.task_uuid, 'correlation_id', t.correlation_id,
                                      'namespace', p_request->>'namespace',
                                      'name', p_request->>'name',
                                      'version', p_request->>'version', 'status', t.state)
            FROM tasker.tasks t WHERE t.task_uuid = v_task);
END
$$;
