"""The migration job on Cloud SQL's role shape, on a fresh embedded PostgreSQL 16 cluster.

On Cloud SQL the migrator is an IAM database user (terraform/sql.tf: database_roles =
["cloudsqlsuperuser"]): a LOGIN role with no attributes of its own, a member of
``cloudsqlsuperuser``, a NOLOGIN role with CREATEROLE and CREATEDB that owns the databases
created through the API. Role attributes are never inherited through membership, so the migrator
can create roles only after ``SET ROLE cloudsqlsuperuser``; and since PostgreSQL 16 the creator
of a role holds only ADMIN on it, not SET or INHERIT (``createrole_self_grant`` is empty), so
the migrator must be granted ``water_owner`` explicitly WITH SET TRUE, INHERIT TRUE before it can
hand the schema to it. (PostgreSQL docs: "Role Attributes" - attributes are not inherited;
``CREATE ROLE`` / ``createrole_self_grant`` in PostgreSQL 16; Cloud SQL docs "About PostgreSQL
users and roles": cloudsqlsuperuser has CREATEROLE and CREATEDB, users created through Cloud SQL
are its members.)

The suite's session server already holds the water_* roles (created by its superuser), which a
new Cloud SQL instance does not: hence a cluster of its own, started like ``potability up``
starts one. Debian bookworm (this machine, CI) packages PostgreSQL 15 only - no 17 or 18
(``apt-cache policy postgresql-17 postgresql-18`` shows nothing) - so Cloud SQL's default
POSTGRES_18 is modelled by 16, the first version with the PostgreSQL 16 role rules it shares.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from potability import db, jobs, migrations, seed
from potability.config import Settings
from potability.inference import log as inference_log
from potability.local import stack as local_stack

# A PostgreSQL cluster of the module's own, shaped like a new Cloud SQL instance.
pytestmark = pytest.mark.integration

PROJECT_IAM = "demo-project.iam"
MIGRATOR = f"potability-migrator@{PROJECT_IAM}"
MEMBERS = {
    "predict": f"potability-predict@{PROJECT_IAM}",
    "mlflow": f"potability-mlflow@{PROJECT_IAM}",
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture(scope="module")
def cloud_sql_like(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh cluster shaped like a new Cloud SQL instance; the URL of its app database."""
    home = tmp_path_factory.mktemp("cloudsql")
    url = local_stack.start_database(home)
    try:
        admin = db.connect(Settings(database_url=url))
        admin.autocommit = True
        cur = admin.cursor()
        cur.execute("CREATE ROLE cloudsqlsuperuser NOLOGIN CREATEROLE CREATEDB")
        cur.execute(
            f"ALTER DATABASE {db.parse_database_url(url)['database']} OWNER TO cloudsqlsuperuser"
        )
        for user in (MIGRATOR, *MEMBERS.values()):
            cur.execute(f"CREATE ROLE {_q(user)} LOGIN")
        cur.execute(f"GRANT cloudsqlsuperuser TO {_q(MIGRATOR)}")
        admin.close()
        yield url
    finally:
        local_stack.down(home)


def _url_as(url: str, user: str) -> str:
    """``url`` with ``user`` as its user (trust authentication on the socket)."""
    as_user = re.sub(r"^(postgresql://)[^@/]*@", lambda m: m[1] + quote(user, safe="") + "@", url)
    assert as_user != url
    return as_user


def _as(url: str, user: str) -> db.Connection:
    """A connection to ``url``'s database as ``user``."""
    conn = db.connect(Settings(database_url=_url_as(url, user)))
    cur = conn.cursor()
    cur.execute("SELECT session_user")
    assert cur.fetchone()[0] == user
    conn.rollback()
    return conn


def test_the_migrator_migrates_seeds_and_grants_with_only_cloudsqlsuperuser_membership(
    cloud_sql_like: str,
) -> None:
    admin = db.connect(Settings(database_url=cloud_sql_like))
    cur = admin.cursor()
    cur.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %s", (MIGRATOR,)
    )
    assert list(cur.fetchone()) == [False, False, False]  # nothing of its own: Cloud SQL's shape
    admin.rollback()

    conn = _as(cloud_sql_like, MIGRATOR)
    try:
        result = migrations.migrate(conn, MEMBERS)
        assert result.applied == [m.version for m in migrations.discover()]
        assert seed.seed(conn, as_role=migrations.OWNER_ROLE) == len(seed.load_dataset())
        assert migrations.migrate(conn, MEMBERS).applied == []  # idempotent
        assert seed.seed(conn, as_role=migrations.OWNER_ROLE) == 0
    finally:
        conn.close()

    cur.execute(
        "SELECT m.set_option, m.inherit_option FROM pg_auth_members m "
        "WHERE m.roleid = 'water_owner'::regrole AND m.member = %s::regrole",
        (_q(MIGRATOR),),
    )
    assert (True, True) in [tuple(r) for r in cur.fetchall()]
    cur.execute(
        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname = 'water'"
    )
    assert [r[0] for r in cur.fetchall()] == ["water_owner"]
    cur.execute(
        "SELECT pg_has_role(%s, 'water_predict', 'MEMBER'), "
        "has_table_privilege(%s, 'water.water_inferences', 'INSERT'), "
        "has_table_privilege(%s, 'water.water_potability', 'SELECT'), "
        "has_schema_privilege(%s, 'public', 'CREATE')",
        (MEMBERS["predict"], MEMBERS["predict"], MEMBERS["predict"], MEMBERS["mlflow"]),
    )
    assert list(cur.fetchone()) == [True, True, False, True]
    admin.rollback()
    admin.close()

    # MLflow creates its own tables in public as its own user (it owns them, not us).
    mlflow_conn = _as(cloud_sql_like, MEMBERS["mlflow"])
    try:
        mlflow_conn.cursor().execute("CREATE TABLE public.mlflow_probe (id int)")
        mlflow_conn.commit()
    finally:
        mlflow_conn.close()


def test_no_login_user_owns_anything_so_service_accounts_can_be_dropped(
    cloud_sql_like: str,
) -> None:
    """Removing a service account (or `terraform destroy`) never blocks on owned objects."""
    conn = _as(cloud_sql_like, MIGRATOR)
    try:
        migrations.migrate(conn, MEMBERS)
        with pytest.raises(ValueError, match="unknown services"):
            migrations.migrate(conn, {"statuss": MEMBERS["predict"]})
    finally:
        conn.close()
    admin = db.connect(Settings(database_url=cloud_sql_like))
    cur = admin.cursor()
    try:
        cur.execute("DROP TABLE IF EXISTS public.mlflow_probe")  # MLflow's own, not ours
        for user in (MEMBERS["predict"], MIGRATOR):
            cur.execute(f"DROP ROLE {_q(user)}")
        cur.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname IN (%s, %s)",
            (MEMBERS["predict"], MIGRATOR),
        )
        assert cur.fetchone()[0] == 0
    finally:
        admin.rollback()  # the module's later tests keep their users
        admin.close()


def test_a_user_that_cannot_create_roles_is_told_what_it_lacks(cloud_sql_like: str) -> None:
    admin = db.connect(Settings(database_url=cloud_sql_like))
    admin.autocommit = True
    admin.cursor().execute('CREATE ROLE "nobody@demo-project.iam" LOGIN')
    admin.close()
    conn = _as(cloud_sql_like, "nobody@demo-project.iam")
    try:
        with pytest.raises(migrations.MigratorLacksPrivileges, match="cloudsqlsuperuser"):
            migrations.migrate(conn)
    finally:
        conn.close()


def test_the_maintenance_job_drains_and_rolls_up_as_the_migrator(
    cloud_sql_like: str, tmp_path: Path
) -> None:
    """terraform/maintenance.tf runs `potability maintenance` as the migrator's IAM user, which
    holds no privilege of its own: moving rows out of DEFAULT, attaching partitions (owner
    only), the rollups and ``water.inference_cells_fail`` (EXECUTE revoked from PUBLIC, granted
    to water_pipelines - sql/018) must all reach it through its membership of water_owner (the
    functions' and tables' owner, granted WITH INHERIT TRUE by the migration)."""
    conn = _as(cloud_sql_like, MIGRATOR)
    try:
        migrations.migrate(conn, MEMBERS)  # no partition yet: every reading lands in DEFAULT
    finally:
        conn.close()
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    admin = db.connect(Settings(database_url=cloud_sql_like))
    cur = admin.cursor()
    cur.execute(
        "INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, ph, solids, "
        "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
        "latency_ms) SELECT 'backlog-' || n, 0, 's' || (n %% 7), (n %% 140) / 10.0, "
        "CASE WHEN n %% 100 = 0 THEN 5e-324 ELSE n %% 100000 END, n %% 2, 0.5, 'm', '1', 'e', "
        "%s::timestamptz - n * interval '7 minutes', 1.0 FROM generate_series(1, 2000) n",
        (now - timedelta(hours=3),),
    )  # ~9.7 days back from three hours ago: past days in DEFAULT, and a week of hours to roll
    admin.commit()

    settings = Settings(
        database_url=_url_as(cloud_sql_like, MIGRATOR), home=tmp_path, inference_retention_days=90
    )
    report = inference_log.run_maintenance(settings, now=now)
    assert report.hours_rolled_up > 0

    cur.execute("SELECT count(*) FROM water.water_inferences_default")
    assert cur.fetchone()[0] == 0
    cur.execute("SELECT count(*) FROM water.water_inferences")
    assert cur.fetchone()[0] == 2000
    status = {s.job: s for s in jobs.status(admin)}[jobs.MAINTENANCE]
    assert status.last_succeeded_at is not None and status.failures_in_a_row == 0
    admin.rollback()
    admin.close()

    # the bisection's probe (rollup.py), as the job calls it when an hour's cells fail
    conn = _as(cloud_sql_like, MIGRATOR)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT water.inference_cells_fail(%s, %s, 0, 9223372036854775807)",
            (now - timedelta(days=10), now),
        )
        assert cur.fetchone()[0] is None  # every stored reading has its cells (sql/018)
    finally:
        conn.close()
