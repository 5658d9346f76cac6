-- Live precision on evidence (issue 23): when each reading was MEASURED, and the precision interval.
--
-- measured_at: sent by the sensor per reading (optional in the predict request); NULL means it
-- sent none and the arrival (inferred_at) counts. Lab samples are matched on
-- coalesce(measured_at, inferred_at) - a batch shares inferred_at (transaction start), so
-- matching on it cannot tell its readings apart. ALTER TABLE on the parent reaches every
-- partition of a partitioned table; the index below is declared on the parent for the same reason.
ALTER TABLE water.water_inferences ADD COLUMN IF NOT EXISTS measured_at timestamptz;

-- The matching query's index: per lab sample, the nearest readings of its sensor before and
-- after its sampled_at are two short index range scans (potability/qc_job.py), however long
-- the log is.
CREATE INDEX IF NOT EXISTS water_inferences_sensor_measured_idx
    ON water.water_inferences (sensor_id, (coalesce(measured_at, inferred_at)));

-- The interval behind the flag: flagged = enough potable calls AND the one-sided upper bound
-- under the floor (potability/live_precision.py).
ALTER TABLE water.qc_live_metrics
    ADD COLUMN IF NOT EXISTS precision_low double precision,
    ADD COLUMN IF NOT EXISTS precision_high double precision;
