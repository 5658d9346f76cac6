-- 018: jobs that one odd reading or a backlog cannot stop (issue 29).
--
-- 1. water.drift_cell places every value the API accepts without an error. sql/015 computed
--    floor((x - lo) * 2000 / (hi - lo)) for every value, and PostgreSQL raises 22003
--    (underflow) where IEEE would return 0: Solids = 5e-324 (a subnormal, legal) stopped the
--    hourly cell rollup and `potability qc` for a week. A value within (hi - lo) * 1e-12 of lo
--    is in cell 0 whatever the arithmetic would say (scaled < 2e-9), a value at or above hi in
--    cell 1999 (the clamp): the arithmetic only ever sees x - lo >= (hi - lo) * 1e-12, which
--    neither underflows nor overflows on any grid of potability/features.py.
--    potability.quality.drift.cells_of takes the same branches, so both still agree.
-- 2. The DEFAULT partition drains in bounded batches: water.move_default_batch moves at most
--    p_rows rows of one day (an index range probe on the DEFAULT's inferred_at index, a TID
--    delete) into that day's table, built beside the log, one committed transaction per batch;
--    water.ensure_inference_partition then moves what is left (the rows that arrived meanwhile)
--    and attaches it. A day's rows moved by a run killed before the attach are kept in its
--    table and attached by the next run (potability/inference/log.py).
-- 3. water.job_status: when each job last succeeded and failed, with the failing step and the
--    error class (potability/jobs.py owns it; the status page shows it).
-- 4. water.inference_quarantine: readings a job could not process, kept in the log but left
--    out of the drift cells, counted and named in the job's alert (potability/inference/
--    rollup.py owns it).

CREATE OR REPLACE FUNCTION water.drift_cell(x double precision, lo double precision, hi double precision)
RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- no SET clause: PostgreSQL inlines a simple SQL function only without one (9 calls a reading)
RETURN CASE WHEN x IS NULL THEN -1
            WHEN x <= lo OR x - lo < (hi - lo) * 1e-12 THEN 0
            WHEN x >= hi THEN 1999
            ELSE least(greatest(floor((x - lo) * 2000 / (hi - lo)), 0), 1999)::smallint END;

-- --- quarantine ---------------------------------------------------------------------------

CREATE TABLE water.inference_quarantine (
    id              bigint NOT NULL,
    inferred_at     timestamptz NOT NULL,
    sensor_id       text NOT NULL,
    job             text NOT NULL CHECK (job ~ '^[a-z_]{1,32}$'),
    step            text NOT NULL,
    error_class     text NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, inferred_at)
);
CREATE INDEX inference_quarantine_inferred_at_idx ON water.inference_quarantine (inferred_at);

COMMENT ON TABLE water.inference_quarantine IS
    'Readings a job could not process (kept in water.water_inferences, left out of the drift '
    'cells); named in the job''s alert. Delete a row to have the reading processed again.';

-- sql/015's cells, without the quarantined readings.
CREATE OR REPLACE FUNCTION water.insert_inference_cells(p_hours timestamptz[])
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
      AND NOT EXISTS (SELECT 1 FROM water.inference_quarantine q
                      WHERE q.id = i.id AND q.inferred_at = i.inferred_at)
    GROUP BY 1, 2, 3;
END;

-- The first reading of [p_from, p_to) with p_lo <= id < p_hi whose cells cannot be computed
-- (NULL: none). Bisected by potability/inference/rollup.py when an hour's cells fail: each
-- call is one bounded range of one hour, inside a subtransaction (the EXCEPTION block).
CREATE FUNCTION water.inference_cells_fail(
    p_from timestamptz, p_to timestamptz, p_lo bigint, p_hi bigint)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, water
AS $$
BEGIN
    PERFORM count(*) FROM water.water_inferences i
    CROSS JOIN LATERAL (VALUES
        (water.drift_cell(i.ph, 0, 14)), (water.drift_cell(i.hardness, 0, 2000)),
        (water.drift_cell(i.solids, 0, 100000)), (water.drift_cell(i.chloramines, 0, 50)),
        (water.drift_cell(i.sulfate, 0, 2000)), (water.drift_cell(i.conductivity, 0, 5000)),
        (water.drift_cell(i.organic_carbon, 0, 100)),
        (water.drift_cell(i.trihalomethanes, 0, 1000)),
        (water.drift_cell(i.turbidity, 0, 100))) AS v(cell)
    WHERE i.inferred_at >= p_from AND i.inferred_at < p_to AND i.id >= p_lo AND i.id < p_hi
      AND NOT EXISTS (SELECT 1 FROM water.inference_quarantine q
                      WHERE q.id = i.id AND q.inferred_at = i.inferred_at);
    RETURN NULL;
EXCEPTION WHEN data_exception THEN
    RETURN SQLSTATE;
END
$$;

-- --- job status ---------------------------------------------------------------------------

CREATE TABLE water.job_status (
    job                text PRIMARY KEY CHECK (job ~ '^[a-z_]{1,32}$'),
    last_started_at    timestamptz,
    last_succeeded_at  timestamptz,
    last_failed_at     timestamptz,
    failed_step        text,
    error_class        text,
    failures_in_a_row  integer NOT NULL DEFAULT 0 CHECK (failures_in_a_row >= 0),
    quarantined        bigint NOT NULL DEFAULT 0 CHECK (quarantined >= 0)
);

COMMENT ON TABLE water.job_status IS
    'The scheduled jobs (maintenance, qc): last success, last failure with its step and error '
    'class, readings in quarantine; shown on the status page (potability/jobs.py).';

-- --- bounded moves out of DEFAULT ---------------------------------------------------------

-- The day's table beside the log (not attached), with its bound as a CHECK so ATTACH skips
-- the validation scan of the new table; created if missing.
CREATE FUNCTION water.inference_day_table(p_day date) RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v_name  text := 'water_inferences_p' || to_char(p_day, 'YYYYMMDD');
    v_from  timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    v_to    timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass('water.' || v_name) IS NULL THEN
        EXECUTE format('CREATE TABLE water.%I (LIKE water.water_inferences '
                       'INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)', v_name);
        EXECUTE format('ALTER TABLE water.%I ADD CONSTRAINT %I CHECK (inferred_at >= %L AND inferred_at < %L)',
                       v_name, v_name || '_bound', v_from, v_to);
    END IF;
    RETURN v_name;
END
$$;

CREATE FUNCTION water.inference_partition_attached(p_day date) RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE i.inhparent = 'water.water_inferences'::regclass AND n.nspname = 'water'
          AND c.relname = 'water_inferences_p' || to_char(p_day, 'YYYYMMDD'))
$$;

-- Moves at most p_rows readings of p_day out of DEFAULT into the day's table (not attached
-- yet: the day's rows are out of the log's reads until ensure_inference_partition attaches
-- it, at the end of the day's drain). Returns the rows moved. Bounded: the rows are found by
-- the DEFAULT's inferred_at index (LIMIT p_rows) and deleted by TID.
CREATE FUNCTION water.move_default_batch(p_day date, p_rows integer) RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    v_from   timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    v_to     timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
    v_name   text;
    v_cols   text;
    v_moved  integer;
BEGIN
    IF water.inference_partition_attached(p_day) THEN
        RETURN 0;  -- DEFAULT cannot hold rows of a day that has a partition
    END IF;
    v_name := water.inference_day_table(p_day);
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols
    FROM pg_attribute
    WHERE attrelid = 'water.water_inferences'::regclass AND attnum > 0 AND NOT attisdropped;
    -- a move is not a deletion (sql/008): row triggers on the log must not see it
    ALTER TABLE water.water_inferences_default DISABLE TRIGGER USER;
    EXECUTE format('WITH moved AS (DELETE FROM water.water_inferences_default WHERE ctid = ANY (ARRAY('
                   'SELECT ctid FROM water.water_inferences_default '
                   'WHERE inferred_at >= %L AND inferred_at < %L LIMIT %s)) RETURNING %s) '
                   'INSERT INTO water.%I (%s) SELECT %s FROM moved',
                   v_from, v_to, p_rows, v_cols, v_name, v_cols, v_cols);
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    ALTER TABLE water.water_inferences_default ENABLE TRIGGER USER;
    RETURN v_moved;
END
$$;

-- sql/008's ensure, now finishing a day whose table exists but is not attached (a drain in
-- progress, or one a killed run left): the rest of the day's DEFAULT rows are moved under the
-- lock, then the table is attached. Returns whether it attached a partition.
CREATE OR REPLACE FUNCTION water.ensure_inference_partition(p_day date) RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    v_name  text;
    v_from  timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    v_to    timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
    v_cols  text;
BEGIN
    IF water.inference_partition_attached(p_day) THEN
        RETURN false;
    END IF;
    LOCK TABLE water.water_inferences_default IN ACCESS EXCLUSIVE MODE;
    v_name := water.inference_day_table(p_day);
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO v_cols
    FROM pg_attribute
    WHERE attrelid = 'water.water_inferences'::regclass AND attnum > 0 AND NOT attisdropped;
    ALTER TABLE water.water_inferences_default DISABLE TRIGGER USER;
    EXECUTE format('WITH moved AS (DELETE FROM water.water_inferences_default '
                   'WHERE inferred_at >= %L AND inferred_at < %L RETURNING %s) '
                   'INSERT INTO water.%I (%s) SELECT %s FROM moved',
                   v_from, v_to, v_cols, v_name, v_cols, v_cols);
    ALTER TABLE water.water_inferences_default ENABLE TRIGGER USER;
    EXECUTE format('ALTER TABLE water.water_inferences ATTACH PARTITION water.%I FOR VALUES FROM (%L) TO (%L)',
                   v_name, v_from, v_to);
    EXECUTE format('ALTER TABLE water.%I DROP CONSTRAINT IF EXISTS %I', v_name, v_name || '_bound');
    RETURN true;
END
$$;

REVOKE EXECUTE ON FUNCTION water.inference_cells_fail(timestamptz, timestamptz, bigint, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION water.inference_day_table(date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION water.move_default_batch(date, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION water.inference_cells_fail(timestamptz, timestamptz, bigint, bigint)
    TO water_pipelines;
GRANT SELECT, INSERT ON water.inference_quarantine TO water_pipelines;
GRANT SELECT ON water.inference_quarantine TO water_status;
GRANT SELECT, INSERT, UPDATE ON water.job_status TO water_pipelines;
GRANT SELECT ON water.job_status TO water_status;
