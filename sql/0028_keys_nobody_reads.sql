-- 0028_keys_nobody_reads.sql - three UUID primary keys that no query reads are dropped.
--
-- task_transitions, workflow_step_transitions and workflow_step_edges each had an index on a
-- UUID v7 of their own (a primary key) besides the index their readers use: history by
-- (task or step, created_at), edges by (from, to) and by to. Nothing looks a row up by that
-- UUID. A linear task of four steps wrote 29 entries into those three indexes (6 + 20 + 3 of
-- about 100: its WAL held 101 B-tree records per task), and since v7 UUIDs grow with time,
-- every writer of a table added its entry to the same rightmost leaf page. Writers queue for
-- hot pages under load: sampling pg_stat_activity every 10 ms during a no-op throughput run
-- found a buffer-lock wait (LWLock BufferContent) in 15 % of the active backends' samples,
-- mostly in complete_step and task creation.
--
-- Measured with `tasker bench throughput --workflow noop --tp-tasks 4000 --submit-batch 200`
-- on one database server, alternating runs: with the history keys dropped, 601-661 tasks/s
-- (median 617) before and 648-698 (median 667) after, higher in six pairs of six; with this
-- migration as it is, 584-694 (median 628) against 601-726 (median 653), higher in three
-- pairs of four. E2E (`bench floor,e2e --handlers c`, five pairs) moved within the noise,
-- lower after in four: linear / tree p50 8.73 / 14.21 ms before, 8.39 / 13.84 ms after in the
-- calmest pair.
--
-- The UUID columns stay (with their defaults), so API rows and exports keep their shape; v7
-- UUIDs are unique by construction. The edges' primary key becomes (from_step_uuid,
-- to_step_uuid), which was already unique. History has no natural key, so its tables keep no
-- primary key; REPLICA IDENTITY FULL lets logical replication publish the DELETEs that remove
-- history with its task (without it, a publication of all tables would refuse those
-- deletes). It changes nothing below wal_level = logical.

ALTER TABLE tasker.task_transitions DROP CONSTRAINT task_transitions_pkey;
ALTER TABLE tasker.workflow_step_transitions DROP CONSTRAINT workflow_step_transitions_pkey;
ALTER TABLE tasker.task_transitions REPLICA IDENTITY FULL;
ALTER TABLE tasker.workflow_step_transitions REPLICA IDENTITY FULL;

ALTER TABLE tasker.workflow_step_edges
    DROP CONSTRAINT workflow_step_edges_pkey,
    DROP CONSTRAINT workflow_step_edges_from_step_uuid_to_step_uuid_key,
    ADD CONSTRAINT workflow_step_edges_pkey PRIMARY KEY (from_step_uuid, to_step_uuid);
