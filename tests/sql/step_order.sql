-- step_order.sql - a task's steps sort in the template's order (0017_step_order.sql): the
-- UUIDs of uuid_v7_in_order sort by their sequence number and are valid version-7 UUIDs, and
-- the REST API's step lists and the root steps' queue messages follow the template.

\ir lib/fixtures.sql

-- uuid_v7_in_order: order, version, variant and millisecond, across the byte boundaries of
-- the 18-bit sequence (63/64, 4095/4096) and past its end (modulo 2^18).
DO $$
DECLARE
    v_at timestamptz := '2026-11-26 12:34:56.789123+00';
    v_ms text := lpad(to_hex(floor(extract(epoch FROM v_at) * 1000)::bigint), 12, '0');
    v_bad integer;
    v_u uuid;
BEGIN
    WITH u AS (SELECT i, tasker.uuid_v7_in_order(v_at, i) AS id
               FROM generate_series(0, 5000) i)
    SELECT count(*) INTO v_bad FROM (
        SELECT i, row_number() OVER (ORDER BY id) - 1 AS pos FROM u) s
    WHERE s.i <> s.pos;
    PERFORM test.eq(v_bad, 0, 'UUIDs sort by their sequence number');

    v_u := tasker.uuid_v7_in_order(v_at, 4096 + 65);
    PERFORM test.eq(replace(v_u::text, '-', '') ~ ('^' || v_ms || '7041[89ab]'), true,
                    'millisecond, version 7, sequence 4161, variant: ' || v_u);
    PERFORM test.eq(substr(tasker.uuid_v7_in_order(v_at, 262144 + 3)::text, 1, 21),
                    substr(tasker.uuid_v7_in_order(v_at, 3)::text, 1, 21),
                    'sequence modulo 2^18');
    PERFORM test.eq(tasker.uuid_v7_in_order(v_at, 7) <> tasker.uuid_v7_in_order(v_at, 7), true,
                    'the rest is random');
END $$;

-- A template whose step names do not sort in its own order, created many times over so that
-- a random order would show: every task lists its steps, and queues its roots, as declared.
DO $$
DECLARE
    v_names text[] := '{zeta, alpha, mid, beta, omega, delta, kappa, gamma, a2, z1, m3, b9}';
    v_steps jsonb := '[]';
    v_task uuid;
    v_listed text[];
    v_queued text[];
BEGIN
    FOR i IN 1..array_length(v_names, 1) LOOP
        v_steps := v_steps || jsonb_build_object(
            'name', v_names[i], 'handler', jsonb_build_object('callable', 'test.noop'),
            'dependencies', CASE WHEN i IN (1, 4, 9) THEN '[]'::jsonb
                                 ELSE jsonb_build_array(v_names[i - 1]) END);
    END LOOP;
    PERFORM tasker.register_template(jsonb_build_object(
        'name', 'ordered', 'namespace_name', 'order_ns', 'version', '1.0.0', 'steps', v_steps));

    FOR n IN 1..50 LOOP
        v_task := tasker.create_task_row(jsonb_build_object(
            'namespace', 'order_ns', 'name', 'ordered', 'version', '1.0.0',
            'context', jsonb_build_object('n', n)));
        SELECT array_agg(s->>'name' ORDER BY o) INTO v_listed
        FROM jsonb_array_elements(tasker.task_steps_response(v_task)) WITH ORDINALITY e(s, o);
        PERFORM test.eq(v_listed, v_names, 'steps listed in template order, task ' || n);
        SELECT array_agg(r->>'name' ORDER BY o) INTO v_listed
        FROM jsonb_array_elements(tasker.task_response(v_task)->'steps') WITH ORDINALITY e(r, o);
        PERFORM test.eq(v_listed, v_names, 'task_response steps in template order, task ' || n);

        SELECT array_agg(ns.name ORDER BY m.msg_id) INTO v_queued
        FROM tasker_mq.messages m
        JOIN tasker.workflow_steps ws ON ws.workflow_step_uuid = (m.message->>'step_uuid')::uuid
        JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
        WHERE ws.task_uuid = v_task;
        PERFORM test.eq(v_queued, '{zeta, beta, a2}'::text[], 'roots queued in order, task ' || n);
    END LOOP;
END $$;
