-- 005: least-privilege access through NOLOGIN group roles, owned objects through water_owner.
-- `potability migrate` (potability/migrations.py) creates the roles before it runs this file as
-- water_owner, and afterwards makes each service's database user (Cloud SQL IAM user) a member
-- of its role. Each role gets exactly the tables and statements its code uses; a later migration
-- that adds a table grants on it in the same file. No login user owns anything, so removing a
-- service account (or `terraform destroy`) never blocks on owned objects.

GRANT USAGE ON SCHEMA water TO water_predict, water_samples, water_status, water_pipelines;

-- migrate and the pipeline's first step read the applied versions (is the schema current?).
GRANT SELECT ON water.schema_migrations TO water_pipelines;

-- predict: log inferences (water.log_inferences runs as the caller: it needs INSERT).
GRANT SELECT, INSERT ON water.water_inferences TO water_predict;
REVOKE EXECUTE ON FUNCTION water.log_inferences(text, text, text, text, double precision, json) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION water.log_inferences(text, text, text, text, double precision, json) TO water_predict;

-- add_sample: insert certified lab samples (SELECT for the duplicate check).
GRANT SELECT, INSERT ON water.water_potability TO water_samples;

-- status (public page): reads only the tables it shows.
GRANT SELECT ON water.pipeline_runs, water.water_inferences, water.water_potability,
    water.qc_runs, water.qc_live_metrics, water.qc_drift TO water_status;

-- pipelines: export, run record, quality control.
GRANT SELECT ON water.water_potability, water.water_inferences TO water_pipelines;
GRANT SELECT, INSERT, UPDATE ON water.pipeline_runs TO water_pipelines;
GRANT SELECT, INSERT ON water.qc_runs, water.qc_live_metrics, water.qc_drift TO water_pipelines;

-- Sequences behind the bigserial ids of the tables the writers insert into; default privileges
-- cover the sequences of tables later migrations create (their table grants stay explicit).
GRANT USAGE ON ALL SEQUENCES IN SCHEMA water TO water_predict, water_samples, water_pipelines;
ALTER DEFAULT PRIVILEGES FOR ROLE water_owner IN SCHEMA water
    GRANT USAGE ON SEQUENCES TO water_predict, water_samples, water_pipelines;
-- Functions a later migration adds are not callable by everyone (PUBLIC) unless granted.
ALTER DEFAULT PRIVILEGES FOR ROLE water_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
