-- create_batch.sql - tasker.create_tasks (0012_create_batch.sql): a batch of TaskRequests
-- created in one transaction, answered in input order with create_task's short answer; all
-- or nothing, the failing item named by its 0-based index with its SQLSTATE kept. A good
-- batch of three or more is created at once (0029_create_batch_at_once.sql, 0030), each task
-- as one-by-one creation makes it.

\ir lib/fixtures.sql

CREATE FUNCTION pg_temp.req(p_ns text, p_name text, p_context jsonb,
                            p_extra jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('namespace', p_ns, 'name', p_name, 'version', '1.0.0',
                              'context', p_context, 'initiator', 'batch-test') || p_extra
$$;

-- Run create_tasks(p_requests) expecting it to fail with p_sqlstate and a message that starts
-- with p_prefix; returns the message. Its effects are rolled back (the block's subtransaction).
CREATE FUNCTION pg_temp.batch_error(p_requests jsonb, p_sqlstate text, p_prefix text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_msg text;
BEGIN
    BEGIN
        PERFORM tasker.create_tasks(p_requests);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        PERFORM test.eq(v_state, p_sqlstate, 'SQLSTATE of ' || v_msg);
        IF left(v_msg, length(p_prefix)) <> p_prefix THEN
            RAISE EXCEPTION 'assertion failed: message "%" does not start with "%"', v_msg,
                p_prefix;
        END IF;
        RETURN v_msg;
    END;
    RAISE EXCEPTION 'assertion failed: create_tasks(%) succeeded, expected SQLSTATE %',
        p_requests, p_sqlstate;
END
$$;

CREATE FUNCTION pg_temp.counts() RETURNS text LANGUAGE sql AS $$
    SELECT format('%s tasks, %s steps, %s messages', (SELECT count(*) FROM tasker.tasks),
                  (SELECT count(*) FROM tasker.workflow_steps),
                  (SELECT count(*) FROM tasker_mq.messages))
$$;


DO $$
BEGIN
    PERFORM tasker.register_template(jsonb_build_object('name', 'chain', 'namespace_name', 'cb',
        'version', '1.0.0', 'steps', jsonb_build_array(test.template_step('a'),
                                                        test.template_step('b', '{a}'))));
    PERFORM tasker.register_template(jsonb_build_object('name', 'one', 'namespace_name', 'cb2',
        'version', '1.0.0', 'steps', jsonb_build_array(test.template_step('only'))));
    PERFORM tasker.register_template(jsonb_build_object('name', 'keyed', 'namespace_name', 'cb',
        'version', '1.0.0', 'identity_strategy', 'caller_provided',
        'steps', jsonb_build_array(test.template_step('k'))));
    PERFORM tasker.register_template(jsonb_build_object('name', 'none', 'namespace_name', 'cb',
        'version', '1.0.0', 'steps', '[]'::jsonb));
END $$;

-- Results: one per request, in input order, with the shape of create_task(p, false); each
-- task is created as create_task creates it (root steps enqueued, their messages sent).
DO $$
DECLARE
    v_reqs jsonb := '[]';
    v_out jsonb;
    v_single jsonb;
    v_item jsonb;
    v_task record;
BEGIN
    FOR i IN 0..9 LOOP
        v_reqs := v_reqs || jsonb_build_array(pg_temp.req(
            CASE WHEN i % 3 = 1 THEN 'cb2' ELSE 'cb' END,
            CASE WHEN i % 3 = 1 THEN 'one' ELSE 'chain' END,
            jsonb_build_object('n', i), jsonb_build_object('priority', i)));
    END LOOP;
    v_out := tasker.create_tasks(v_reqs);
    PERFORM test.eq(jsonb_typeof(v_out), 'array', 'answer is an array');
    PERFORM test.eq(jsonb_array_length(v_out), 10, 'one answer per request');
    v_single := tasker.create_task(pg_temp.req('cb', 'chain', '{"single": true}'), false);
    FOR i IN 0..9 LOOP
        v_item := v_out->i;
        PERFORM test.eq((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(v_item) k),
                        (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(v_single) k),
                        format('item %s has the keys of create_task(p, false)', i));
        SELECT t.context, t.priority, t.correlation_id, t.state, t.initiator INTO v_task
        FROM tasker.tasks t WHERE t.task_uuid = (v_item->>'task_uuid')::uuid;
        PERFORM test.eq(v_task.context, jsonb_build_object('n', i), format('item %s in order', i));
        PERFORM test.eq(v_task.priority, i, format('item %s priority', i));
        PERFORM test.eq(v_task.initiator::text, 'batch-test', format('item %s initiator', i));
        PERFORM test.eq(v_item->>'correlation_id', v_task.correlation_id::text,
                        format('item %s correlation_id', i));
        PERFORM test.eq(v_item->>'status', v_task.state::text, format('item %s status', i));
        PERFORM test.eq(v_item->>'status', 'steps_in_process', format('item %s running', i));
        PERFORM test.eq(v_item->>'namespace', v_reqs->i->>'namespace', format('item %s ns', i));
        PERFORM test.eq(v_item->>'name', v_reqs->i->>'name', format('item %s name', i));
        PERFORM test.eq(v_item->>'version', '1.0.0', format('item %s version', i));
    END LOOP;
    -- 7 chains (a enqueued, b pending) and 3 one-step tasks: 10 roots queued, 17 steps
    PERFORM test.eq((SELECT count(*) FROM tasker.workflow_steps ws JOIN tasker.tasks t
                     USING (task_uuid) WHERE t.initiator = 'batch-test' AND t.context ? 'n'),
                    17::bigint, 'steps of the batch');
    PERFORM test.eq((SELECT count(*) FROM tasker.workflow_steps ws JOIN tasker.tasks t
                     USING (task_uuid) WHERE t.initiator = 'batch-test' AND t.context ? 'n'
                     AND ws.state = 'enqueued'), 10::bigint, 'roots of the batch enqueued');
    PERFORM test.eq((SELECT count(*) FROM tasker_mq.messages
                     WHERE queue_name IN ('worker_cb_queue', 'worker_cb2_queue')), 11::bigint,
                    'one message per root (and the single task''s)');
    PERFORM test.eq(tasker.create_tasks('[]'), '[]'::jsonb, 'an empty batch creates nothing');
END $$;

-- What a task's creation wrote, but its identity: state, priority, tags, history, steps with
-- their history in UUID order, edges by name, and its queue messages in order.
CREATE FUNCTION pg_temp.shape(p_task uuid) RETURNS text LANGUAGE sql AS $$
    SELECT concat_ws(' | ',
        (SELECT t.state || ' ' || t.priority || ' ' || t.tags::text || ' ' || t.initiator
         FROM tasker.tasks t WHERE t.task_uuid = p_task),
        (SELECT string_agg(coalesce(h.from_state, '-') || '>' || h.to_state || ':' || h.event,
                           ',' ORDER BY h.created_at)
         FROM tasker.task_transitions h WHERE h.task_uuid = p_task),
        (SELECT string_agg(n.name || '=' || ws.state || '/' || ws.handler_callable || '/'
                           || ws.max_attempts || '/' || ws.retryable || '/' || ws.inputs::text
                           || '[' || (SELECT string_agg(coalesce(h.from_state, '-') || '>'
                                                        || h.to_state, ',' ORDER BY h.created_at)
                                      FROM tasker.workflow_step_transitions h
                                      WHERE h.workflow_step_uuid = ws.workflow_step_uuid) || ']',
                           ',' ORDER BY ws.workflow_step_uuid)
         FROM tasker.workflow_steps ws JOIN tasker.named_steps n USING (named_step_uuid)
         WHERE ws.task_uuid = p_task),
        test.edges(p_task),
        (SELECT string_agg(m.queue_name || ':' || (m.message->>'handler') || ':'
                           || (m.message->>'correlation_id' = t.correlation_id::text) || ':'
                           || (SELECT ws.state FROM tasker.workflow_steps ws
                               WHERE ws.workflow_step_uuid = (m.message->>'step_uuid')::uuid
                                 AND ws.task_uuid = p_task),
                           ';' ORDER BY m.msg_id)
         FROM tasker_mq.messages m JOIN tasker.tasks t ON t.task_uuid = p_task
         WHERE m.message->>'task_uuid' = p_task::text))
$$;

-- The same requests at once and one by one (their contexts differ, so do their identities):
-- every task the same, in input order; a template without steps completes at once.
DO $$
DECLARE
    v_reqs jsonb := '[]';
    v_again jsonb;
    v_at_once jsonb;
    v_one jsonb;
BEGIN
    FOR i IN 0..5 LOOP
        v_reqs := v_reqs || jsonb_build_array(pg_temp.req(
            (ARRAY['cb', 'cb2', 'cb'])[i % 3 + 1], (ARRAY['chain', 'one', 'none'])[i % 3 + 1],
            jsonb_build_object('same', i), jsonb_build_object('priority', i, 'tags', '["t"]')));
    END LOOP;
    SELECT jsonb_agg(r || jsonb_build_object('context', (r->'context') || '{"again": true}')
                     ORDER BY o)
    INTO v_again FROM jsonb_array_elements(v_reqs) WITH ORDINALITY x(r, o);
    v_at_once := tasker.create_tasks_at_once(v_reqs);
    v_one := tasker.create_tasks_one_by_one(v_again);
    FOR i IN 0..5 LOOP
        PERFORM test.eq(pg_temp.shape((v_at_once->i->>'task_uuid')::uuid),
                        pg_temp.shape((v_one->i->>'task_uuid')::uuid),
                        format('item %s as one by one', i));
        PERFORM test.eq((v_at_once->i) - 'task_uuid' - 'correlation_id',
                        (v_one->i) - 'task_uuid' - 'correlation_id',
                        format('answer %s as one by one', i));
    END LOOP;
    PERFORM test.eq(v_at_once->2->>'status', 'complete', 'a template without steps completes');
    PERFORM test.eq((SELECT array_agg((e->>'task_uuid')::uuid ORDER BY o)
                     FROM jsonb_array_elements(v_at_once) WITH ORDINALITY x(e, o)),
                    (SELECT array_agg((e->>'task_uuid')::uuid ORDER BY (e->>'task_uuid')::uuid)
                     FROM jsonb_array_elements(v_at_once) e),
                    'task UUIDs in input order');

    -- create_tasks takes that path for a good batch of three or more (0030): one creation
    -- time for all its tasks
    v_at_once := tasker.create_tasks(jsonb_build_array(pg_temp.req('cb', 'chain', '{"w": 1}'),
        pg_temp.req('cb2', 'one', '{"w": 2}'), pg_temp.req('cb', 'chain', '{"w": 3}')));
    PERFORM test.eq((SELECT count(DISTINCT h.created_at) FROM tasker.task_transitions h
                     WHERE h.event = 'create'
                       AND h.task_uuid IN (SELECT (e->>'task_uuid')::uuid
                                           FROM jsonb_array_elements(v_at_once) e)),
                    1::bigint, 'create_tasks creates a good batch at once');
    -- at once, an unregistered template fails the batch rather than being skipped
    PERFORM test.expect_error(format('SELECT tasker.create_tasks_at_once(%L::jsonb)',
                                     jsonb_build_array(pg_temp.req('cb', 'chain', '{"z": 1}'),
                                                       pg_temp.req('nowhere', 'chain', '{}'))),
                              'P0002', 'create_tasks_at_once with an unregistered template');
END $$;

-- All or nothing: a bad item in the middle rolls back the items before it; the error names
-- the item, keeps the SQLSTATE (P0002: 404 over REST; 23505: 409) and the DETAIL.
DO $$
DECLARE
    v_before text := pg_temp.counts();
    v_msg text;
    v_detail text;
BEGIN
    v_msg := pg_temp.batch_error(jsonb_build_array(
        pg_temp.req('cb', 'chain', '{"m": 0}'), pg_temp.req('cb2', 'one', '{"m": 1}'),
        pg_temp.req('nowhere', 'chain', '{"m": 2}'), pg_temp.req('cb', 'chain', '{"m": 3}')),
        'P0002', 'tasks[2]: ');
    PERFORM test.eq(v_msg, 'tasks[2]: template nowhere/chain/1.0.0 is not registered',
                    'unknown template message');
    PERFORM test.eq(pg_temp.counts(), v_before, 'nothing created by the failed batch');

    -- the same identity twice in one batch: the second conflicts
    v_msg := pg_temp.batch_error(jsonb_build_array(
        pg_temp.req('cb', 'chain', '{"d": 1}'), pg_temp.req('cb', 'chain', '{"d": 2}'),
        pg_temp.req('cb', 'chain', '{"d": 1}')), '23505', 'tasks[2]: duplicate key');
    PERFORM test.eq(pg_temp.counts(), v_before, 'nothing created by the duplicate batch');

    -- the identity of an existing task (created above with context {"n": 0}), item 0
    BEGIN
        PERFORM tasker.create_tasks(jsonb_build_array(pg_temp.req('cb', 'chain', '{"n": 0}')));
        RAISE EXCEPTION 'assertion failed: a duplicate of an existing task was created';
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
        PERFORM test.eq(left(v_msg, 10), 'tasks[0]: ', 'existing duplicate is item 0');
        PERFORM test.eq(v_detail LIKE 'Key (identity_hash)=%already exists.', true,
                        'the DETAIL is kept: ' || coalesce(v_detail, 'NULL'));
    END;

    -- an idempotency key tells identical contexts apart
    PERFORM test.eq(jsonb_array_length(tasker.create_tasks(jsonb_build_array(
        pg_temp.req('cb', 'chain', '{"d": 1}', '{"idempotency_key": "k1"}'),
        pg_temp.req('cb', 'chain', '{"d": 1}', '{"idempotency_key": "k2"}')))), 2,
        'distinct idempotency keys');

    -- other errors keep their SQLSTATE too: a caller_provided template without a key
    -- (22023), a malformed uuid (22P02), a priority out of range (23514)
    v_before := pg_temp.counts();
    PERFORM pg_temp.batch_error(jsonb_build_array(
        pg_temp.req('cb', 'keyed', '{}', '{"idempotency_key": "x"}'),
        pg_temp.req('cb', 'keyed', '{}')), '22023', 'tasks[1]: idempotency_key is required');
    PERFORM pg_temp.batch_error(jsonb_build_array(
        pg_temp.req('cb', 'chain', '{"u": 1}', '{"correlation_id": "nope"}')),
        '22P02', 'tasks[0]: invalid input syntax for type uuid');
    PERFORM pg_temp.batch_error(jsonb_build_array(
        pg_temp.req('cb', 'chain', '{"p": 1}'), pg_temp.req('cb', 'chain', '{"p": 2}'),
        pg_temp.req('cb', 'chain', '{"p": 3}', '{"priority": 500}')),
        '23514', 'tasks[2]: new row for relation "tasks" violates check constraint');
    PERFORM test.eq(pg_temp.counts(), v_before, 'nothing created by the failed batches');

    -- not an array
    PERFORM pg_temp.batch_error(pg_temp.req('cb', 'chain', '{}'), '22023',
                                'create_tasks expects a JSON array');
    PERFORM pg_temp.batch_error('null', '22023', 'create_tasks expects a JSON array');
END $$;

-- A failed batch in its own transaction leaves nothing behind, as a client sees it.
\echo 'create_batch: the next statement fails on purpose (duplicate in its batch)'
\set ON_ERROR_STOP 0
SELECT tasker.create_tasks(jsonb_build_array(
    pg_temp.req('cb', 'chain', '{"tx": 1}'), pg_temp.req('cb', 'chain', '{"tx": 1}')));
\set ON_ERROR_STOP 1
DO $$
BEGIN
    PERFORM test.eq((SELECT count(*) FROM tasker.tasks WHERE context ? 'tx'), 0::bigint,
                    'the failed statement created nothing');
END $$;

-- A large batch: every task, one message per root, answered in order.
DO $$
DECLARE
    v_out jsonb;
BEGIN
    v_out := tasker.create_tasks((SELECT jsonb_agg(pg_temp.req('cb2', 'one',
        jsonb_build_object('big', i)) ORDER BY i) FROM generate_series(0, 999) i));
    PERFORM test.eq(jsonb_array_length(v_out), 1000, '1000 answers');
    PERFORM test.eq((SELECT bool_and((t.context->>'big')::integer = e.ord - 1)
                     FROM jsonb_array_elements(v_out) WITH ORDINALITY e(item, ord)
                     JOIN tasker.tasks t ON t.task_uuid = (e.item->>'task_uuid')::uuid),
                    true, '1000 answers in order');
    PERFORM test.eq((SELECT count(*) FROM tasker.tasks WHERE context ? 'big'), 1000::bigint,
                    '1000 tasks');
END $$;

-- Creation looks each step name up by index, whatever plan the session's cache holds (0015):
-- with nested loops made to look expensive, as a generic plan made from a young table's
-- statistics may, a creation must still not read every registered step name. So its buffer
-- count may grow with the depth of named_steps' index, not with its size, when five
-- thousand more names are registered (measured: 175 -> 182 buffers; with 0013's create_task_row,
-- 168 -> 1183).
CREATE FUNCTION pg_temp.create_buffers() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tasker.create_task(pg_temp.req('cb', 'chain', jsonb_build_object('r', random())), false);
    RETURN test.buffers(format('SELECT tasker.create_task(%L::jsonb, false)',
                               pg_temp.req('cb', 'chain', jsonb_build_object('r', random()))));
END
$$;
SET enable_nestloop = off;
SET plan_cache_mode = force_generic_plan;
DO $$
DECLARE
    before integer := pg_temp.create_buffers();
    after integer;
BEGIN
    INSERT INTO tasker.named_steps (name) SELECT 'filler_' || g FROM generate_series(1, 5000) g;
    after := pg_temp.create_buffers();
    IF after > before * 3 / 2 THEN
        RAISE EXCEPTION 'a creation read % buffers with 5,000 more step names, % before: it scans the names',
            after, before;
    END IF;
END
$$;
RESET enable_nestloop;
RESET plan_cache_mode;
