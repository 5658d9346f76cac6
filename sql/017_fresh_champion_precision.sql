-- 017: an honest figure for the champion (issue 23). The held-out rows are reused by every
-- run's promotion test, so the champion's held-out precision is the figure of a survivor of
-- many tests on the same rows: biased upward. Quality control measures it again on lab samples
-- no promotion test has used - received after the champion's run started and never in a
-- tested comparison - and stores it with the run (docs/statistics.md).

-- Every lab sample a promotion decision looked at (training/promotion.py, through
-- potability/governance/run_record.py): one row per sample, however many tests used it.
CREATE TABLE water.promotion_tested_samples (
    sample_id        text PRIMARY KEY,
    first_tested_at  timestamptz NOT NULL,
    last_tested_at   timestamptz NOT NULL CHECK (last_tested_at >= first_tested_at),
    tests            integer NOT NULL CHECK (tests >= 1)
);

COMMENT ON TABLE water.promotion_tested_samples IS
    'Lab samples used by a promotion test (held-out comparison rows), and how often.';

-- The champion's precision on fresh lab samples, per QC run (potability/quality/qc_record.py).
ALTER TABLE water.qc_runs
    ADD COLUMN fresh_model_version     text,
    ADD COLUMN fresh_since             timestamptz,
    ADD COLUMN fresh_potable_calls     integer CHECK (fresh_potable_calls >= 0),
    ADD COLUMN fresh_confirmed         integer CHECK (fresh_confirmed BETWEEN 0 AND fresh_potable_calls),
    ADD COLUMN fresh_precision_low     double precision CHECK (fresh_precision_low BETWEEN 0 AND 1),
    ADD COLUMN fresh_precision_high    double precision CHECK (fresh_precision_high BETWEEN 0 AND 1);

GRANT SELECT, INSERT, UPDATE ON water.promotion_tested_samples TO water_pipelines;
