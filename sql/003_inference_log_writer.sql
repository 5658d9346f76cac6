-- 003: the predict function's inference-log writer.
-- One call logs all readings of a request: the rows arrive as one JSON array, so the statement
-- the function sends is short whatever the batch size (pg8000 scans every statement's text in
-- Python on each call; a long multi-row INSERT cost more CPU than the database itself).
-- ON CONFLICT keeps it idempotent: it returns only the reading indexes it inserted, so the
-- function can tell a retry or a concurrent duplicate (fewer rows returned) from a new request.
-- It runs inside the caller's transaction (LANGUAGE sql, no COMMIT): all or nothing.

CREATE FUNCTION water.log_inferences(
    p_request_id  text,
    p_sensor_id   text,
    p_model_name  text,
    p_endpoint    text,
    p_latency_ms  double precision,
    p_rows        json
) RETURNS SETOF integer
LANGUAGE sql
AS $$
    INSERT INTO water.water_inferences (
        request_id, reading_index, sensor_id,
        ph, hardness, solids, chloramines, sulfate, conductivity, organic_carbon, trihalomethanes, turbidity,
        predicted_class, probability, model_name, model_version, endpoint, latency_ms)
    SELECT p_request_id, r.reading_index, p_sensor_id,
        r.ph, r.hardness, r.solids, r.chloramines, r.sulfate, r.conductivity, r.organic_carbon, r.trihalomethanes, r.turbidity,
        r.predicted_class, r.probability, p_model_name, r.model_version, p_endpoint, p_latency_ms
    FROM json_to_recordset(p_rows) AS r(
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
        model_version text)
    ON CONFLICT (request_id, reading_index) DO NOTHING
    RETURNING reading_index
$$;

COMMENT ON FUNCTION water.log_inferences(text, text, text, text, double precision, json) IS
    'Logs the readings of one predict request (JSON rows); returns the reading indexes inserted.';
