"""``potability migrate`` as the migration job does it, on fresh databases of the real embedded
PostgreSQL: NOLOGIN owner, access roles with exactly their grants, default privileges for later
sequences, pgAudit skipped with a message here (no pgaudit in the embedded server), a migrating
login user that can be dropped afterwards, and the export step refusing an unmigrated schema."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from potability import db, migrations
from potability.config import Settings
from training.dataset import export


def _one(conn: db.Connection, sql: str, *args: object) -> object:
    cur = conn.cursor()
    cur.execute(sql, args)
    value = cur.fetchone()[0]
    conn.rollback()
    return value


def test_export_refuses_an_unmigrated_database_saying_what_to_run(
    fresh_db: str, tmp_path: Path
) -> None:
    with pytest.raises(migrations.SchemaNotReady) as err:
        export(Settings(database_url=fresh_db), tmp_path / "x.csv")
    message = str(err.value)
    assert "not migrated" in message and "001_water_schema" in message
    assert "make gcp-deploy" in message and "potability migrate" in message
    assert "gcloud run jobs execute" in message
    assert not (tmp_path / "x.csv").exists()


def test_export_refuses_a_schema_behind_the_code(fresh_db: str, tmp_path: Path) -> None:
    conn = db.connect(Settings(database_url=fresh_db))
    try:
        migrations.migrate(conn)
        conn.cursor().execute("DELETE FROM water.schema_migrations WHERE version = '005'")
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(
        migrations.SchemaNotReady, match=r"behind this code \(pending: 005_access_roles\)"
    ):
        export(Settings(database_url=fresh_db), tmp_path / "x.csv")


def test_migrate_owns_everything_through_the_nologin_owner_and_grants_least_privilege(
    fresh_db: str,
) -> None:
    conn = db.connect(Settings(database_url=fresh_db))
    try:
        result = migrations.migrate(conn)
        assert result.applied == [m.version for m in migrations.discover()]
        assert result.pgaudit == migrations.PGAUDIT_ABSENT  # the embedded server has none
        assert migrations.pending(conn) == []
        assert _one(conn, "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'water_owner'") is False
        assert set(
            _rows(
                conn,
                "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'water'",
            )
        ) == {"water_owner"}
        assert (
            _one(conn, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'water'")
            == "water_owner"
        )

        def can(role: str, table: str, privilege: str) -> bool:
            return bool(
                _one(conn, "SELECT has_table_privilege(%s, %s, %s)", role, table, privilege)
            )

        assert can("water_predict", "water.water_inferences", "INSERT")
        assert not can("water_predict", "water.water_potability", "SELECT")
        assert can("water_samples", "water.water_potability", "INSERT")
        assert not can("water_samples", "water.water_inferences", "SELECT")
        assert can("water_status", "water.qc_drift", "SELECT")
        assert not can("water_status", "water.schema_migrations", "SELECT")
        assert not can("water_status", "water.pipeline_runs", "INSERT")
        assert can("water_pipelines", "water.pipeline_runs", "UPDATE")
        assert can("water_pipelines", "water.schema_migrations", "SELECT")
        assert not can("water_pipelines", "water.water_potability", "INSERT")
        # operators (sql/012): model changes and alerts; the run record read-only; no data
        assert can("water_operators", "water.model_changes", "INSERT")
        assert can("water_operators", "water.alerts", "INSERT")
        assert can("water_operators", "water.pipeline_runs", "SELECT")
        assert not can("water_operators", "water.pipeline_runs", "UPDATE")
        assert not can("water_operators", "water.water_potability", "SELECT")
        assert not can("water_operators", "water.water_inferences", "SELECT")
        assert can("water_status", "water.model_changes", "SELECT")
        assert not can("water_status", "water.model_changes", "INSERT")
        for role in migrations.ACCESS_ROLES.values():
            for table in (
                "water.water_potability",
                "water.water_inferences",
                "water.pipeline_runs",
            ):
                assert not can(role, table, "DELETE")
        assert (
            _one(
                conn,
                "SELECT has_function_privilege('water_predict', "
                "'water.log_inferences(text, text, text, text, text, double precision, json)',"
                " 'EXECUTE')",
            )
            is True
        )
        assert (
            _one(
                conn,
                "SELECT has_function_privilege('water_status', "
                "'water.log_inferences(text, text, text, text, text, double precision, json)',"
                " 'EXECUTE')",
            )
            is False
        )
        # Default privileges: what a later migration creates (as water_owner) has its sequence
        # usable by the writers and its functions not executable by PUBLIC. Rolled back after.
        cur = conn.cursor()
        cur.execute("SET ROLE water_owner")
        cur.execute("CREATE TABLE water.later (id bigserial PRIMARY KEY)")
        cur.execute("CREATE FUNCTION water.later_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        cur.execute(
            "SELECT has_sequence_privilege('water_predict', 'water.later_id_seq', 'USAGE'),"
            " has_function_privilege('water_status', 'water.later_fn()', 'EXECUTE')"
        )
        assert list(cur.fetchone()) == [True, False]
        conn.rollback()
        assert migrations.migrate(conn).applied == []  # idempotent
    finally:
        conn.close()


def _rows(conn: db.Connection, sql: str) -> list[object]:
    cur = conn.cursor()
    cur.execute(sql)
    rows = [r[0] for r in cur.fetchall()]
    conn.rollback()
    return rows


def test_potability_migrate_reports_the_skipped_pgaudit_and_the_memberships(
    fresh_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from potability import cli

    user = f"predict_sa_{uuid.uuid4().hex[:8]}"
    # The operators' model job (terraform/model_job.tf) shares water_operators with the group.
    job_user = f"model_job_sa_{uuid.uuid4().hex[:8]}"
    admin = db.connect(Settings(database_url=fresh_db))
    admin.autocommit = True
    admin.cursor().execute(f"CREATE ROLE {user} LOGIN")
    admin.cursor().execute(f"CREATE ROLE {job_user} LOGIN")
    monkeypatch.setenv("POTABILITY_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", fresh_db)
    monkeypatch.setenv("DB_ROLE_MEMBERS", f"predict={user},model-job={job_user}")
    try:
        assert cli.main(["migrate"]) == 0
        out = capsys.readouterr().out
        assert f"applied: {', '.join(m.version for m in migrations.discover())}" in out
        assert "pgaudit: not available on this server" in out and "skipped" in out
        assert f"member: {user} -> water_predict" in out
        assert f"member: {job_user} -> water_operators" in out
        assert cli.main(["migrate"]) == 0
        assert "applied: none (up to date)" in capsys.readouterr().out
    finally:
        admin.cursor().execute(f"DROP ROLE IF EXISTS {user}")
        admin.cursor().execute(f"DROP ROLE IF EXISTS {job_user}")
        admin.close()


def test_discover_refuses_a_missing_or_an_empty_migrations_directory(tmp_path: Path) -> None:
    """ "No migrations" is never a state of this project: an install without sql/ once answered
    it with "up to date" and a successful migration job (issue 19, tests/test_image.py)."""
    with pytest.raises(FileNotFoundError, match="does not exist"):
        migrations.discover(tmp_path / "absent")
    (tmp_path / "README.md").write_text("no .sql here")
    with pytest.raises(FileNotFoundError, match="no migrations"):
        migrations.discover(tmp_path)
    assert migrations.discover()  # the real one is found (checkout layout here)
