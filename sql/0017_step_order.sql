-- 0017_step_order.sql - a task's steps sort in the template's order.
--
-- Step UUIDs came from uuid_generate_v7: the creation millisecond, then random bits. A task's
-- steps are created within one millisecond, so sorting them by UUID, as the REST API's step
-- lists and the root steps' queue messages do, put them in a random order: `tasker task
-- steps` could list a linear task's last step first. Each step's UUID now carries its position
-- in the template right after the millisecond (uuid_v7_in_order), so within a task UUID order
-- is template order. The UUIDs stay valid version-7 UUIDs: the task's creation millisecond,
-- then the position where RFC 9562 allows a counter, then 56 random bits. create_task_row is
-- 0015's, with the steps' UUIDs given that way.

-- A version-7 UUID for p_at's millisecond whose next 18 bits are p_seq (0 .. 262143; taken
-- modulo 2^18 above that), so UUIDs made for one p_at sort by p_seq. 12 bits go in rand_a,
-- 6 in rand_b after the variant; the remaining 56 bits are random.
CREATE FUNCTION tasker.uuid_v7_in_order(p_at timestamptz, p_seq integer) RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        substring(int8send(floor(extract(epoch FROM p_at) * 1000)::bigint) FROM 3)
        || int2send((28672 | ((p_seq >> 6) & 4095))::smallint)                  -- 0x7000: version
        || set_byte(substring(uuid_send(gen_random_uuid()) FROM 9), 0, 128 | (p_seq & 63)),
        'hex')::uuid
$$;

CREATE OR REPLACE FUNCTION tasker.create_task_row(p_request jsonb, p_task_uuid uuid DEFAULT NULL)
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
                              parent_correlation_id, state)
    VALUES (coalesce(p_task_uuid, tasker.uuid_generate_v7()), v_nt.named_task_uuid,
            tasker.task_identity_hash(v_nt.named_task_uuid, v_nt.identity_strategy,
                                      p_request->'context', p_request->>'idempotency_key'),
            coalesce(p_request->'context', '{}'), p_request->>'initiator',
            p_request->>'source_system', p_request->>'reason',
            coalesce(p_request->'tags', '[]'), coalesce((p_request->>'priority')::integer, 0),
            coalesce((p_request->>'correlation_id')::uuid, tasker.uuid_generate_v7()),
            (p_request->>'parent_correlation_id')::uuid,
            CASE WHEN v_runs THEN 'steps_in_process' ELSE 'pending' END)
    RETURNING task_uuid, correlation_id INTO v_task, v_correlation;
    -- created, then (with steps) the hops move_task(pending -> steps_in_process, enqueued)
    -- records, in order, one microsecond apart
    v_at := clock_timestamp();
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, event, created_at)
    SELECT v_task, h.from_state, h.to_state,
           coalesce(h.event, tasker.task_transition_event(h.from_state, h.to_state)),
           v_at + make_interval(secs => h.i * 1e-6)
    FROM (VALUES (0, NULL::varchar, 'pending'::varchar, 'create'::varchar),
                 (1, 'pending', 'initializing', NULL),
                 (2, 'initializing', 'enqueuing_steps', NULL),
                 (3, 'enqueuing_steps', 'steps_in_process', NULL)) h(i, from_state, to_state, event)
    WHERE h.i = 0 OR v_runs;

    WITH defs AS (
        SELECT s, jsonb_array_length(coalesce(s->'dependencies', '[]')) = 0 AS root, ord
        FROM jsonb_array_elements(v_nt.configuration->'steps') WITH ORDINALITY e(s, ord)),
    created AS (
        INSERT INTO tasker.workflow_steps (workflow_step_uuid, task_uuid, named_step_uuid, state,
                                           retryable, max_attempts, inputs, handler_callable,
                                           timeout_seconds)
        SELECT tasker.uuid_v7_in_order(v_at, d.ord::integer - 1), v_task, n.named_step_uuid,
               CASE WHEN d.root THEN 'enqueued' ELSE 'pending' END,
               coalesce((d.s->'retry'->>'retryable')::boolean, true),
               coalesce((d.s->'retry'->>'max_attempts')::integer, 3),
               coalesce(d.s->'handler'->'initialization', '{}'),
               d.s->'handler'->>'callable',
               (d.s->>'timeout_seconds')::integer
        FROM defs d
        CROSS JOIN LATERAL (
            SELECT n.named_step_uuid FROM tasker.named_steps n WHERE n.name = d.s->>'name'
            OFFSET 0) n
        RETURNING workflow_step_uuid, state, handler_callable),
    history AS (
        INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, from_state, to_state,
                                                      event, created_at)
        SELECT c.workflow_step_uuid, NULL, 'pending', 'create', clock_timestamp() FROM created c
        UNION ALL
        SELECT c.workflow_step_uuid, 'pending', 'enqueued', 'enqueue',
               clock_timestamp() + interval '1 microsecond'
        FROM created c WHERE c.state = 'enqueued')
    SELECT array_agg(jsonb_build_object('task_uuid', v_task, 'step_uuid', c.workflow_step_uuid,
                                        'correlation_id', v_correlation,
                                        'handler', c.handler_callable)
                     ORDER BY c.workflow_step_uuid) FILTER (WHERE c.state = 'enqueued')
    INTO v_msgs FROM created c;

    INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid)
    SELECT parent.workflow_step_uuid, child.workflow_step_uuid
    FROM jsonb_array_elements(v_nt.configuration->'steps') s
    CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(s->'dependencies', '[]')) dep(name)
    CROSS JOIN LATERAL (
        SELECT ws.workflow_step_uuid FROM tasker.named_steps n
        JOIN tasker.workflow_steps ws ON ws.task_uuid = v_task AND ws.named_step_uuid = n.named_step_uuid
        WHERE n.name = s->>'name'
        OFFSET 0) child
    CROSS JOIN LATERAL (
        SELECT ws.workflow_step_uuid FROM tasker.named_steps n
        JOIN tasker.workflow_steps ws ON ws.task_uuid = v_task AND ws.named_step_uuid = n.named_step_uuid
        WHERE n.name = dep.name
        OFFSET 0) parent;

    IF NOT v_runs THEN
        PERFORM tasker.evaluate_task(v_task); -- no step to run: let it decide (complete)
    ELSE
        PERFORM tasker_mq.send_batch('worker_' || v_nt.ns_name || '_queue', v_msgs);
    END IF;
    RETURN v_task;
END
$$;
