-- transitions.sql - the compare-and-swap transition functions and the state guard triggers:
-- transition_task_state_atomic / transition_step_state_atomic move an entity only from the
-- expected state and write exactly one history row; forbidden pairs and wrong events raise
-- TK001 / TK002; direct UPDATEs of the state column are checked by the triggers, which also
-- maintain state_entered_at, completed_at, processed_at and the lease.
-- (The full C-vs-SQL transition matrix is tested from C.)
\ir lib/fixtures.sql

-- Task: a successful CAS and its history row.
DO $$
DECLARE
    t uuid := test.make_task('{a}', p_created_at => now() - interval '1 hour');
    proc uuid := gen_random_uuid();
    h record;
    n integer;
BEGIN
    PERFORM test.eq(transition_task_state_atomic(t, 'pending', 'initializing', proc,
                                                 '{"reason":"test","n":1}'), true, 'pending -> initializing');
    PERFORM test.eq((SELECT state FROM tasks WHERE task_uuid = t)::text, 'initializing', 'task moved');
    PERFORM test.eq((SELECT state_entered_at FROM tasks WHERE task_uuid = t), now(), 'state_entered_at');
    PERFORM test.eq((SELECT completed_at FROM tasks WHERE task_uuid = t), NULL::timestamptz,
                    'completed_at stays NULL');
    SELECT count(*) INTO n FROM task_transitions WHERE task_uuid = t;
    PERFORM test.eq(n, 1, 'one history row');
    SELECT * INTO STRICT h FROM task_transitions WHERE task_uuid = t;
    PERFORM test.eq((h.from_state, h.to_state, h.event)::text, '(pending,initializing,start)', 'history row');
    PERFORM test.eq(h.processor_uuid, proc, 'history processor');
    PERFORM test.eq(h.metadata, '{"reason":"test","n":1}'::jsonb, 'history metadata');

    -- CAS miss: the task is no longer pending -> false, nothing written, nothing moved
    PERFORM test.eq(transition_task_state_atomic(t, 'pending', 'initializing'), false, 'stale from_state');
    PERFORM test.eq(transition_task_state_atomic(t, 'pending', 'cancelled'), false, 'stale from_state 2');
    PERFORM test.eq((SELECT state FROM tasks WHERE task_uuid = t)::text, 'initializing', 'task not moved');
    SELECT count(*) INTO n FROM task_transitions WHERE task_uuid = t;
    PERFORM test.eq(n, 1, 'no history row on a CAS miss');
    PERFORM test.eq(transition_task_state_atomic(gen_random_uuid(), 'pending', 'initializing'), false,
                    'unknown task');

    -- explicit event, NULL metadata -> '{}', default processor NULL
    PERFORM test.eq(transition_task_state_atomic(t, 'initializing', 'enqueuing_steps', NULL, NULL,
                                                 'ready_steps_found'), true, 'explicit event');
    SELECT * INTO STRICT h FROM task_transitions WHERE task_uuid = t AND to_state = 'enqueuing_steps';
    PERFORM test.eq((h.from_state, h.event, h.processor_uuid, h.metadata)::text,
                    '(initializing,ready_steps_found,,{})', 'explicit event row');
END
$$;

-- Task: forbidden pairs and wrong events raise TK001 and change nothing.
DO $$
DECLARE
    t uuid := test.make_task('{a}');
    c uuid := test.make_task('{a}', p_state => 'complete');
    n integer;
BEGIN
    PERFORM test.expect_error(format('SELECT tasker.transition_task_state_atomic(%L, %L, %L)',
                                     c, 'complete', 'pending'), 'TK001', 'complete -> pending');
    PERFORM test.expect_error(format('SELECT tasker.transition_task_state_atomic(%L, %L, %L)',
                                     c, 'complete', 'evaluating_results'), 'TK001', 'complete -> evaluating_results');
    -- forbidden even though the task is not in that state (the pair itself is illegal)
    PERFORM test.expect_error(format('SELECT tasker.transition_task_state_atomic(%L, %L, %L)',
                                     t, 'pending', 'complete'), 'TK001', 'pending -> complete');
    PERFORM test.expect_error(format('SELECT tasker.transition_task_state_atomic(%L, %L, %L)',
                                     t, 'pending', 'steps_in_process'), 'TK001',
                              'pending -> steps_in_process (Tasker legacy)');
    PERFORM test.expect_error(format('SELECT tasker.transition_task_state_atomic(%L, %L, %L)',
                                     t, 'pending', 'pending'), 'TK001', 'pending -> pending');
    PERFORM test.expect_error(format('SELECT tasker.transition_task_state_atomic(%L, %L, %L)',
                                     t, 'pending', 'no_such_state'), 'TK001', 'unknown state');
    -- a legal pair with an event that is not its event
    PERFORM test.expect_error(format('SELECT tasker.transition_task_state_atomic(%L, %L, %L, NULL, %L, %L)',
                                     t, 'pending', 'initializing', '{}', 'cancel'), 'TK001',
                              'pending -> initializing with event cancel');
    PERFORM test.expect_error(format('SELECT tasker.transition_task_state_atomic(%L, %L, %L, NULL, %L, %L)',
                                     t, 'pending', 'initializing', '{}', 'bogus'), 'TK001',
                              'pending -> initializing with event bogus');
    PERFORM test.eq((SELECT state FROM tasks WHERE task_uuid = t)::text, 'pending', 'task not moved');
    SELECT count(*) INTO n FROM task_transitions WHERE task_uuid IN (t, c);
    PERFORM test.eq(n, 0, 'no history rows');
END
$$;

-- Task: completed_at on entering complete (and error), cleared by error -> evaluating_results.
DO $$
DECLARE
    t uuid := test.make_task('{a}');
    u uuid := test.make_task('{a}');
    st text[] := ARRAY['pending', 'initializing', 'enqueuing_steps', 'steps_in_process',
                       'evaluating_results'];
    i integer;
    n integer;
BEGIN
    FOR i IN 1..array_length(st, 1) - 1 LOOP
        PERFORM test.eq(transition_task_state_atomic(t, st[i], st[i + 1]), true, st[i] || ' -> ' || st[i + 1]);
        PERFORM test.eq(transition_task_state_atomic(u, st[i], st[i + 1]), true, st[i] || ' -> ' || st[i + 1]);
        PERFORM test.eq((SELECT completed_at FROM tasks WHERE task_uuid = t), NULL::timestamptz,
                        'no completed_at in ' || st[i + 1]);
    END LOOP;
    PERFORM test.eq(transition_task_state_atomic(t, 'evaluating_results', 'complete'), true, 'to complete');
    PERFORM test.eq((SELECT completed_at FROM tasks WHERE task_uuid = t), now(), 'completed_at set');
    SELECT count(*) INTO n FROM task_transitions WHERE task_uuid = t;
    PERFORM test.eq(n, 5, 'five history rows');
    PERFORM test.eq((SELECT string_agg(event, ',' ORDER BY created_at) FROM task_transitions WHERE task_uuid = t),
                    'start,ready_steps_found,steps_enqueued,step_completed,all_steps_successful',
                    'events of the happy path');
    -- nothing leaves complete
    PERFORM test.expect_error(format('UPDATE tasker.tasks SET state = %L WHERE task_uuid = %L',
                                     'evaluating_results', t), 'TK001', 'direct complete -> evaluating_results');

    PERFORM test.eq(transition_task_state_atomic(u, 'evaluating_results', 'error'), true, 'give_up');
    PERFORM test.eq((SELECT completed_at FROM tasks WHERE task_uuid = u), now(), 'completed_at set on error');
    PERFORM test.eq(transition_task_state_atomic(u, 'error', 'evaluating_results', NULL,
                                                 '{"operator":"x"}', 'reset'), true, 'reset');
    PERFORM test.eq((SELECT completed_at FROM tasks WHERE task_uuid = u), NULL::timestamptz,
                    'completed_at cleared by reset');
    PERFORM test.eq((SELECT state FROM tasks WHERE task_uuid = u)::text, 'evaluating_results', 'reset state');
END
$$;

-- Task: direct UPDATEs go through the guard trigger.
DO $$
DECLARE
    t uuid := test.make_task('{a}', p_created_at => now() - interval '1 hour');
    n integer;
BEGIN
    PERFORM test.expect_error(format('UPDATE tasker.tasks SET state = %L WHERE task_uuid = %L',
                                     'complete', t), 'TK001', 'direct pending -> complete');
    PERFORM test.eq((SELECT state FROM tasks WHERE task_uuid = t)::text, 'pending', 'still pending');
    -- a legal direct UPDATE passes (no history row: that is the CAS function's job)
    UPDATE tasks SET state = 'initializing' WHERE task_uuid = t;
    PERFORM test.eq((SELECT state_entered_at FROM tasks WHERE task_uuid = t), now(),
                    'trigger sets state_entered_at');
    SELECT count(*) INTO n FROM task_transitions WHERE task_uuid = t;
    PERFORM test.eq(n, 0, 'direct UPDATE writes no history');
    -- updating other columns does not involve the guard
    UPDATE tasks SET priority = 7 WHERE task_uuid = t;
    PERFORM test.eq((SELECT priority FROM tasks WHERE task_uuid = t), 7, 'other column updated');
END
$$;

-- Task: the guard runs after the UPDATE (sql/0021). The engine's functions record their path
-- and set the timestamps themselves, so the trigger is not queued and the row is updated
-- once; a direct UPDATE is checked, then the trigger sets the timestamps with a second
-- update of the row. (pg_stat_xact_user_tables counts this transaction's row updates.)
DO $$
DECLARE
    t uuid := test.make_task('{a}', p_created_at => now() - interval '1 hour');
    before bigint;
    updates bigint;
BEGIN
    -- (a BEFORE UPDATE row trigger would lock the row again on every state change)
    PERFORM test.eq((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tasker.tasks'::regclass
                     AND tgtype & (1 | 2 | 16) = (1 | 2 | 16)), 0::bigint,
                    'no BEFORE UPDATE row trigger on tasks');
    SELECT n_tup_upd INTO before FROM pg_stat_xact_user_tables WHERE relid = 'tasker.tasks'::regclass;
    PERFORM test.eq(transition_task_state_atomic(t, 'pending', 'initializing'), true, 'engine path');
    SELECT n_tup_upd - before INTO updates FROM pg_stat_xact_user_tables
    WHERE relid = 'tasker.tasks'::regclass;
    PERFORM test.eq(updates, 1::bigint, 'the engine path updates the task row once');
    PERFORM test.eq((SELECT (state_entered_at, updated_at)::text FROM tasks WHERE task_uuid = t),
                    (now(), now())::text, 'the engine path sets the timestamps');

    UPDATE tasks SET state_entered_at = now() - interval '1 minute',
                     updated_at = now() - interval '1 minute' WHERE task_uuid = t;
    SELECT n_tup_upd INTO before FROM pg_stat_xact_user_tables WHERE relid = 'tasker.tasks'::regclass;
    UPDATE tasks SET state = 'enqueuing_steps' WHERE task_uuid = t;
    SELECT n_tup_upd - before INTO updates FROM pg_stat_xact_user_tables
    WHERE relid = 'tasker.tasks'::regclass;
    PERFORM test.eq(updates, 2::bigint, 'a direct UPDATE of the state is followed by the guard''s');
    PERFORM test.eq((SELECT (state_entered_at, updated_at, completed_at)::text FROM tasks
                     WHERE task_uuid = t), (now(), now(), NULL::timestamptz)::text,
                    'the guard sets the timestamps of a direct UPDATE');
    PERFORM test.expect_error(format('UPDATE tasker.tasks SET state = %L WHERE task_uuid = %L',
                                     'complete', t), 'TK001', 'direct enqueuing_steps -> complete');
END
$$;

-- Step: CAS, history, and the columns the trigger maintains.
DO $$
DECLARE
    t uuid := test.make_task('{s}', p_created_at => now() - interval '1 hour');
    s uuid;
    h record;
    w record;
    n integer;
BEGIN
    s := test.step(t, 's');
    UPDATE workflow_steps SET state_entered_at = now() - interval '1 hour' WHERE workflow_step_uuid = s;
    PERFORM test.eq(transition_step_state_atomic(s, 'pending', 'enqueued', '{"queue":"q"}'), true,
                    'pending -> enqueued');
    SELECT * INTO STRICT w FROM workflow_steps WHERE workflow_step_uuid = s;
    PERFORM test.eq(w.state::text, 'enqueued', 'step moved');
    PERFORM test.eq(w.state_entered_at, now(), 'step state_entered_at');
    SELECT count(*) INTO n FROM workflow_step_transitions WHERE workflow_step_uuid = s;
    PERFORM test.eq(n, 1, 'one step history row');
    SELECT * INTO STRICT h FROM workflow_step_transitions WHERE workflow_step_uuid = s;
    PERFORM test.eq((h.from_state, h.to_state, h.event, h.metadata)::text,
                    '(pending,enqueued,enqueue,"{""queue"": ""q""}")', 'step history row');

    PERFORM test.eq(transition_step_state_atomic(s, 'pending', 'enqueued'), false, 'stale step from_state');
    SELECT count(*) INTO n FROM workflow_step_transitions WHERE workflow_step_uuid = s;
    PERFORM test.eq(n, 1, 'no step history row on a CAS miss');
    PERFORM test.eq(transition_step_state_atomic(gen_random_uuid(), 'pending', 'enqueued'), false,
                    'unknown step');

    -- claim: in_progress with a lease (the claim sets the lease columns itself)
    PERFORM test.eq(transition_step_state_atomic(s, 'enqueued', 'in_progress'), true, 'start');
    UPDATE workflow_steps SET lease_owner = 'worker-1', lease_expires_at = now() + interval '30 seconds',
                              attempts = attempts + 1
    WHERE workflow_step_uuid = s;
    SELECT * INTO STRICT w FROM workflow_steps WHERE workflow_step_uuid = s;
    PERFORM test.eq((w.lease_owner, w.attempts)::text, '(worker-1,1)', 'lease kept while in_progress');
    -- leaving in_progress drops the lease
    PERFORM test.eq(transition_step_state_atomic(s, 'in_progress', 'enqueued_for_orchestration',
                                                 '{"success":true}'), true, 'to orchestration');
    SELECT * INTO STRICT w FROM workflow_steps WHERE workflow_step_uuid = s;
    PERFORM test.eq((w.lease_owner, w.lease_expires_at)::text, '(,)', 'lease cleared');
    PERFORM test.eq(w.processed_at, NULL::timestamptz, 'not processed yet');
    PERFORM test.eq(w.attempts, 1, 'attempts kept');
    -- complete sets processed_at; of the two events of this pair the default is complete
    PERFORM test.eq(transition_step_state_atomic(s, 'enqueued_for_orchestration', 'complete'), true, 'complete');
    SELECT * INTO STRICT w FROM workflow_steps WHERE workflow_step_uuid = s;
    PERFORM test.eq(w.processed_at, now(), 'processed_at set');
    PERFORM test.eq((SELECT string_agg(event, ',' ORDER BY created_at) FROM workflow_step_transitions
                     WHERE workflow_step_uuid = s),
                    'enqueue,start,enqueue_for_orchestration,complete', 'step events');
END
$$;

-- Step: the lease goes with every way out of in_progress; processed_at only on
-- complete / cancelled / resolved_manually.
DO $$
DECLARE
    t uuid := test.make_task('{a,b,c,d,e,f}');
    x record;
    s uuid;
    w record;
BEGIN
    FOR x IN SELECT * FROM (VALUES
            ('a', 'enqueued', 'lease_expired', false),
            ('b', 'error', 'fail', false),
            ('c', 'cancelled', 'cancel', true),
            ('d', 'resolved_manually', 'resolve_manually', true),
            ('e', 'enqueued_as_error_for_orchestration', 'enqueue_as_error_for_orchestration', false),
            ('f', 'complete', 'complete_manually', true)) AS v(name, target, event, processed) LOOP
        s := test.step(t, x.name);
        PERFORM test.eq(transition_step_state_atomic(s, 'pending', 'enqueued'), true, x.name || ' enqueue');
        PERFORM test.eq(transition_step_state_atomic(s, 'enqueued', 'in_progress'), true, x.name || ' start');
        UPDATE workflow_steps SET lease_owner = 'w', lease_expires_at = now() + interval '1 minute'
        WHERE workflow_step_uuid = s;
        PERFORM test.eq(transition_step_state_atomic(s, 'in_progress', x.target, '{}', x.event), true,
                        x.name || ' in_progress -> ' || x.target);
        SELECT * INTO STRICT w FROM workflow_steps WHERE workflow_step_uuid = s;
        PERFORM test.eq((w.lease_owner, w.lease_expires_at)::text, '(,)', x.name || ' lease cleared');
        PERFORM test.eq(w.processed_at IS NOT NULL, x.processed, x.name || ' processed_at');
        PERFORM test.eq((SELECT event FROM workflow_step_transitions
                         WHERE workflow_step_uuid = s AND from_state = 'in_progress')::text,
                        x.event, x.name || ' event recorded');
    END LOOP;
END
$$;

-- Step: the engine's two state changes per step, start_steps and complete_step's success,
-- record their path and set the guard's columns themselves (sql/0022): the row is updated
-- once each time, and no BEFORE UPDATE row trigger is left to lock it again first.
DO $$
DECLARE
    t uuid := test.make_task('{s:enqueued}', p_created_at => now() - interval '1 hour',
                             p_state => 'steps_in_process');
    s uuid;
    w record;
    before bigint;
    updates bigint;
BEGIN
    PERFORM test.eq((SELECT count(*) FROM pg_trigger
                     WHERE tgrelid = 'tasker.workflow_steps'::regclass
                       AND tgtype & (1 | 2 | 16) = (1 | 2 | 16)), 0::bigint,
                    'no BEFORE UPDATE row trigger on workflow_steps');
    s := test.step(t, 's');
    UPDATE workflow_steps SET state_entered_at = now() - interval '1 hour',
                              updated_at = now() - interval '1 hour' WHERE workflow_step_uuid = s;

    SELECT n_tup_upd INTO before FROM pg_stat_xact_user_tables
    WHERE relid = 'tasker.workflow_steps'::regclass;
    PERFORM test.eq(tasker.start_steps(ARRAY[s], 'enqueued', 'w1', 60), ARRAY[s], 'started');
    SELECT n_tup_upd - before INTO updates FROM pg_stat_xact_user_tables
    WHERE relid = 'tasker.workflow_steps'::regclass;
    PERFORM test.eq(updates, 1::bigint, 'start_steps updates the step once');
    SELECT * INTO STRICT w FROM workflow_steps WHERE workflow_step_uuid = s;
    PERFORM test.eq((w.state, w.state_entered_at, w.updated_at, w.lease_owner)::text,
                    ('in_progress', now(), now(), 'w1')::text, 'start_steps sets the columns');

    UPDATE workflow_steps SET state_entered_at = now() - interval '1 minute',
                              updated_at = now() - interval '1 minute' WHERE workflow_step_uuid = s;
    SELECT n_tup_upd INTO before FROM pg_stat_xact_user_tables
    WHERE relid = 'tasker.workflow_steps'::regclass;
    PERFORM test.eq((SELECT accepted FROM tasker.complete_step(s, 'w1', '{"success": true}',
                                                                 NULL, '{}', '{}', 1, 60) LIMIT 1),
                    true, 'completed');
    SELECT n_tup_upd - before INTO updates FROM pg_stat_xact_user_tables
    WHERE relid = 'tasker.workflow_steps'::regclass;
    PERFORM test.eq(updates, 1::bigint, 'complete_step updates the step once');
    SELECT * INTO STRICT w FROM workflow_steps WHERE workflow_step_uuid = s;
    PERFORM test.eq((w.state, w.state_entered_at, w.updated_at, w.processed_at, w.lease_owner,
                     w.lease_expires_at)::text,
                    ('complete', now(), now(), now(), NULL::text, NULL::timestamptz)::text,
                    'complete_step sets the columns and drops the lease');
END
$$;

-- Step: forbidden pairs, wrong events and direct UPDATEs raise TK002.
DO $$
DECLARE
    t uuid := test.make_task('{p,c:complete,e:error}');
    p uuid;
    c uuid;
    n integer;
BEGIN
    p := test.step(t, 'p');
    c := test.step(t, 'c');
    PERFORM test.expect_error(format('SELECT tasker.transition_step_state_atomic(%L, %L, %L)',
                                     c, 'complete', 'pending'), 'TK002', 'step complete -> pending');
    PERFORM test.expect_error(format('SELECT tasker.transition_step_state_atomic(%L, %L, %L)',
                                     p, 'pending', 'in_progress'), 'TK002',
                              'step pending -> in_progress (Tasker legacy claim)');
    -- in_progress -> complete exists only as the operator's complete_manually
    PERFORM test.expect_error(format('SELECT tasker.transition_step_state_atomic(%L, %L, %L, %L, %L)',
                                     p, 'in_progress', 'complete', '{}', 'complete'), 'TK002',
                              'step in_progress -> complete with event complete (Tasker legacy)');
    PERFORM test.expect_error(format('SELECT tasker.transition_step_state_atomic(%L, %L, %L, %L, %L)',
                                     p, 'pending', 'enqueued', '{}', 'start'), 'TK002',
                              'step pending -> enqueued with event start');
    PERFORM test.expect_error(format('SELECT tasker.transition_step_state_atomic(%L, %L, %L, %L, %L)',
                                     c, 'enqueued_for_orchestration', 'complete', '{}', 'fail'), 'TK002',
                              'step e_f_o -> complete with event fail');
    PERFORM test.expect_error(format('UPDATE tasker.workflow_steps SET state = %L WHERE workflow_step_uuid = %L',
                                     'in_progress', p), 'TK002', 'direct step pending -> in_progress');
    PERFORM test.expect_error(format('UPDATE tasker.workflow_steps SET state = %L WHERE workflow_step_uuid = %L',
                                     'pending', c), 'TK002', 'direct step complete -> pending');
    PERFORM test.eq((SELECT string_agg(state, ',' ORDER BY state) FROM workflow_steps WHERE task_uuid = t),
                    'complete,error,pending', 'steps not moved');
    SELECT count(*) INTO n FROM workflow_step_transitions ws JOIN workflow_steps s USING (workflow_step_uuid)
    WHERE s.task_uuid = t;
    PERFORM test.eq(n, 0, 'no step history rows');
    -- a legal direct UPDATE passes the trigger
    UPDATE workflow_steps SET state = 'enqueued' WHERE workflow_step_uuid = p;
    PERFORM test.eq((SELECT state FROM workflow_steps WHERE workflow_step_uuid = p)::text, 'enqueued',
                    'legal direct step UPDATE');
END
$$;

-- The state columns accept exactly the states of the machines (every state named in
-- task_state_transitions / step_state_transitions) and refuse anything else with their CHECK
-- constraint (23514), whichever way the row is written (sql/0023).
DO $$
DECLARE
    nt uuid := test.named_task();
    t uuid := test.make_task('{s}');
    s uuid := test.step(t, 's');
    st text;
    n integer := 0;
BEGIN
    FOR st IN SELECT from_state FROM task_state_transitions WHERE from_state IS NOT NULL
              UNION SELECT to_state FROM task_state_transitions LOOP
        INSERT INTO tasks (named_task_uuid, state, identity_hash, correlation_id)
        VALUES (nt, st, 'state-' || st, gen_random_uuid());
        n := n + 1;
    END LOOP;
    PERFORM test.eq(n, 12, 'twelve task states accepted');
    PERFORM test.expect_error(format('INSERT INTO tasker.tasks (named_task_uuid, state, identity_hash, '
                                     'correlation_id) VALUES (%L, %L, %L, gen_random_uuid())',
                                     nt, 'Pending', 'state-bad'), '23514', 'task state Pending');
    n := 0;
    FOR st IN SELECT from_state FROM step_state_transitions WHERE from_state IS NOT NULL
              UNION SELECT to_state FROM step_state_transitions LOOP
        PERFORM test.set_step_state(s, st);
        n := n + 1;
    END LOOP;
    PERFORM test.eq(n, 10, 'ten step states accepted');
    PERFORM test.expect_error(format('SELECT test.set_step_state(%L::uuid, %L)', s, 'done'),
                              '23514', 'step state done');
    PERFORM test.expect_error(format('UPDATE tasker.tasks SET state = NULL WHERE task_uuid = %L', t),
                              '23502', 'no task without a state');
END
$$;
