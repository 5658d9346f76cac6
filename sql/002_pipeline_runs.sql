-- 002: one row per training pipeline run and its promotion decision, written by the pipeline's
-- promote step (and marked failed by the runner when a step fails). The status page reads the
-- current champion and the last run from here, so it never needs to reach MLflow.

CREATE TABLE water.pipeline_runs (
    run_id                text PRIMARY KEY CHECK (length(run_id) BETWEEN 1 AND 200),
    started_at            timestamptz NOT NULL DEFAULT now(),
    finished_at           timestamptz,
    status                text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    decision              text CHECK (decision IN ('first_champion', 'challenger_wins', 'champion_kept')),
    model_name            text,
    champion_version      text,
    champion_family       text,
    champion_precision    double precision CHECK (champion_precision BETWEEN 0 AND 1),
    champion_recall       double precision CHECK (champion_recall BETWEEN 0 AND 1),
    champion_threshold    double precision CHECK (champion_threshold BETWEEN 0 AND 1),
    challenger_family     text,
    challenger_precision  double precision CHECK (challenger_precision BETWEEN 0 AND 1),
    challenger_recall     double precision CHECK (challenger_recall BETWEEN 0 AND 1),
    recall_floor          double precision CHECK (recall_floor BETWEEN 0 AND 1),
    training_rows         integer CHECK (training_rows >= 0),
    data_sha256           text,
    mlflow_run_id         text,
    error                 text,
    details               jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX pipeline_runs_started_at_idx ON water.pipeline_runs (started_at DESC);
