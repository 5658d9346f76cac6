-- 015: per-hour feature histograms on a fixed grid, rolled up after the hourly counts (sql/009),
-- so `potability qc` counts a week of readings into the champion's drift bins from ~170 hours
-- of cells instead of scanning every raw reading of the week (62 s at 20 M readings, issue 18).
-- potability/inference/inference_rollup.py owns the table; potability/quality/drift.py owns
-- the grid's meaning (docs/quality-control.md).
--
-- The grid: each feature's valid range (potability/features.py, the CHECKs of sql/001) cut into
-- 2000 equal cells; a value's cell is floor((x - lo) * 2000 / (hi - lo)) clamped to [0, 1999],
-- -1 for a missing value. Drift bins are unions of whole cells (the reference's quantile edges
-- are snapped to cell boundaries), so counting from cells equals counting the rows exactly.

CREATE FUNCTION water.drift_cell(x double precision, lo double precision, hi double precision)
RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- no SET clause: PostgreSQL inlines a simple SQL function only without one (9 calls a reading)
RETURN CASE WHEN x IS NULL THEN -1
            ELSE least(greatest(floor((x - lo) * 2000 / (hi - lo)), 0), 1999)::smallint END;

COMMENT ON FUNCTION water.drift_cell(double precision, double precision, double precision) IS
    'Cell of a value on the drift grid (2000 cells over [lo, hi]; -1 = missing); '
    'potability.quality.drift.cell_of computes the same in Python.';

-- feature: the index in potability.features.FEATURES (0 = ph ... 8 = turbidity).
CREATE TABLE water.inference_hourly_cells (
    hour      timestamptz NOT NULL CHECK (extract(epoch FROM hour)::bigint % 3600 = 0),
    feature   smallint NOT NULL CHECK (feature BETWEEN 0 AND 8),
    cell      smallint NOT NULL CHECK (cell BETWEEN -1 AND 1999),
    readings  bigint NOT NULL CHECK (readings > 0),
    PRIMARY KEY (hour, feature, cell)
);

COMMENT ON TABLE water.inference_hourly_cells IS
    'Readings per UTC hour, feature and drift-grid cell; complete for the hours of '
    'water.inference_rolled_hours whose cells_rolled is true.';

-- An hour rolled up (sql/009, by the status page or a catch-up) has counts; its cells follow
-- when water.roll_up_inference_cells fills them (the hourly maintenance, `potability qc`).
-- Until then qc counts that hour from the raw rows. Hours rolled up before this migration are
-- filled the same way: nothing is rebuilt inside the migration, whatever the log's size.
ALTER TABLE water.inference_rolled_hours ADD COLUMN cells_rolled boolean NOT NULL DEFAULT false;

-- The cells of the given whole hours, from the raw rows (the caller holds the rollup lock).
-- work_mem: an hour of 120 k readings is ~1 M (feature, cell) pairs to count in one hash.
CREATE FUNCTION water.insert_inference_cells(p_hours timestamptz[])
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, water
SET work_mem = '64MB'
BEGIN ATOMIC
    INSERT INTO water.inference_hourly_cells (hour, feature, cell, readings)
    SELECT date_bin(interval '1 hour', i.inferred_at, timestamptz '2000-01-01 00:00:00+00'),
           v.feature, v.cell, count(*)
    FROM water.water_inferences i
    CROSS JOIN LATERAL (VALUES
        (0, water.drift_cell(i.ph, 0, 14)),
        (1, water.drift_cell(i.hardness, 0, 2000)),
        (2, water.drift_cell(i.solids, 0, 100000)),
        (3, water.drift_cell(i.chloramines, 0, 50)),
        (4, water.drift_cell(i.sulfate, 0, 2000)),
        (5, water.drift_cell(i.conductivity, 0, 5000)),
        (6, water.drift_cell(i.organic_carbon, 0, 100)),
        (7, water.drift_cell(i.trihalomethanes, 0, 1000)),
        (8, water.drift_cell(i.turbidity, 0, 100))) AS v(feature, cell)
    WHERE i.inferred_at >= (SELECT min(m) FROM unnest(p_hours) m)
      AND i.inferred_at < (SELECT max(m) FROM unnest(p_hours) m) + interval '1 hour'
      AND date_bin(interval '1 hour', i.inferred_at, timestamptz '2000-01-01 00:00:00+00')
          = ANY (p_hours)
    GROUP BY 1, 2, 3;
END;

REVOKE EXECUTE ON FUNCTION water.insert_inference_cells(timestamptz[]) FROM PUBLIC;

-- Fills the cells of rolled-up hours that have none yet (oldest p_max_hours first) in [p_from,
-- p_through); returns how many hours it filled. Not part of water.roll_up_inference_hours: the
-- status page rolls hours up within its 5 s statement timeout, and cells cost ~15 us a reading
-- (1.8 s for an hour of 120 k readings) - the hourly maintenance and `potability qc` fill them.
CREATE FUNCTION water.roll_up_inference_cells(
    p_from timestamptz, p_through timestamptz, p_max_hours integer DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, water
AS $$
DECLARE
    v_missing timestamptz[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM water.inference_rolled_hours
                   WHERE hour >= p_from AND hour < p_through AND NOT cells_rolled) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('water.inference_hourly', 0));
    SELECT array_agg(hour ORDER BY hour) INTO v_missing FROM (
        SELECT hour FROM water.inference_rolled_hours
        WHERE hour >= p_from AND hour < p_through AND NOT cells_rolled
        ORDER BY hour LIMIT p_max_hours) todo;
    IF v_missing IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM water.insert_inference_cells(v_missing);
    UPDATE water.inference_rolled_hours SET cells_rolled = true WHERE hour = ANY (v_missing);
    RETURN cardinality(v_missing);
END
$$;

-- sql/009's forget, now forgetting the hours' cells too.
CREATE OR REPLACE FUNCTION water.forget_inference_hours(p_from timestamptz, p_to timestamptz)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, water
AS $$
DECLARE
    v_count integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('water.inference_hourly', 0));
    DELETE FROM water.inference_hourly WHERE hour >= p_from AND hour < p_to;
    DELETE FROM water.inference_hourly_cells WHERE hour >= p_from AND hour < p_to;
    DELETE FROM water.inference_rolled_hours WHERE hour >= p_from AND hour < p_to;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;

REVOKE EXECUTE ON FUNCTION water.roll_up_inference_cells(timestamptz, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION water.roll_up_inference_cells(timestamptz, timestamptz, integer)
    TO water_pipelines;
GRANT SELECT ON water.inference_hourly_cells TO water_pipelines;
GRANT EXECUTE ON FUNCTION water.drift_cell(double precision, double precision, double precision)
    TO water_pipelines;
