-- 011: least privilege for alerts and the status page, and an audit history of the training
-- table (issue 21). Runs as water_owner, like every migration.

-- 1. water.alerts: the public functions (predict, add_sample) raise and resolve only their own
-- error-rate alert, through two narrow SECURITY DEFINER functions; they can no longer UPDATE
-- (or INSERT into) the table, so a compromised function cannot resolve
-- live_precision_flagged to hide it. The pipelines keep their table grants (sql/007).

CREATE FUNCTION water.raise_function_alert(
    p_function       text,
    p_model_version  text,
    p_message        text,
    p_figures        jsonb,
    p_at             timestamptz
) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inserted bigint;
    -- who called: the role set with SET ROLE, else the login user (its memberships count)
    caller text := CASE WHEN current_setting('role') <> 'none' THEN current_setting('role')
                        ELSE session_user END;
BEGIN
    IF p_function IS NULL OR p_function NOT IN ('predict', 'add_sample')
       OR NOT pg_has_role(caller, CASE p_function WHEN 'predict' THEN 'water_predict'
                                                  ELSE 'water_samples' END, 'MEMBER') THEN
        RAISE EXCEPTION '% may raise the function_errors alert of its own function only, not %',
            caller, p_function USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO water.alerts (event, occurrence, severity, model_version, message, figures,
                              raised_at)
    VALUES ('function_errors', p_function, 'ERROR', p_model_version, p_message, p_figures, p_at)
    ON CONFLICT (event, occurrence) WHERE resolved_at IS NULL DO NOTHING
    RETURNING id INTO inserted;
    RETURN inserted IS NOT NULL;
END
$$;

CREATE FUNCTION water.resolve_function_alert(p_function text, p_at timestamptz)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    closed integer;
    caller text := CASE WHEN current_setting('role') <> 'none' THEN current_setting('role')
                        ELSE session_user END;
BEGIN
    IF p_function IS NULL OR p_function NOT IN ('predict', 'add_sample')
       OR NOT pg_has_role(caller, CASE p_function WHEN 'predict' THEN 'water_predict'
                                                  ELSE 'water_samples' END, 'MEMBER') THEN
        RAISE EXCEPTION '% may resolve the function_errors alert of its own function only, not %',
            caller, p_function USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE water.alerts SET resolved_at = greatest(p_at, raised_at)
    WHERE event = 'function_errors' AND occurrence = p_function AND resolved_at IS NULL;
    GET DIAGNOSTICS closed = ROW_COUNT;
    RETURN closed;
END
$$;

COMMENT ON FUNCTION water.raise_function_alert(text, text, text, jsonb, timestamptz) IS
    'The only alert a public function may raise: function_errors of itself (issue 21).';

REVOKE EXECUTE ON FUNCTION water.raise_function_alert(text, text, text, jsonb, timestamptz),
    water.resolve_function_alert(text, timestamptz) FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'water_predict') THEN
        REVOKE ALL ON water.alerts FROM water_predict, water_samples;
        REVOKE ALL ON SEQUENCE water.alerts_id_seq FROM water_predict, water_samples;
        GRANT EXECUTE ON FUNCTION
            water.raise_function_alert(text, text, text, jsonb, timestamptz),
            water.resolve_function_alert(text, timestamptz) TO water_predict, water_samples;
        -- 2. The public status page counts lab samples; it never shows who submitted them.
        REVOKE SELECT ON water.water_potability FROM water_status;
        GRANT SELECT (id, sample_id, ph, hardness, solids, chloramines, sulfate, conductivity,
                      organic_carbon, trihalomethanes, turbidity, potability, sensor_id,
                      sampled_at, source, created_at)
            ON water.water_potability TO water_status;
    END IF;
END
$$;

-- 3. Every change to the training table, by anyone (admins included), is recorded with who
-- made it: the database user (session_user: the IAM user on Cloud SQL), the role it acted as,
-- and the application's submitter (add_sample sets potability.submitter in its transaction).
-- Append-only for every access role: none may read, change or delete it; only water_owner
-- (migrations, an administrator) reads it. Disabling the trigger is DDL, which pgAudit logs on
-- Cloud SQL (pgaudit.log = ddl,role); docs/security.md.

CREATE TABLE water.water_potability_history (
    id           bigserial PRIMARY KEY,
    changed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    operation    text NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')),
    db_user      text NOT NULL,
    acting_role  text NOT NULL,
    app_user     text,
    client_addr  inet,
    txid         bigint NOT NULL,
    row_id       bigint,
    old_row      jsonb,
    new_row      jsonb
);

COMMENT ON TABLE water.water_potability_history IS
    'Audit history of water.water_potability: one row per changed row (or TRUNCATE), who and when.';

CREATE INDEX water_potability_history_row_idx ON water.water_potability_history (row_id, id);
CREATE INDEX water_potability_history_changed_at_idx
    ON water.water_potability_history (changed_at);

CREATE FUNCTION water.record_water_potability_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO water.water_potability_history (
        operation, db_user, acting_role, app_user, client_addr, txid, row_id, old_row, new_row)
    VALUES (
        TG_OP, session_user, current_setting('role'),
        nullif(current_setting('potability.submitter', true), ''),
        inet_client_addr(), txid_current(),
        CASE WHEN TG_OP = 'DELETE' THEN OLD.id WHEN TG_OP = 'TRUNCATE' THEN NULL ELSE NEW.id END,
        CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END,
        CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END);
    RETURN NULL;
END
$$;

REVOKE EXECUTE ON FUNCTION water.record_water_potability_change() FROM PUBLIC;

CREATE TRIGGER water_potability_history_rows
    AFTER INSERT OR UPDATE OR DELETE ON water.water_potability
    FOR EACH ROW EXECUTE FUNCTION water.record_water_potability_change();
CREATE TRIGGER water_potability_history_truncate
    AFTER TRUNCATE ON water.water_potability
    FOR EACH STATEMENT EXECUTE FUNCTION water.record_water_potability_change();
