-- 012: every change of the model in service, and the operators' control over it (issue 22).
-- Owner: potability/model_changes.py (writes and typed reads). One row per action:
--   promoted     the daily pipeline made a new champion (actor 'automatic'), written when
--                its run succeeded (potability/run_record.py::finish_run);
--   rolled_back  an operator served an earlier version again (`potability model rollback`);
--   approved     an operator promoted a waiting candidate (`potability model approve`);
--   rejected     an operator discarded a candidate (`potability model reject`);
--   candidate    a challenger passed the evidence test in manual approval mode and waits;
--   expired      a candidate older than CANDIDATE_EXPIRY_DAYS, no longer approvable;
--   blocked      a challenger passed the evidence test while promotions were held;
--   held / released  `potability model hold` / `release` (held = the latest of the two is 'held').
-- The evidence travels with the row (the version's held-out precision with its 95% interval,
-- P(challenger better), the pipeline run it comes from), so the public history needs no
-- other table. A serving change (promoted/rolled_back/approved) is 'switching' while the new
-- version is being deployed and 'done' from the moment it answers (changed_at); a switch that
-- failed halfway is 'failed' and the old version kept serving.

CREATE TABLE water.model_changes (
    id                      bigserial PRIMARY KEY,
    model_name              text NOT NULL CHECK (length(model_name) BETWEEN 1 AND 200),
    action                  text NOT NULL CHECK (action IN ('promoted', 'rolled_back',
                                'approved', 'rejected', 'candidate', 'expired', 'blocked',
                                'held', 'released')),
    version                 text,
    previous_version        text,
    family                  text,
    held_out_precision      double precision CHECK (held_out_precision BETWEEN 0 AND 1),
    held_out_precision_low  double precision CHECK (held_out_precision_low BETWEEN 0 AND 1),
    held_out_precision_high double precision CHECK (held_out_precision_high BETWEEN 0 AND 1),
    held_out_recall         double precision CHECK (held_out_recall BETWEEN 0 AND 1),
    threshold               double precision CHECK (threshold BETWEEN 0 AND 1),
    probability_better      double precision CHECK (probability_better BETWEEN 0 AND 1),
    training_rows           integer CHECK (training_rows >= 0),
    run_id                  text,
    actor                   text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    reason                  text CHECK (length(reason) <= 2000),
    status                  text NOT NULL DEFAULT 'done'
                                CHECK (status IN ('switching', 'done', 'failed')),
    started_at              timestamptz NOT NULL DEFAULT now(),
    changed_at              timestamptz,
    error                   text,
    CHECK (status <> 'done' OR changed_at IS NOT NULL),
    CHECK (changed_at IS NULL OR changed_at >= started_at)
);

COMMENT ON TABLE water.model_changes IS
    'Changes of the model in service: who, why, when, on what evidence (public history).';

CREATE INDEX model_changes_started_idx ON water.model_changes (model_name, started_at DESC);
-- one pending switch per model at a time (a second operator waits or is refused)
CREATE UNIQUE INDEX model_changes_one_switch ON water.model_changes (model_name)
    WHERE status = 'switching';

-- The promote step now records why a winning challenger was not promoted.
ALTER TABLE water.pipeline_runs DROP CONSTRAINT pipeline_runs_decision_check;
ALTER TABLE water.pipeline_runs ADD CONSTRAINT pipeline_runs_decision_check CHECK (decision IN
    ('first_champion', 'challenger_wins', 'champion_kept', 'challenger_held', 'candidate_waiting'));

-- History before this file: the promotions of the succeeded runs.
INSERT INTO water.model_changes (model_name, action, version, family, held_out_precision,
    held_out_precision_low, held_out_precision_high, held_out_recall, threshold,
    probability_better, training_rows, run_id, actor, status, started_at, changed_at,
    previous_version)
SELECT coalesce(model_name, 'water-potability'), 'promoted', champion_version, champion_family,
       champion_precision, champion_precision_low, champion_precision_high, champion_recall,
       champion_threshold, probability_challenger_better, training_rows, run_id, 'automatic',
       'done', coalesce(finished_at, started_at), coalesce(finished_at, started_at),
       details ->> 'previous_champion_version'
FROM water.pipeline_runs
WHERE status = 'succeeded' AND decision IN ('first_champion', 'challenger_wins')
  AND champion_version IS NOT NULL;

-- Least privilege: the pipeline records promotions, candidates and expiries; operators
-- (`potability model ...`, the water_operators role) record their actions and raise their
-- alerts; the public status page reads.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'water_pipelines') THEN
        GRANT SELECT, INSERT, UPDATE ON water.model_changes TO water_pipelines;
        GRANT USAGE ON SEQUENCE water.model_changes_id_seq TO water_pipelines;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'water_status') THEN
        GRANT SELECT ON water.model_changes TO water_status;
        GRANT SELECT ON water.alerts TO water_status;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'water_operators') THEN
        GRANT USAGE ON SCHEMA water TO water_operators;
        GRANT SELECT ON water.schema_migrations TO water_operators;
        GRANT SELECT, INSERT, UPDATE ON water.model_changes TO water_operators;
        GRANT USAGE ON SEQUENCE water.model_changes_id_seq TO water_operators;
        GRANT SELECT ON water.pipeline_runs TO water_operators;
        GRANT SELECT, INSERT, UPDATE ON water.alerts TO water_operators;
        GRANT USAGE ON SEQUENCE water.alerts_id_seq TO water_operators;
    END IF;
END
$$;
