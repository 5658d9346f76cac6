-- 001: schema `water`: the training table and the inference log.
-- Feature ranges mirror potability/features.py (tests/sql check every bound against it).
-- Feature columns are lower case; NULL means "not measured" and is legal (the model imputes).

CREATE TABLE water.water_potability (
    id               bigserial PRIMARY KEY,
    sample_id        text NOT NULL UNIQUE CHECK (length(sample_id) BETWEEN 1 AND 128),
    ph               double precision CHECK (ph BETWEEN 0 AND 14),
    hardness         double precision CHECK (hardness BETWEEN 0 AND 2000),
    solids           double precision CHECK (solids BETWEEN 0 AND 100000),
    chloramines      double precision CHECK (chloramines BETWEEN 0 AND 50),
    sulfate          double precision CHECK (sulfate BETWEEN 0 AND 2000),
    conductivity     double precision CHECK (conductivity BETWEEN 0 AND 5000),
    organic_carbon   double precision CHECK (organic_carbon BETWEEN 0 AND 100),
    trihalomethanes  double precision CHECK (trihalomethanes BETWEEN 0 AND 1000),
    turbidity        double precision CHECK (turbidity BETWEEN 0 AND 100),
    potability       smallint NOT NULL CHECK (potability IN (0, 1)),
    sensor_id        text CHECK (length(sensor_id) BETWEEN 1 AND 128),
    sampled_at       timestamptz NOT NULL,
    submitted_by     text NOT NULL,
    source           text NOT NULL CHECK (source IN ('seed', 'lab')),
    created_at       timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE water.water_potability IS
    'Training table: certified lab samples (source=lab) and the public data set (source=seed).';
COMMENT ON COLUMN water.water_potability.sensor_id IS
    'Sensor/site the lab sample was taken at; quality control matches it to inferences.';

CREATE INDEX water_potability_sampled_at_idx ON water.water_potability (sampled_at);
CREATE INDEX water_potability_created_at_idx ON water.water_potability (created_at);
CREATE INDEX water_potability_sensor_sampled_idx
    ON water.water_potability (sensor_id, sampled_at) WHERE sensor_id IS NOT NULL;

CREATE TABLE water.water_inferences (
    id               bigserial PRIMARY KEY,
    request_id       text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 128),
    reading_index    integer NOT NULL CHECK (reading_index >= 0),
    sensor_id        text NOT NULL CHECK (length(sensor_id) BETWEEN 1 AND 128),
    ph               double precision CHECK (ph BETWEEN 0 AND 14),
    hardness         double precision CHECK (hardness BETWEEN 0 AND 2000),
    solids           double precision CHECK (solids BETWEEN 0 AND 100000),
    chloramines      double precision CHECK (chloramines BETWEEN 0 AND 50),
    sulfate          double precision CHECK (sulfate BETWEEN 0 AND 2000),
    conductivity     double precision CHECK (conductivity BETWEEN 0 AND 5000),
    organic_carbon   double precision CHECK (organic_carbon BETWEEN 0 AND 100),
    trihalomethanes  double precision CHECK (trihalomethanes BETWEEN 0 AND 1000),
    turbidity        double precision CHECK (turbidity BETWEEN 0 AND 100),
    predicted_class  smallint NOT NULL CHECK (predicted_class IN (0, 1)),
    probability      double precision NOT NULL CHECK (probability BETWEEN 0 AND 1),
    model_name       text NOT NULL,
    model_version    text NOT NULL,
    endpoint         text NOT NULL,
    inferred_at      timestamptz NOT NULL DEFAULT now(),
    latency_ms       double precision NOT NULL CHECK (latency_ms >= 0),
    UNIQUE (request_id, reading_index)
);

COMMENT ON TABLE water.water_inferences IS
    'Every inference answered by the predict function; one row per reading of a request.';

CREATE INDEX water_inferences_inferred_at_idx ON water.water_inferences (inferred_at);
CREATE INDEX water_inferences_sensor_inferred_idx ON water.water_inferences (sensor_id, inferred_at);
CREATE INDEX water_inferences_model_version_idx ON water.water_inferences (model_version, inferred_at);
