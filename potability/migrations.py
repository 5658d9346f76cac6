"""Apply the versioned SQL migrations in ``sql/`` in order, recording each one.

Re-running is a no-op; an applied migration whose file changed is refused (migrations are
append-only: fix forward with a new file). A transaction-scoped advisory lock serialises
concurrent runners (two ``potability up`` at once, or a Cloud Run job and an engineer).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from potability.db import Connection

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 7_420_811  # arbitrary, fixed: the advisory lock id of this runner

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS water;
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
    """The migrations in ``sql_dir``, ordered by version; misnamed .sql files are an error."""
    found = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNN_name.sql")
        found.append(Migration(match[1], match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {sql_dir}: {versions}")
    return found


def apply_migrations(conn: Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction; return the versions applied."""
    cur = conn.cursor()
    cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
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
        cur.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        conn.commit()
