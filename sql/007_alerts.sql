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
