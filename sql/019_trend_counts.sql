-- 019: each rolled-up hour's public totals, for the status page's 90-day trends (issue 33;
-- potability/inference/rollup.py owns them). The trends show readings and the potable share per
-- day for 90 days: summed from water.inference_hourly that is 90 days x 24 hours x sensors x
-- model versions rows per status refresh (429 k at 200 sensors: 171 ms of a 525 ms cold
-- refresh, docs/scale.md); kept on the hour when it is rolled up, a day is 24 rows whatever the
-- sensors. "Public": without the deploy smoke test's sensors ('smoke-': potability/features.py
-- SMOKE_SENSOR_PREFIX, tests/functions/test_status_trends.py), like every figure of the page.
-- Hours rolled up before 019 have NULLs: the trends sum those from water.inference_hourly
-- (nothing is rebuilt inside the migration, whatever the log's size).

ALTER TABLE water.inference_rolled_hours
    ADD COLUMN public_readings bigint,
    ADD COLUMN public_potable  bigint,
    ADD CONSTRAINT inference_rolled_hours_public_check CHECK (
        (public_readings IS NULL) = (public_potable IS NULL)
        AND public_potable BETWEEN 0 AND public_readings);

-- sql/009's roll-up (same signature, grants and lock), now also writing the hour's public totals.
CREATE OR REPLACE FUNCTION water.roll_up_inference_hours(
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
        RETURN 0;
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
    INSERT INTO water.inference_rolled_hours (hour, readings, public_readings, public_potable)
    SELECT m, coalesce(sum(x.readings), 0),
           coalesce(sum(x.readings) FILTER (WHERE x.sensor_id NOT LIKE 'smoke-%'), 0),
           coalesce(sum(x.potable) FILTER (WHERE x.sensor_id NOT LIKE 'smoke-%'), 0)
    FROM unnest(v_missing) m LEFT JOIN water.inference_hourly x ON x.hour = m
    GROUP BY m;
    RETURN cardinality(v_missing);
END
$$;
