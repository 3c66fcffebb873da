-- epochwatch migration 0003: a person's 1-10 scores for an epoch (`epochwatch review`).
-- Re-runnable, like the others. Upserted on (run_name, epoch): a corrected review replaces
-- the earlier one.

SET client_min_messages = warning;

CREATE TABLE IF NOT EXISTS public.epoch_reviews (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_name      text NOT NULL
                  REFERENCES public.training_runs (run_name)
                  ON UPDATE CASCADE ON DELETE CASCADE,
    epoch         integer NOT NULL CHECK (epoch >= 0),
    visual_score  double precision NOT NULL CHECK (visual_score BETWEEN 1 AND 10),
    style_score   double precision NOT NULL CHECK (style_score BETWEEN 1 AND 10),
    prompt_score  double precision NOT NULL CHECK (prompt_score BETWEEN 1 AND 10),
    overall_score double precision CHECK (overall_score BETWEEN 1 AND 10),
    notes         text NOT NULL DEFAULT '',
    reviewed_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT epoch_reviews_run_epoch_key UNIQUE (run_name, epoch)
);

CREATE OR REPLACE TRIGGER epoch_reviews_touch
    BEFORE UPDATE ON public.epoch_reviews
    FOR EACH ROW EXECUTE FUNCTION public.epochwatch_touch_updated_at();

REVOKE ALL ON public.epoch_reviews FROM anon, authenticated;
GRANT SELECT ON public.epoch_reviews TO anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.epoch_reviews TO service_role;

ALTER TABLE public.epoch_reviews ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS epoch_reviews_read ON public.epoch_reviews;
CREATE POLICY epoch_reviews_read ON public.epoch_reviews
    FOR SELECT TO anon, authenticated USING (true);
DROP POLICY IF EXISTS epoch_reviews_service_write ON public.epoch_reviews;
CREATE POLICY epoch_reviews_service_write ON public.epoch_reviews
    FOR ALL TO service_role USING (true) WITH CHECK (true);
