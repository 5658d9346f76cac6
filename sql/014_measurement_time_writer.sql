-- 014: the inference writer stores each reading's measured_at (sql/013 added the column; the
-- predict request carries it per reading, optional - NULL: the arrival time stands in, see
-- potability/live_precision.py). Same signature, grants and comment as sql/008's writer.

CREATE OR REPLACE FUNCTION water.log_inferences(
    p_caller      text,
    p_request_id  text,
    p_sensor_id   text,
    p_model_name  text,
    p_endpoint    text,
    p_latency_ms  double precision,
    p_rows        json
) RETURNS SETOF integer
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN QUERY
    WITH claimed AS (
        INSERT INTO water.inference_requests (caller, request_id, sensor_id, readings)
        VALUES (p_caller, p_request_id, p_sensor_id, json_array_length(p_rows))
        ON CONFLICT (caller, request_id) DO NOTHING
        RETURNING inferred_at
    )
    INSERT INTO water.water_inferences (
        request_id, reading_index, sensor_id,
        ph, hardness, solids, chloramines, sulfate, conductivity, organic_carbon, trihalomethanes, turbidity,
        predicted_class, probability, model_name, model_version, endpoint, latency_ms, inferred_at, caller,
        measured_at)
    SELECT p_request_id, r.reading_index, p_sensor_id,
        r.ph, r.hardness, r.solids, r.chloramines, r.sulfate, r.conductivity, r.organic_carbon, r.trihalomethanes, r.turbidity,
        r.predicted_class, r.probability, p_model_name, r.model_version, p_endpoint, p_latency_ms,
        claimed.inferred_at, p_caller, r.measured_at
    FROM claimed, json_to_recordset(p_rows) AS r(
        reading_index integer,
        ph double precision,
        hardness double precision,
        solids double precision,
        chloramines double precision,
        sulfate double precision,
        conductivity double precision,
        organic_carbon double precision,
        trihalomethanes double precision,
        turbidity double precision,
        predicted_class smallint,
        probability double precision,
        model_version text,
        measured_at timestamptz)
    RETURNING water_inferences.reading_index;
END
$$;
