-- 007: alerts raised (potability/alerts.py). One row per occurrence of an event: the partial
-- unique index lets only one OPEN alert exist per (event, key), so a QC re-run of the same
-- state, a second process or a retried pipeline step raises nothing new. An alert is resolved
-- when its condition clears (a later successful run, a week no longer flagged, a feature back
-- below drift, the error rate back under its threshold); the same condition coming back later
-- is a new occurrence and is raised again.

CREATE TABLE water.alerts (
    id             bigserial PRIMARY KEY,
    event          text NOT NULL CHECK (event ~ '^[a-z_]{1,64}$'),
    occurrence     text NOT NULL CHECK (length(occurrence) BETWEEN 1 AND 300),
    severity       text NOT NULL CHECK (severity IN ('WARNING', 'ERROR')),
    model_version  text,
    message        text NOT NULL,
    figures        jsonb NOT NULL DEFAULT '{}'::jsonb,
    raised_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz CHECK (resolved_at IS NULL OR resolved_at >= raised_at)
);

COMMENT ON TABLE water.alerts IS
    'Alerts raised, once per occurrence; open while resolved_at is null (shown on the status page).';

CREATE UNIQUE INDEX alerts_one_open_per_occurrence ON water.alerts (event, occurrence)
    WHERE resolved_at IS NULL;
CREATE INDEX alerts_open_idx ON water.alerts (raised_at DESC) WHERE resolved_at IS NULL;

-- Least privilege (the roles of 005_access_roles.sql, where they exist): the pipeline steps
-- raise and resolve run/QC alerts, the functions their error-rate alert, the status page reads.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'water_pipelines') THEN
        GRANT SELECT, INSERT, UPDATE ON water.alerts TO water_pipelines;
        GRANT USAGE ON SEQUENCE water.alerts_id_seq TO water_pipelines;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'water_predict') THEN
        GRANT SELECT, INSERT, UPDATE ON water.alerts TO water_predict;
        GRANT USAGE ON SEQUENCE water.alerts_id_seq TO water_predict;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'water_samples') THEN
        GRANT SELECT, INSERT, UPDATE ON water.alerts TO water_samples;
        GRANT USAGE ON SEQUENCE water.alerts_id_seq TO water_samples;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'water_status') THEN
        GRANT SELECT ON water.alerts TO water_status;
    END IF;
END
$$;
