-- 016: which lab samples each pipeline run trained on and held out (issue 23), written by the
-- train step through potability/governance/run_record.py (the owner of water.pipeline_runs).
-- Quality control's drift reference is the champion's TRAINING rows, read from here; before
-- 016 it was every row created before the champion's run started, held-out rows included.
--
-- One row per run with two arrays (~3.3 k sample ids, ~40 kB a run, ~15 MB a year of daily runs),
-- rather than a row per sample (1.2 M rows a year): it is read whole, one run at a time.

CREATE TABLE water.pipeline_run_samples (
    run_id         text PRIMARY KEY REFERENCES water.pipeline_runs (run_id) ON DELETE CASCADE,
    split_seed     integer NOT NULL,
    test_fraction  double precision NOT NULL CHECK (test_fraction > 0 AND test_fraction < 1),
    training_sample_ids  text[] NOT NULL,
    held_out_sample_ids  text[] NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE water.pipeline_run_samples IS
    'The water.water_potability sample_ids a pipeline run trained on and held out (its split).';

GRANT SELECT, INSERT, UPDATE ON water.pipeline_run_samples TO water_pipelines;
