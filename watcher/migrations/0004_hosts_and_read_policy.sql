-- epochwatch migration 0004: many runs on many hosts.
-- Re-runnable, like the others. Rows written before it keep NULL in the new columns and stay
-- readable; daemons from before it keep working (they do not send these columns).
--
-- 1. Where a row was made: each daemon sends its host name, the GPU it evaluates on (name and
--    memory in MiB; a CPU-only host sends gpu_name 'CPU only' and no memory) and, for the run,
--    where its results are (host:folder and the results repository's remote URL).
-- 2. Baselines (configs/baselines/*.toml, sent once by `epochwatch baselines push`) live in
--    training_runs with kind 'baseline', the plan's stated outcomes and notes.
-- 3. A read-only role for analysis from a laptop: `epochwatch_reader`. A key whose JWT says
--    {"role": "epochwatch_reader"} may SELECT the three tables and nothing else (no INSERT,
--    UPDATE or DELETE privilege, and row level security has no write policy for it).
--    See docs/multi-host.md for minting that key; the anon key can read too (migration 0002).

SET client_min_messages = warning;

ALTER TABLE public.training_runs
    ADD COLUMN IF NOT EXISTS host             text,
    ADD COLUMN IF NOT EXISTS gpu_name         text,
    ADD COLUMN IF NOT EXISTS gpu_memory_mb    integer CHECK (gpu_memory_mb >= 0),
    ADD COLUMN IF NOT EXISTS results_location text,
    ADD COLUMN IF NOT EXISTS results_remote   text,
    ADD COLUMN IF NOT EXISTS kind             text NOT NULL DEFAULT 'run'
                                              CHECK (kind IN ('run', 'baseline')),
    ADD COLUMN IF NOT EXISTS notes            text NOT NULL DEFAULT '',
    ADD COLUMN IF NOT EXISTS stated_outcomes  jsonb NOT NULL DEFAULT '{}'::jsonb;

ALTER TABLE public.epoch_evaluations
    ADD COLUMN IF NOT EXISTS host          text,
    ADD COLUMN IF NOT EXISTS gpu_name      text,
    ADD COLUMN IF NOT EXISTS gpu_memory_mb integer CHECK (gpu_memory_mb >= 0);

CREATE INDEX IF NOT EXISTS training_runs_by_host ON public.training_runs (host, gpu_name);

-- The reader role. On Supabase, PostgREST switches to the role named in the key's JWT; it can
-- only switch to roles granted to `authenticator`.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'epochwatch_reader') THEN
        CREATE ROLE epochwatch_reader NOLOGIN NOINHERIT;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'authenticator') THEN
        GRANT epochwatch_reader TO authenticator;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO epochwatch_reader;
REVOKE ALL ON public.training_runs, public.epoch_evaluations, public.epoch_reviews
    FROM epochwatch_reader;
GRANT SELECT ON public.training_runs, public.epoch_evaluations, public.epoch_reviews
    TO epochwatch_reader;

-- The read policies of 0002/0003 (SELECT, USING true) extended to the reader role. Re-running
-- 0002/0003 recreates them for anon and authenticated only; re-running this file adds it back.
ALTER POLICY training_runs_read ON public.training_runs
    TO anon, authenticated, epochwatch_reader;
ALTER POLICY epoch_evaluations_read ON public.epoch_evaluations
    TO anon, authenticated, epochwatch_reader;
ALTER POLICY epoch_reviews_read ON public.epoch_reviews
    TO anon, authenticated, epochwatch_reader;
