-- dag_guard.sql - the edge guard on tasker.workflow_step_edges: edges that close a cycle
-- (directly, through several steps, or only together with other edges of the same INSERT) or
-- that join steps of two tasks fail with TK003 and leave nothing behind; a self-loop fails the
-- check constraint (23514); valid DAGs, redundant edges included, are accepted.
\ir lib/fixtures.sql

-- INSERT statement for edges given as 'parent>child' of one task.
CREATE FUNCTION test.edge_insert(p_task uuid, p_edges text[]) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT 'INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid) VALUES '
           || string_agg(format('(%L, %L)', test.step(p_task, split_part(e, '>', 1)),
                                test.step(p_task, split_part(e, '>', 2))), ', ')
    FROM unnest(p_edges) e
$$;

-- Valid DAGs are accepted, in one multi-row INSERT (make_task) or edge by edge.
DO $$
DECLARE
    t uuid;
BEGIN
    t := test.make_shape('diamond');
    PERFORM test.eq(test.edges(t), 'b>end,c>end,start>b,start>c', 'diamond accepted');
    t := test.make_shape('order');
    PERFORM test.eq(test.edges(t),
        'payment>ship,reserve>payment,reserve>ship,validate>payment,validate>reserve,validate>ship',
        'order fulfillment with redundant edges accepted');
    t := test.make_task('{a,b,c}');
    EXECUTE test.edge_insert(t, '{a>b}');
    EXECUTE test.edge_insert(t, '{b>c}');
    EXECUTE test.edge_insert(t, '{a>c}');   -- a shortcut, not a cycle
    PERFORM test.eq(test.edges(t), 'a>b,a>c,b>c', 'edges added one by one');
END
$$;

-- Cycles: a direct back edge, a long one, and cycles formed only by several new edges.
DO $$
DECLARE
    t uuid;
BEGIN
    t := test.make_shape('linear');
    PERFORM test.expect_error(test.edge_insert(t, '{b>a}'), 'TK003', 'two-step cycle b>a');
    PERFORM test.expect_error(test.edge_insert(t, '{d>a}'), 'TK003', 'cycle through four steps d>a');
    PERFORM test.expect_error(test.edge_insert(t, '{d>b}'), 'TK003', 'cycle through three steps d>b');
    PERFORM test.expect_error(test.edge_insert(t, '{c>a,d>c}'), 'TK003',
                              'two back edges in one INSERT');
    PERFORM test.eq(test.edges(t), 'a>b,b>c,c>d', 'linear: edges unchanged after refused inserts');

    t := test.make_shape('tree');
    PERFORM test.expect_error(test.edge_insert(t, '{final>root}'), 'TK003', 'tree: final>root');
    PERFORM test.expect_error(test.edge_insert(t, '{g>R}'), 'TK003', 'tree: g>R');
    EXECUTE test.edge_insert(t, '{d>g}');   -- across branches, still acyclic
    PERFORM test.expect_error(test.edge_insert(t, '{g>L}'), 'TK003', 'tree: g>L after d>g');

    -- No edges yet: the cycle exists only among the new rows of one statement.
    t := test.make_task('{x,y,z}');
    PERFORM test.expect_error(test.edge_insert(t, '{x>y,y>z,z>x}'), 'TK003',
                              'three-edge cycle in one INSERT');
    PERFORM test.expect_error(test.edge_insert(t, '{x>y,y>x}'), 'TK003',
                              'two-edge cycle in one INSERT');
    PERFORM test.eq(test.edges(t), '', 'no edge of a refused INSERT remains');
    -- One existing edge, two new edges that close the cycle only together.
    EXECUTE test.edge_insert(t, '{x>y}');
    PERFORM test.expect_error(test.edge_insert(t, '{y>z,z>x}'), 'TK003',
                              'cycle through an old edge and two new ones');
    PERFORM test.eq(test.edges(t), 'x>y', 'only the old edge remains');
    -- The cycle-free part of that set is accepted on its own.
    EXECUTE test.edge_insert(t, '{y>z}');
    PERFORM test.eq(test.edges(t), 'x>y,y>z', 'y>z accepted');
END
$$;

-- Edges between steps of different tasks, alone or mixed with valid ones.
DO $$
DECLARE
    t1 uuid := test.make_task('{a,b}');
    t2 uuid := test.make_task('{a,b}');
    n integer;
BEGIN
    PERFORM test.expect_error(
        format('INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid) VALUES (%L, %L)',
               test.step(t1, 'a'), test.step(t2, 'b')),
        'TK003', 'edge between two tasks');
    PERFORM test.expect_error(
        format('INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid) VALUES (%L, %L), (%L, %L)',
               test.step(t1, 'a'), test.step(t1, 'b'), test.step(t2, 'a'), test.step(t1, 'b')),
        'TK003', 'valid edge plus an edge between two tasks');
    SELECT count(*) INTO n FROM workflow_step_edges e JOIN workflow_steps s
        ON s.workflow_step_uuid IN (e.from_step_uuid, e.to_step_uuid)
    WHERE s.task_uuid IN (t1, t2);
    PERFORM test.eq(n, 0, 'no edge remains after the refused cross-task inserts');
    EXECUTE test.edge_insert(t1, '{a>b}');
    EXECUTE test.edge_insert(t2, '{b>a}');  -- the other task's graph is its own
    PERFORM test.eq(test.edges(t1) || ' ' || test.edges(t2), 'a>b b>a', 'per-task edges accepted');
END
$$;

-- Self-loop: the check constraint (23514); duplicate edge: the unique constraint (23505).
DO $$
DECLARE
    t uuid := test.make_task('{a,b}', '{a>b}');
BEGIN
    PERFORM test.expect_error(test.edge_insert(t, '{a>a}'), '23514', 'self-loop');
    PERFORM test.expect_error(test.edge_insert(t, '{a>b}'), '23505', 'duplicate edge');
    PERFORM test.eq(test.edges(t), 'a>b', 'edges unchanged');
END
$$;

-- UPDATE cannot close a cycle or join two tasks either.
DO $$
DECLARE
    t uuid := test.make_shape('linear');
    other uuid := test.make_shape('linear');
BEGIN
    -- c>d becomes c>a, closing a>b>c>a.
    PERFORM test.expect_error(
        format('UPDATE tasker.workflow_step_edges SET to_step_uuid = %L WHERE from_step_uuid = %L',
               test.step(t, 'a'), test.step(t, 'c')),
        'TK003', 'UPDATE closing a cycle');
    PERFORM test.expect_error(
        format('UPDATE tasker.workflow_step_edges SET to_step_uuid = %L WHERE from_step_uuid = %L',
               test.step(other, 'd'), test.step(t, 'c')),
        'TK003', 'UPDATE joining two tasks');
    UPDATE workflow_step_edges SET to_step_uuid = test.step(t, 'd')
    WHERE from_step_uuid = test.step(t, 'b');  -- b>c becomes b>d: still a DAG
    PERFORM test.eq(test.edges(t), 'a>b,b>d,c>d', 'acyclic UPDATE accepted');
END
$$;
