"""Apply the versioned SQL migrations in ``sql/`` in order, recording each one.

Re-running is a no-op; an applied migration whose file changed is refused (migrations are
append-only: fix forward with a new file). A session advisory lock serialises concurrent
runners (two ``potability up`` at once, or the Cloud Run migration job and an engineer).

:func:`migrate` is the whole job (``potability migrate``, ``potability up``, the Cloud Run job):
it creates the NOLOGIN roles, enables pgAudit where the server offers it, applies the
migrations *as* ``water_owner`` (so no login user owns a table and dropping a service account's
database user never blocks), and makes each service's database user a member of its access
role. :func:`require_current` is what the pipeline's first step checks.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from potability.db import Connection, Cursor
from potability.package_data import shipped_dir

SQL_DIR = shipped_dir("sql")
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 7_420_811  # arbitrary, fixed: the advisory lock id of this runner

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS water.schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migrations in ``sql_dir``, ordered by version; misnamed .sql files are an error.

    A missing or empty directory is an error too: "no migrations" is never a valid state of this
    project, and answering it with "up to date" is how an image without its sql/ once reported a
    successful migration of nothing (issue 19).
    """
    if not sql_dir.is_dir():
        raise FileNotFoundError(
            f"the migrations directory {sql_dir} does not exist (an install "
            "without the package data of sql/? see pyproject.toml)"
        )
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNN_name.sql")
        found.append(Migration(match[1], match[2], path.read_text()))
    if not found:
        raise FileNotFoundError(f"no migrations (NNN_name.sql) in {sql_dir}")
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {sql_dir}: {versions}")
    return found


def apply_migrations(conn: Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the versions applied."""
    cur = conn.cursor()
    cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        # CREATE SCHEMA checks the database privilege even with IF NOT EXISTS: ask first
        # (migrate() creates it before it becomes water_owner, who may not create schemas).
        cur.execute("SELECT to_regnamespace('water') IS NULL")
        if cur.fetchone()[0]:
            cur.execute("CREATE SCHEMA water")
        cur.execute(_BOOTSTRAP)  # no parameters: the simple protocol runs many statements
        conn.commit()
        cur.execute("SELECT version, checksum FROM water.schema_migrations")
        applied = dict(cur.fetchall())
        done = []
        for migration in discover(sql_dir):
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise RuntimeError(
                        f"migration {migration.version}_{migration.name} was edited after it "
                        "was applied; add a new migration instead"
                    )
                continue
            try:
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO water.schema_migrations (version, name, checksum) "
                    "VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
                conn.commit()
            except Exception:
                conn.rollback()
                raise
            done.append(migration.version)
        return done
    finally:
        conn.rollback()  # after an error the transaction is aborted; the unlock must still run
        cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        conn.commit()


# --- the migration job -------------------------------------------------------------------

OWNER_ROLE = "water_owner"
"""NOLOGIN role owning the schema and everything in it; the migrating user is its member."""
ACCESS_ROLES = {
    "predict": "water_predict",
    "samples": "water_samples",
    "status": "water_status",
    "pipelines": "water_pipelines",
    "mlflow": "water_mlflow",
    "operators": "water_operators",
    # The operators' `potability model` Cloud Run job (terraform/model_job.tf) runs as its own
    # account: the same role as the operators' group.
    "model-job": "water_operators",
}
"""Service (Terraform's service-account key) -> NOLOGIN role holding its grants (sql/005)."""
PGAUDIT_ABSENT = (
    "pgaudit: not available on this server (the embedded local PostgreSQL has no "
    "pgaudit; Cloud SQL offers it with the cloudsql.enable_pgaudit flag) - skipped"
)
HOW_TO_MIGRATE = (
    "run the migrations: on Google Cloud `make gcp-deploy` (or `gcloud run jobs "
    "execute <name_prefix>-migrate --wait`, the migration job), locally "
    "`potability migrate`"
)


class SchemaNotReady(RuntimeError):
    """The database lacks migrations this code needs (or has ones it does not know)."""


class MigratorLacksPrivileges(RuntimeError):
    """The migrating user can neither create roles nor become a role that can."""


@dataclass(frozen=True)
class MigrateResult:
    applied: list[str]
    pgaudit: str
    """``enabled``, ``already enabled`` or :data:`PGAUDIT_ABSENT`."""
    members: dict[str, str] = field(default_factory=dict)
    """Database user -> access role granted to it."""


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _ensure_role(cur: Cursor, name: str) -> None:
    """``CREATE ROLE name NOLOGIN`` unless it exists (roles are cluster-wide: another database
    on the same server may have created it already)."""
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
    if not cur.fetchone():
        cur.execute(f"CREATE ROLE {_quote(name)} NOLOGIN")


def _server_version(cur: Cursor) -> int:
    cur.execute("SELECT current_setting('server_version_num')::int")
    return cur.fetchone()[0]


def _role_admin(cur: Cursor, version: int) -> str | None:
    """The role that creates our roles and grants them: ``None`` if the migrating user may
    create roles itself (a superuser, or CREATEROLE), else a role with CREATEROLE it may
    ``SET ROLE`` to.

    On Cloud SQL the migrator is an IAM user whose only power is membership of
    ``cloudsqlsuperuser`` (NOLOGIN, CREATEROLE, CREATEDB): role attributes are never inherited
    through membership (PostgreSQL docs, "Role Attributes"), so it creates roles as that role.
    """
    cur.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = session_user")
    if cur.fetchone()[0]:
        return None
    privilege = "SET" if version >= 160000 else "MEMBER"  # SET exists since PostgreSQL 16
    cur.execute(
        "SELECT rolname FROM pg_roles WHERE (rolcreaterole OR rolsuper) AND NOT rolcanlogin"
        f" AND pg_has_role(session_user, oid, '{privilege}') ORDER BY rolname = "
        "'cloudsqlsuperuser' DESC, rolname LIMIT 1"
    )
    row = cur.fetchone()
    if row is None:
        cur.execute("SELECT session_user")
        raise MigratorLacksPrivileges(
            f"the migrating user {cur.fetchone()[0]} cannot create roles: it needs CREATEROLE or "
            "membership of a role that has it (on Cloud SQL: cloudsqlsuperuser, the "
            "database_roles of the migrator's google_sql_user in terraform/sql.tf)"
        )
    return row[0]


def _grant_member(cur: Cursor, role: str, member: str, version: int) -> None:
    """``GRANT role TO member`` so that the member can SET ROLE to it and uses its privileges.

    Since PostgreSQL 16 a grant's SET and INHERIT options are its own (and a role's creator
    holds only ADMIN on it, ``createrole_self_grant``): the migrator, granted ``water_owner`` by
    ``cloudsqlsuperuser``, could otherwise not hand the schema to it ("must be able to SET ROLE
    water_owner"). Re-granting updates the options of an existing grant (idempotent).
    """
    options = " WITH INHERIT TRUE, SET TRUE" if version >= 160000 else ""
    cur.execute(f"GRANT {_quote(role)} TO {_quote(member)}{options}")


def _enable_pgaudit(cur: Cursor) -> str:
    cur.execute("SELECT installed_version FROM pg_available_extensions WHERE name = 'pgaudit'")
    row = cur.fetchone()
    if row is None:
        return PGAUDIT_ABSENT
    if row[0]:
        return "already enabled"
    cur.execute("CREATE EXTENSION IF NOT EXISTS pgaudit")
    return "enabled"


def _adopt_schema(cur: Cursor) -> None:
    """Hand ``water`` and what is in it to ``water_owner`` (databases migrated before 005 were
    owned by whoever ran the first migration)."""
    cur.execute("CREATE SCHEMA IF NOT EXISTS water AUTHORIZATION " + OWNER_ROLE)
    cur.execute("ALTER SCHEMA water OWNER TO " + OWNER_ROLE)
    cur.execute(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'water' AND c.relkind IN ('r', 'p', 'v', 'm')"
        " AND pg_get_userbyid(c.relowner) <> %s",
        (OWNER_ROLE,),
    )
    for name, _kind in cur.fetchall():  # sequences owned by a column follow their table
        cur.execute(f"ALTER TABLE water.{_quote(name)} OWNER TO {OWNER_ROLE}")
    cur.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n"
        " ON n.oid = p.pronamespace WHERE n.nspname = 'water'"
        " AND pg_get_userbyid(p.proowner) <> %s",
        (OWNER_ROLE,),
    )
    for (signature,) in cur.fetchall():
        cur.execute(f"ALTER FUNCTION {signature} OWNER TO {OWNER_ROLE}")


def migrate(
    conn: Connection, members: Mapping[str, str] | None = None, sql_dir: Path = SQL_DIR
) -> MigrateResult:
    """The whole migration job, idempotent.

    Args:
        conn: a connection as the migrating user (locally the embedded superuser; on Cloud SQL
            the migrator service account's IAM user, a member of ``cloudsqlsuperuser`` with no
            attributes of its own: roles are created and granted as that role,
            :func:`_role_admin`; tests/potability/test_cloud_sql_roles.py).
        members: service key (``predict``, ``samples``, ``status``, ``pipelines``,
            ``mlflow``) -> its database user, made a member of that service's access role.
        sql_dir: the migrations.
    """
    members = dict(members or {})
    unknown = sorted(set(members) - set(ACCESS_ROLES))
    if unknown:
        raise ValueError(
            f"unknown services in the role members: {unknown}; known: {sorted(ACCESS_ROLES)}"
        )
    cur = conn.cursor()
    cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        version = _server_version(cur)
        cur.execute("SELECT session_user")
        migrator = cur.fetchone()[0]
        admin = _role_admin(cur, version)
        if admin:
            cur.execute(f"SET ROLE {_quote(admin)}")
        for role in dict.fromkeys((OWNER_ROLE, *ACCESS_ROLES.values())):  # once each
            _ensure_role(cur, role)
        _grant_member(cur, OWNER_ROLE, migrator, version)
        cur.execute("RESET ROLE")
        audit = _enable_pgaudit(cur)
        _adopt_schema(cur)
        # MLflow creates and owns its own tables in ``public`` (they are not ours to migrate).
        cur.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {ACCESS_ROLES['mlflow']}")
        conn.commit()
        cur.execute(f"SET ROLE {OWNER_ROLE}")
        try:
            applied = apply_migrations(conn, sql_dir)
        finally:
            conn.rollback()  # a failed migration leaves the transaction aborted
            cur.execute("RESET ROLE")
            conn.commit()
        granted = {}
        if admin:
            cur.execute(f"SET ROLE {_quote(admin)}")
        for service, user in sorted(members.items()):
            _grant_member(cur, ACCESS_ROLES[service], user, version)
            granted[user] = ACCESS_ROLES[service]
        cur.execute("RESET ROLE")
        conn.commit()
        return MigrateResult(applied, audit, granted)
    finally:
        conn.rollback()
        cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        conn.commit()


def pending(conn: Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Versions in ``sql_dir`` the database has not applied (all of them on an empty database)."""
    known = discover(sql_dir)
    cur = conn.cursor()
    cur.execute("SELECT to_regclass('water.schema_migrations') IS NOT NULL")
    if not cur.fetchone()[0]:
        conn.rollback()
        return [f"{m.version}_{m.name}" for m in known]
    cur.execute("SELECT version FROM water.schema_migrations")
    applied = {row[0] for row in cur.fetchall()}
    conn.rollback()
    return [f"{m.version}_{m.name}" for m in known if m.version not in applied]


def require_current(conn: Connection, sql_dir: Path = SQL_DIR) -> None:
    """Refuse to work on a database that lacks migrations, saying what to run."""
    missing = pending(conn, sql_dir)
    if missing:
        state = "not migrated" if len(missing) == len(discover(sql_dir)) else "behind this code"
        raise SchemaNotReady(
            f"the database schema is {state} (pending: {', '.join(missing)}); " + HOW_TO_MIGRATE
        )
