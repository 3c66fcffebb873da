-- epochwatch migration 0005: each run carries what it is judged by.
-- Re-runnable, like the others. The daemon sends, with the run's row, the rules and the plan's
-- partial_at_least it judges the run by (watcher.store.Store.judged_by), so an analysis read
-- from Supabase judges every run by its own rules, as one read from the state store does.
-- Rows written before it keep NULL and are judged by the default rules (said so in the output).

SET client_min_messages = warning;

ALTER TABLE public.training_runs
    ADD COLUMN IF NOT EXISTS judged_by jsonb;
