-- transitive_deps.sql - get_step_transitive_dependencies: every ancestor exactly once (Tasker
-- bug 6), at its shortest distance, nearest first, with its results and processed flag, and
-- nothing from other tasks.
\ir lib/fixtures.sql

-- name:distance of every ancestor row, in the function's order; duplicates would show.
CREATE FUNCTION test.ancestors(p_task uuid, p_name text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(string_agg(step_name || ':' || distance, ',' ORDER BY o), '')
    FROM tasker.get_step_transitive_dependencies(test.step(p_task, p_name))
         WITH ORDINALITY AS d(workflow_step_uuid, task_uuid, named_step_uuid, step_name, results,
                              processed, distance, o)
$$;

-- The same, sorted by (distance, name), for shapes where several ancestors share a distance.
CREATE FUNCTION test.ancestor_set(p_task uuid, p_name text) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(string_agg(step_name || ':' || distance, ',' ORDER BY distance, step_name COLLATE "C"), '')
    FROM tasker.get_step_transitive_dependencies(test.step(p_task, p_name))
$$;

DO $$
DECLARE
    t uuid := test.make_shape('linear');
    other uuid := test.make_shape('linear');
BEGIN
    PERFORM test.eq(test.ancestors(t, 'd'), 'c:1,b:2,a:3', 'linear: d');
    PERFORM test.eq(test.ancestors(t, 'c'), 'b:1,a:2', 'linear: c');
    PERFORM test.eq(test.ancestors(t, 'b'), 'a:1', 'linear: b');
    PERFORM test.eq(test.ancestors(t, 'a'), '', 'linear: the root has no ancestors');
    PERFORM test.eq((SELECT count(*)::integer FROM get_step_transitive_dependencies(test.step(t, 'd'))
                     WHERE task_uuid = t
                       AND workflow_step_uuid IN (SELECT workflow_step_uuid FROM workflow_steps
                                                  WHERE task_uuid = t)), 3,
                    'linear: ancestors are the task''s own steps, not the other task''s');
END
$$;

DO $$
DECLARE
    t uuid := test.make_shape('diamond');
    n integer;
BEGIN
    PERFORM test.eq(test.ancestor_set(t, 'end'), 'b:1,c:1,start:2', 'diamond: end');
    SELECT count(*) INTO n FROM get_step_transitive_dependencies(test.step(t, 'end'))
    WHERE workflow_step_uuid = test.step(t, 'start');
    PERFORM test.eq(n, 1, 'diamond: start appears once');
    -- nearest first, then by uuid
    PERFORM test.eq(split_part(test.ancestors(t, 'end'), ',', 3), 'start:2', 'diamond: start last');
    PERFORM test.eq(test.ancestors(t, 'b'), 'start:1', 'diamond: b');
    PERFORM test.eq(test.ancestors(t, 'start'), '', 'diamond: start has none');
END
$$;

DO $$
DECLARE
    t uuid := test.make_shape('tree');
    n integer;
BEGIN
    PERFORM test.eq(test.ancestor_set(t, 'final'), 'd:1,e:1,f:1,g:1,L:2,R:2,root:3', 'tree: final');
    SELECT count(*) INTO n FROM get_step_transitive_dependencies(test.step(t, 'final'));
    PERFORM test.eq(n, 7, 'tree: final has 7 ancestor rows');
    PERFORM test.eq(test.ancestor_set(t, 'f'), 'R:1,root:2', 'tree: f');
    -- rows come nearest first, then by step uuid
    SELECT count(*) INTO n FROM (
        SELECT o, row_number() OVER (ORDER BY distance, workflow_step_uuid) AS rn
        FROM get_step_transitive_dependencies(test.step(t, 'final'))
             WITH ORDINALITY AS d(workflow_step_uuid, task_uuid, named_step_uuid, step_name,
                                  results, processed, distance, o)) x
    WHERE o <> rn;
    PERFORM test.eq(n, 0, 'tree: ordered by (distance, workflow_step_uuid)');
    PERFORM test.eq(test.ancestors(t, 'root'), '', 'tree: root has none');
END
$$;

-- Redundant edges: ship depends on validate directly and through reserve and payment; the
-- shortest distance (1) wins and each ancestor appears once.
DO $$
DECLARE
    t uuid := test.make_shape('order');
BEGIN
    PERFORM test.eq(test.ancestor_set(t, 'ship'), 'payment:1,reserve:1,validate:1', 'order: ship');
    PERFORM test.eq(test.ancestor_set(t, 'payment'), 'reserve:1,validate:1', 'order: payment');
    PERFORM test.eq(test.ancestors(t, 'reserve'), 'validate:1', 'order: reserve');
END
$$;

-- Shortest distance when the longer path is found first: x > y > z > w and x > w.
DO $$
DECLARE
    t uuid := test.make_task('{x,y,z,w}', '{x>y,y>z,z>w,x>w}');
BEGIN
    PERFORM test.eq(test.ancestor_set(t, 'w'), 'x:1,z:1,y:2', 'shortcut: x at 1, y at 2');
END
$$;

-- Columns: uuids, names, results and processed (complete / resolved_manually / cancelled).
DO $$
DECLARE
    t uuid := test.make_task('{p1:complete,p2:resolved_manually,p3:cancelled,p4:error,p5,p6:in_progress,child}',
                             '{p1>child,p2>child,p3>child,p4>child,p5>child,p6>child}');
    r record;
    n integer := 0;
BEGIN
    UPDATE workflow_steps SET results = jsonb_build_object('step', ns.name)
    FROM named_steps ns
    WHERE ns.named_step_uuid = workflow_steps.named_step_uuid AND task_uuid = t
      AND ns.name IN ('p1', 'p2', 'p4');
    FOR r IN SELECT * FROM get_step_transitive_dependencies(test.step(t, 'child')) LOOP
        n := n + 1;
        PERFORM test.eq(r.workflow_step_uuid, test.step(t, r.step_name), 'uuid of ' || r.step_name);
        PERFORM test.eq(r.task_uuid, t, 'task of ' || r.step_name);
        PERFORM test.eq(r.named_step_uuid,
                        (SELECT named_step_uuid FROM named_steps WHERE name = r.step_name),
                        'named step of ' || r.step_name);
        PERFORM test.eq(r.distance, 1, 'distance of ' || r.step_name);
        PERFORM test.eq(r.processed, r.step_name IN ('p1', 'p2', 'p3'), 'processed of ' || r.step_name);
        PERFORM test.eq(r.results,
                        CASE WHEN r.step_name IN ('p1', 'p2', 'p4')
                             THEN jsonb_build_object('step', r.step_name) END,
                        'results of ' || r.step_name);
    END LOOP;
    PERFORM test.eq(n, 6, 'six parents');

    SELECT count(*) INTO n FROM get_step_transitive_dependencies(gen_random_uuid());
    PERFORM test.eq(n, 0, 'unknown step: no rows');
END
$$;

-- step_dependency_results (every claim and continuation runs it) walks the ancestors with one
-- index probe per step and level, whatever plan the session's cache holds (0014): with nested
-- loops made to look expensive, as a generic plan made from a young table's statistics may,
-- the walk must still not read the whole edge table. So its buffer count may grow with the
-- depth of the indexes, not with their size, when a thousand more tasks (nine thousand more
-- edges) are added (measured: 30 -> 45 buffers; with 0006's walk, 20 -> 427).
CREATE FUNCTION test.walk_buffers(p_step uuid) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tasker.step_dependency_results(p_step); -- plans it (catalog reads not counted)
    RETURN test.buffers(format('SELECT tasker.step_dependency_results(%L)', p_step));
END
$$;
SET enable_nestloop = off;
SET plan_cache_mode = force_generic_plan;
DO $$
DECLARE
    t uuid := test.make_shape('tree');
    before integer := test.walk_buffers(test.step(t, 'final'));
    after integer;
BEGIN
    PERFORM test.make_shape('tree') FROM generate_series(1, 1000);
    after := test.walk_buffers(test.step(t, 'final'));
    IF after > 2 * before THEN
        RAISE EXCEPTION 'the ancestor walk read % buffers with 1,001 tasks, % with one: it scans the edges',
            after, before;
    END IF;
END
$$;
RESET enable_nestloop;
RESET plan_cache_mode;
