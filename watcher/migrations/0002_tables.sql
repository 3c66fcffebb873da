-- epochwatch migration 0002: training runs and per-epoch evaluations.
-- Written to be run again safely (IF NOT EXISTS / OR REPLACE / DROP ... IF EXISTS), so the
-- whole folder can be applied to an empty or an already migrated database.
-- The daemon upserts rows through PostgREST keyed on training_runs(run_name) and
-- epoch_evaluations(run_name, epoch); every column it sends is listed here.

SET client_min_messages = warning;  -- no "does not exist, skipping" notices on a first run

CREATE TABLE IF NOT EXISTS public.training_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_name        text NOT NULL UNIQUE CHECK (length(run_name) BETWEEN 1 AND 200),
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'stopped', 'finished', 'failed')),
    -- The plan's "Parameters to Track", one JSON object per group.
    architecture    jsonb NOT NULL DEFAULT '{}'::jsonb,
    hyperparameters jsonb NOT NULL DEFAULT '{}'::jsonb,
    data            jsonb NOT NULL DEFAULT '{}'::jsonb,
    augmentation    jsonb NOT NULL DEFAULT '{}'::jsonb,
    extra_params    jsonb NOT NULL DEFAULT '{}'::jsonb,
    verdict         text,
    best_epoch      integer CHECK (best_epoch >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.epoch_evaluations (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_name              text NOT NULL
                          REFERENCES public.training_runs (run_name)
                          ON UPDATE CASCADE ON DELETE CASCADE,
    epoch                 integer NOT NULL CHECK (epoch >= 0),
    checkpoint_sha256     text CHECK (checkpoint_sha256 ~ '^[0-9a-f]{64}$'),
    checkpoint_file       text,
    visual_score          double precision CHECK (visual_score BETWEEN 1 AND 10),
    style_score           double precision CHECK (style_score BETWEEN 1 AND 10),
    prompt_score          double precision CHECK (prompt_score BETWEEN 1 AND 10),
    overall_score         double precision CHECK (overall_score BETWEEN 1 AND 10),
    color_accuracy        double precision CHECK (color_accuracy BETWEEN 0 AND 100),
    style_quality         double precision CHECK (style_quality BETWEEN 0 AND 100),
    background_hex        text CHECK (background_hex ~ '^#[0-9a-f]{6}$'),
    background_match_rate double precision CHECK (background_match_rate BETWEEN 0 AND 1),
    background_match      boolean,
    unique_colors         double precision CHECK (unique_colors >= 0),
    n_images              integer CHECK (n_images >= 0),
    issues                text[] NOT NULL DEFAULT '{}',
    observations          text NOT NULL DEFAULT '',
    decision              text NOT NULL DEFAULT 'continue',
    metrics               jsonb NOT NULL DEFAULT '{}'::jsonb,
    git_commit            text CHECK (git_commit ~ '^[0-9a-f]{7,64}$'),
    evaluated_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT epoch_evaluations_run_epoch_key UNIQUE (run_name, epoch)
);

CREATE INDEX IF NOT EXISTS epoch_evaluations_by_decision
    ON public.epoch_evaluations (decision, run_name);

-- updated_at follows every change, whoever makes it.
CREATE OR REPLACE FUNCTION public.epochwatch_touch_updated_at()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    NEW.updated_at := pg_catalog.now();
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER training_runs_touch
    BEFORE UPDATE ON public.training_runs
    FOR EACH ROW EXECUTE FUNCTION public.epochwatch_touch_updated_at();
CREATE OR REPLACE TRIGGER epoch_evaluations_touch
    BEFORE UPDATE ON public.epoch_evaluations
    FOR EACH ROW EXECUTE FUNCTION public.epochwatch_touch_updated_at();

-- Access: the service key (service_role) writes; the anonymous key and signed-in users may
-- only read. Privileges are the first wall (Supabase grants ALL on new tables to anon and
-- authenticated by default, hence the REVOKE), row level security the second.
REVOKE ALL ON public.training_runs, public.epoch_evaluations FROM anon, authenticated;
GRANT SELECT ON public.training_runs, public.epoch_evaluations TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.training_runs, public.epoch_evaluations
    TO service_role;

ALTER TABLE public.training_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.epoch_evaluations ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS training_runs_read ON public.training_runs;
CREATE POLICY training_runs_read ON public.training_runs
    FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS training_runs_service_write ON public.training_runs;
CREATE POLICY training_runs_service_write ON public.training_runs
    FOR ALL TO service_role USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS epoch_evaluations_read ON public.epoch_evaluations;
CREATE POLICY epoch_evaluations_read ON public.epoch_evaluations
    FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS epoch_evaluations_service_write ON public.epoch_evaluations;
CREATE POLICY epoch_evaluations_service_write ON public.epoch_evaluations
    FOR ALL TO service_role USING (true) WITH CHECK (true);
