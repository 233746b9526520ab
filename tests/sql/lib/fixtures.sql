-- fixtures.sql - helpers for the SQL tests in tests/sql/, included with `\ir lib/fixtures.sql`.
--
-- Lives in tests/sql/lib/ so that the tests/sql/*.sql glob does not register it as a test.
-- Everything is created in a schema "test" of the test's own throwaway database.
--
-- Building tasks:
--   test.make_task(steps text[], edges text[], ...) -> task uuid
--       steps: step names, each optionally with an initial state: '{a, b:complete, c}'
--       edges: 'parent>child' strings: '{a>b, b>c}' (inserted in one statement, so the edge
--       guard trigger runs once over all of them)
--       optional: priority, created_at (also requested_at and state_entered_at), task state,
--       task uuid, template name and namespace.
--   test.make_shape(shape, ...) -> task uuid, for the conformance shapes:
--       linear   a > b > c > d
--       diamond  start > {b, c} > end
--       tree     root > {L, R}; L > {d, e}; R > {f, g}; {d, e, f, g} > final
--       order    validate; reserve < validate; payment < validate, reserve;
--                ship < validate, reserve, payment      (redundant edges on purpose)
--   test.step(task, name) -> step uuid (raises if the task has no such step)
--   test.template_step(name, deps) -> jsonb, a template's step: handler test.<name>, the
--       dependencies given (default none), for tasker.register_template
--   test.edges(task) -> text        the task's edges as 'parent>child', sorted, comma-separated
--
-- Putting an entity into a state: test.set_step_state / test.set_task_state write the state
-- column directly, bypassing the state-machine guard triggers, so that tests of the read-side
-- functions (readiness, execution context, discovery) do not depend on the transition
-- machinery (which transitions.sql tests on its own). The UPDATE runs with
-- session_replication_role = replica for that one statement only (restored right after; the
-- tests run as a superuser). That setting also disables the foreign-key triggers, which is
-- harmless here because only state columns change. The columns the guard trigger would have
-- maintained are set the same way the trigger sets them (state_entered_at, processed_at /
-- completed_at, the lease outside in_progress).
--
-- Retry bookkeeping: test.set_retry(step, attempts, max_attempts, retryable, last_failure_at,
-- backoff_request_seconds) sets all five columns exactly (NULL means NULL). These columns are
-- not guarded, a plain UPDATE suffices.
--
-- Checks:
--   test.eq(actual, expected, what)       raise unless actual IS NOT DISTINCT FROM expected
--   test.expect_error(sql, sqlstate, what) run sql; raise unless it fails with that SQLSTATE
--                                          (the statement's effects are rolled back)
--   test.ready_names(task) -> text        the task's ready steps, sorted, comma-separated
--   test.buffers(sql) -> integer          shared buffers (hit + read) that one run of the
--                                          statement sql uses, nested calls included

CREATE SCHEMA test;

CREATE FUNCTION test.eq(p_actual anyelement, p_expected anyelement, p_what text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_actual IS DISTINCT FROM p_expected THEN
        RAISE EXCEPTION 'assertion failed: %: expected %, got %', p_what,
            coalesce(p_expected::text, 'NULL'), coalesce(p_actual::text, 'NULL');
    END IF;
END
$$;

CREATE FUNCTION test.expect_error(p_sql text, p_sqlstate text, p_what text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_msg text;
BEGIN
    BEGIN
        EXECUTE p_sql;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
        IF v_state <> p_sqlstate THEN
            RAISE EXCEPTION 'assertion failed: %: expected SQLSTATE %, got % (%)', p_what,
                p_sqlstate, v_state, v_msg;
        END IF;
        RETURN;
    END;
    RAISE EXCEPTION 'assertion failed: %: expected SQLSTATE %, but the statement succeeded',
        p_what, p_sqlstate;
END
$$;

-- Namespace + named task (get or create).
CREATE FUNCTION test.named_task(p_name text DEFAULT 'test_task', p_namespace text DEFAULT 'test_ns',
                                p_version text DEFAULT '0.1.0')
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_ns uuid;
    v_nt uuid;
BEGIN
    INSERT INTO tasker.task_namespaces (name) VALUES (p_namespace) ON CONFLICT (name) DO NOTHING;
    SELECT task_namespace_uuid INTO STRICT v_ns FROM tasker.task_namespaces WHERE name = p_namespace;
    INSERT INTO tasker.named_tasks (task_namespace_uuid, name, version)
    VALUES (v_ns, p_name, p_version) ON CONFLICT DO NOTHING;
    SELECT named_task_uuid INTO STRICT v_nt FROM tasker.named_tasks
    WHERE task_namespace_uuid = v_ns AND name = p_name AND version = p_version;
    RETURN v_nt;
END
$$;

CREATE FUNCTION test.template_step(p_name text, p_deps text[] DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('name', p_name, 'dependencies', to_jsonb(p_deps),
                              'handler', jsonb_build_object('callable', 'test.' || p_name))
$$;

-- test.edges, test.step and test.ready_names are VOLATILE on purpose: the planner may
-- evaluate a STABLE function early to estimate a condition such as "= ANY (ARRAY[test.step(t,
-- 'b')])", and it does so under the snapshot of the enclosing DO block's start, which cannot
-- see a task that the block itself created.
CREATE FUNCTION test.edges(p_task uuid) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(string_agg(f.name || '>' || c.name, ','
                               ORDER BY f.name COLLATE "C", c.name COLLATE "C"), '')
    FROM tasker.workflow_step_edges e
    JOIN tasker.workflow_steps fs ON fs.workflow_step_uuid = e.from_step_uuid
    JOIN tasker.named_steps f ON f.named_step_uuid = fs.named_step_uuid
    JOIN tasker.workflow_steps cs ON cs.workflow_step_uuid = e.to_step_uuid
    JOIN tasker.named_steps c ON c.named_step_uuid = cs.named_step_uuid
    WHERE fs.task_uuid = p_task
$$;

CREATE FUNCTION test.step(p_task uuid, p_name text)
RETURNS uuid LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_step uuid;
BEGIN
    SELECT ws.workflow_step_uuid INTO v_step
    FROM tasker.workflow_steps ws JOIN tasker.named_steps ns USING (named_step_uuid)
    WHERE ws.task_uuid = p_task AND ns.name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'test.step: task % has no step %', p_task, p_name;
    END IF;
    RETURN v_step;
END
$$;

CREATE FUNCTION test.set_step_state(p_step uuid, p_state text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_role text := current_setting('session_replication_role');
BEGIN
    PERFORM set_config('session_replication_role', 'replica', true);
    UPDATE tasker.workflow_steps
    SET state = p_state,
        state_entered_at = now(),
        updated_at = now(),
        processed_at = CASE WHEN p_state IN ('complete', 'cancelled', 'resolved_manually')
                            THEN now() END,
        lease_owner = CASE WHEN p_state = 'in_progress' THEN lease_owner END,
        lease_expires_at = CASE WHEN p_state = 'in_progress' THEN lease_expires_at END
    WHERE workflow_step_uuid = p_step;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'test.set_step_state: no step %', p_step;
    END IF;
    PERFORM set_config('session_replication_role', v_role, true);
END
$$;

CREATE FUNCTION test.set_step_state(p_task uuid, p_name text, p_state text)
RETURNS void LANGUAGE sql AS $$
    SELECT test.set_step_state(test.step(p_task, p_name), p_state)
$$;

CREATE FUNCTION test.set_task_state(p_task uuid, p_state text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_role text := current_setting('session_replication_role');
BEGIN
    PERFORM set_config('session_replication_role', 'replica', true);
    UPDATE tasker.tasks
    SET state = p_state,
        state_entered_at = now(),
        updated_at = now(),
        completed_at = CASE WHEN p_state IN ('complete', 'error', 'cancelled', 'resolved_manually')
                            THEN now() END
    WHERE task_uuid = p_task;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'test.set_task_state: no task %', p_task;
    END IF;
    PERFORM set_config('session_replication_role', v_role, true);
END
$$;

CREATE FUNCTION test.set_retry(p_step uuid, p_attempts integer, p_max_attempts integer DEFAULT 3,
                               p_retryable boolean DEFAULT true,
                               p_last_failure_at timestamptz DEFAULT NULL,
                               p_backoff_request_seconds integer DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasker.workflow_steps
    SET attempts = p_attempts, max_attempts = p_max_attempts, retryable = p_retryable,
        last_failure_at = p_last_failure_at, backoff_request_seconds = p_backoff_request_seconds
    WHERE workflow_step_uuid = p_step;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'test.set_retry: no step %', p_step;
    END IF;
END
$$;

CREATE FUNCTION test.make_task(
    p_steps text[], p_edges text[] DEFAULT '{}', p_priority integer DEFAULT 0,
    p_created_at timestamptz DEFAULT now(), p_state text DEFAULT 'pending',
    p_task_uuid uuid DEFAULT NULL, p_name text DEFAULT 'test_task',
    p_namespace text DEFAULT 'test_ns')
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v_task uuid := coalesce(p_task_uuid, tasker.uuid_generate_v7());
    v_spec text;
    v_name text;
    v_state text;
BEGIN
    INSERT INTO tasker.tasks (task_uuid, named_task_uuid, state, state_entered_at, requested_at,
                              completed_at, identity_hash, priority, correlation_id,
                              created_at, updated_at)
    VALUES (v_task, test.named_task(p_name, p_namespace), p_state, p_created_at, p_created_at,
            CASE WHEN p_state IN ('complete', 'error', 'cancelled', 'resolved_manually')
                 THEN p_created_at END,
            md5(v_task::text), p_priority, gen_random_uuid(), p_created_at, p_created_at);

    -- Steps are inserted pending; those given a state are then moved there.
    FOREACH v_spec IN ARRAY p_steps LOOP
        v_name := split_part(v_spec, ':', 1);
        INSERT INTO tasker.named_steps (name) VALUES (v_name) ON CONFLICT (name) DO NOTHING;
        INSERT INTO tasker.workflow_steps (task_uuid, named_step_uuid)
        SELECT v_task, named_step_uuid FROM tasker.named_steps WHERE name = v_name;
    END LOOP;

    INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid)
    SELECT test.step(v_task, split_part(e, '>', 1)), test.step(v_task, split_part(e, '>', 2))
    FROM unnest(p_edges) e;

    FOREACH v_spec IN ARRAY p_steps LOOP
        v_state := nullif(split_part(v_spec, ':', 2), '');
        IF v_state IS NOT NULL THEN
            PERFORM test.set_step_state(test.step(v_task, split_part(v_spec, ':', 1)), v_state);
        END IF;
    END LOOP;
    RETURN v_task;
END
$$;

CREATE FUNCTION test.make_shape(
    p_shape text, p_priority integer DEFAULT 0, p_created_at timestamptz DEFAULT now(),
    p_state text DEFAULT 'pending', p_task_uuid uuid DEFAULT NULL)
RETURNS uuid LANGUAGE plpgsql AS $$
BEGIN
    CASE p_shape
    WHEN 'linear' THEN
        RETURN test.make_task('{a,b,c,d}', '{a>b,b>c,c>d}',
                              p_priority, p_created_at, p_state, p_task_uuid, 'linear');
    WHEN 'diamond' THEN
        RETURN test.make_task('{start,b,c,end}', '{start>b,start>c,b>end,c>end}',
                              p_priority, p_created_at, p_state, p_task_uuid, 'diamond');
    WHEN 'tree' THEN
        RETURN test.make_task('{root,L,R,d,e,f,g,final}',
                              '{root>L,root>R,L>d,L>e,R>f,R>g,d>final,e>final,f>final,g>final}',
                              p_priority, p_created_at, p_state, p_task_uuid, 'tree');
    WHEN 'order' THEN
        RETURN test.make_task('{validate,reserve,payment,ship}',
                              '{validate>reserve,validate>payment,reserve>payment,'
                              'validate>ship,reserve>ship,payment>ship}',
                              p_priority, p_created_at, p_state, p_task_uuid, 'order');
    ELSE
        RAISE EXCEPTION 'test.make_shape: unknown shape %', p_shape;
    END CASE;
END
$$;

-- The names of the task's ready steps (unfiltered readiness call), sorted, comma-separated;
-- '' when none is ready.
CREATE FUNCTION test.ready_names(p_task uuid)
RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(string_agg(name, ',' ORDER BY name COLLATE "C")
                        FILTER (WHERE ready_for_execution), '')
    FROM tasker.get_step_readiness_status(p_task)
$$;

CREATE FUNCTION test.buffers(p_sql text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    p json;
BEGIN
    EXECUTE 'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ' || p_sql INTO p;
    RETURN (p->0->'Plan'->>'Shared Hit Blocks')::integer
           + (p->0->'Plan'->>'Shared Read Blocks')::integer;
END
$$;
