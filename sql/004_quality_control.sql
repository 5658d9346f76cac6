-- 004: quality-control results, written by `potability qc` (potability/qc_job.py) and read by
-- the public status page. Each run recomputes everything from the lab samples and inferences,
-- so the page only reads the rows of the latest run (no aggregation at request time).

CREATE TABLE water.qc_runs (
    id                    bigserial PRIMARY KEY,
    computed_at           timestamptz NOT NULL,
    match_window_minutes  double precision NOT NULL CHECK (match_window_minutes >= 0),
    precision_floor       double precision NOT NULL CHECK (precision_floor BETWEEN 0 AND 1),
    min_matches           integer NOT NULL CHECK (min_matches >= 1),
    lab_samples           integer NOT NULL CHECK (lab_samples >= 0),
    matched_samples       integer NOT NULL CHECK (matched_samples >= 0),
    champion_version      text,
    drift_window_start    timestamptz NOT NULL,
    drift_window_end      timestamptz NOT NULL,
    drift_reference_rows  integer NOT NULL CHECK (drift_reference_rows >= 0),
    drift_recent_rows     integer NOT NULL CHECK (drift_recent_rows >= 0)
);

COMMENT ON TABLE water.qc_runs IS
    'One quality-control computation: its settings and what it saw; parent of the result rows.';

CREATE INDEX qc_runs_computed_at_idx ON water.qc_runs (computed_at DESC);

-- Live precision/recall of the deployed model from lab samples matched to inferences.
CREATE TABLE water.qc_live_metrics (
    run_id           bigint NOT NULL REFERENCES water.qc_runs (id) ON DELETE CASCADE,
    model_version    text NOT NULL,
    period           text NOT NULL CHECK (period = 'all' OR period ~ '^[0-9]{4}-W[0-9]{2}$'),
    week_start       date CHECK ((period = 'all') = (week_start IS NULL)),
    matches          integer NOT NULL CHECK (matches >= 0),
    true_positives   integer NOT NULL CHECK (true_positives >= 0),
    false_positives  integer NOT NULL CHECK (false_positives >= 0),
    false_negatives  integer NOT NULL CHECK (false_negatives >= 0),
    true_negatives   integer NOT NULL CHECK (true_negatives >= 0),
    live_precision   double precision CHECK (live_precision BETWEEN 0 AND 1),
    live_recall      double precision CHECK (live_recall BETWEEN 0 AND 1),
    flagged          boolean NOT NULL,
    PRIMARY KEY (run_id, model_version, period),
    CHECK (matches = true_positives + false_positives + false_negatives + true_negatives)
);

-- Per-feature PSI of recent inferences against the champion's training rows.
CREATE TABLE water.qc_drift (
    run_id                bigint NOT NULL REFERENCES water.qc_runs (id) ON DELETE CASCADE,
    feature               text NOT NULL,
    psi                   double precision CHECK (psi >= 0),
    status                text NOT NULL CHECK (status IN ('ok', 'watch', 'drift', 'insufficient_data')),
    reference_rows        integer NOT NULL CHECK (reference_rows >= 0),
    recent_rows           integer NOT NULL CHECK (recent_rows >= 0),
    reference_null_share  double precision NOT NULL CHECK (reference_null_share BETWEEN 0 AND 1),
    recent_null_share     double precision CHECK (recent_null_share BETWEEN 0 AND 1),
    PRIMARY KEY (run_id, feature)
);
