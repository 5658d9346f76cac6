-- 009: hourly rollups of the inference log, for the status page (potability/inference_rollup.py
-- owns them). The page reads these plus the raw rows of at most the latest hour or so, so a view
-- costs the same with a week of 20 M readings as with a week of 20 thousand.
--
-- Maintained incrementally, by whoever needs an hour first: water.roll_up_inference_hours rolls
-- up the completed hours of a range that are not rolled up yet, under a transaction advisory
-- lock, so two status instances refreshing at once never count an hour twice. Predict's write
-- path is untouched (no trigger): an hour is rolled up once, after it ended plus a grace for
-- transactions still committing (inferred_at is the writer's transaction start, now()).
-- A row written later with an inferred_at inside an already rolled-up hour (a backfill) is
-- not counted until that hour is rolled up again: water.forget_inference_hours.

CREATE TABLE water.inference_hourly (
    hour           timestamptz NOT NULL CHECK (extract(epoch FROM hour)::bigint % 3600 = 0),
    sensor_id      text NOT NULL,
    model_version  text NOT NULL,
    readings       bigint NOT NULL CHECK (readings > 0),
    potable        bigint NOT NULL CHECK (potable BETWEEN 0 AND readings),
    PRIMARY KEY (hour, sensor_id, model_version)
);

COMMENT ON TABLE water.inference_hourly IS
    'Inferences per UTC hour, sensor and model version (readings, potable); complete for the '
    'hours listed in water.inference_rolled_hours.';

-- Which hours are rolled up (an hour without readings has a row here and none above).
CREATE TABLE water.inference_rolled_hours (
    hour       timestamptz PRIMARY KEY CHECK (extract(epoch FROM hour)::bigint % 3600 = 0),
    readings   bigint NOT NULL CHECK (readings >= 0),
    rolled_at  timestamptz NOT NULL DEFAULT now()
);

-- Rolls up the hours that start at or after p_from and end at or before p_through (both whole
-- UTC hours) and are not rolled up yet - the oldest p_max_hours of them when given (a reader
-- pays a bounded amount; the rest stays raw until the next call); returns how many it rolled
-- up. SECURITY DEFINER: the status role only reads tables, but may complete the rollups it reads.
CREATE FUNCTION water.roll_up_inference_hours(
    p_from timestamptz, p_through timestamptz, p_max_hours integer DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, water
AS $$
DECLARE
    v_missing timestamptz[];
BEGIN
    IF extract(epoch FROM p_from)::bigint % 3600 <> 0
       OR extract(epoch FROM p_through)::bigint % 3600 <> 0 THEN
        RAISE EXCEPTION 'roll_up_inference_hours: % and % must be whole hours', p_from, p_through
            USING ERRCODE = '22023';
    END IF;
    -- cheap check without the lock: nothing to do is the common case
    IF NOT EXISTS (
        SELECT 1 FROM generate_series(p_from, p_through - interval '1 hour', interval '1 hour') h
        WHERE NOT EXISTS (SELECT 1 FROM water.inference_rolled_hours r WHERE r.hour = h)
    ) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('water.inference_hourly', 0));
    SELECT array_agg(h ORDER BY h) INTO v_missing FROM (
        SELECT h FROM generate_series(p_from, p_through - interval '1 hour', interval '1 hour') h
        WHERE NOT EXISTS (SELECT 1 FROM water.inference_rolled_hours r WHERE r.hour = h)
        ORDER BY h LIMIT p_max_hours) todo;
    IF v_missing IS NULL THEN
        RETURN 0;  -- a concurrent caller did it while we waited for the lock
    END IF;
    INSERT INTO water.inference_hourly (hour, sensor_id, model_version, readings, potable)
    SELECT date_bin(interval '1 hour', i.inferred_at, timestamptz '2000-01-01 00:00:00+00'),
           i.sensor_id, i.model_version, count(*), count(*) FILTER (WHERE i.predicted_class = 1)
    FROM water.water_inferences i
    WHERE i.inferred_at >= (SELECT min(m) FROM unnest(v_missing) m)
      AND i.inferred_at < (SELECT max(m) FROM unnest(v_missing) m) + interval '1 hour'
      AND date_bin(interval '1 hour', i.inferred_at, timestamptz '2000-01-01 00:00:00+00')
          = ANY (v_missing)
    GROUP BY 1, 2, 3;
    INSERT INTO water.inference_rolled_hours (hour, readings)
    SELECT m, coalesce((SELECT sum(readings) FROM water.inference_hourly x WHERE x.hour = m), 0)
    FROM unnest(v_missing) m;
    RETURN cardinality(v_missing);
END
$$;

-- Forgets the rollups of [p_from, p_to) so they are rolled up again from the raw rows (after a
-- backfill or a correction of old readings); returns how many hours it forgot.
CREATE FUNCTION water.forget_inference_hours(p_from timestamptz, p_to timestamptz)
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
    DELETE FROM water.inference_rolled_hours WHERE hour >= p_from AND hour < p_to;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;

REVOKE EXECUTE ON FUNCTION water.roll_up_inference_hours(timestamptz, timestamptz, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION water.forget_inference_hours(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION water.roll_up_inference_hours(timestamptz, timestamptz, integer)
    TO water_status, water_pipelines;
GRANT EXECUTE ON FUNCTION water.forget_inference_hours(timestamptz, timestamptz) TO water_pipelines;
GRANT SELECT ON water.inference_hourly, water.inference_rolled_hours TO water_status, water_pipelines;
