"""The local stack, the embedded default: PostgreSQL, migrations, seed data and MLflow.

State lives in one folder (``Settings.home``, default ``.potability/``):

    pg/                     embedded PostgreSQL data directory (pgserver)
    mlflow/artifacts/       MLflow artifact store (served by the tracking server)
    run/<service>.pid       one pid file per background service
    logs/<service>.log      its output
    env                     dotenv KEY='VALUE' lines every local process reads (``potability env``)

``up`` is idempotent: whatever already runs is reused. ``down`` stops every service that has a
pid file, then PostgreSQL (a fast shutdown of the postmaster, by the pid PostgreSQL records).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from potability import db, migrations, seed
from potability.config import DEFAULT_DB_NAME, Settings, private_home, read_env, update_env
from potability.inference import log as inference_log
from potability.local import services

MLFLOW = "mlflow"
DEFAULT_MLFLOW_PORT = 5000


@dataclass(frozen=True)
class StackInfo:
    database_url: str
    mlflow_tracking_uri: str
    training_rows: int
    migrations_applied: list[str]
    seeded_rows: int


# --- PostgreSQL -------------------------------------------------------------------------


def _pgdata(home: Path) -> Path:
    return home / "pg"


def start_database(home: Path, external_url: str = "") -> str:
    """The app database URL: ``external_url`` as given, or the embedded server (started if
    needed)."""
    if external_url:
        return external_url
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
        warnings.simplefilter("ignore")
        import pgserver  # imported lazily: only local mode needs the embedded binaries

    pgdata = _pgdata(home)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    with server._lock:  # pgserver caches handles per process: restart if `down` stopped it
        server.ensure_postgres_running()
    admin_url = server.get_uri()
    conn = db.connect(Settings(database_url=admin_url))
    try:
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DEFAULT_DB_NAME,))
        if not cur.fetchall():
            cur.execute(f"CREATE DATABASE {DEFAULT_DB_NAME}")
    finally:
        conn.close()
    return db.with_database(admin_url, DEFAULT_DB_NAME)


def postgres_pid(home: Path) -> int | None:
    """The embedded postmaster's pid, from the pid file PostgreSQL itself keeps."""
    try:
        pid = int((_pgdata(home) / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if services.is_alive(pid) else None


def stop_database(home: Path, timeout: float = 30.0) -> bool:
    pid = postgres_pid(home)
    if pid is None:
        return False
    os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and services.is_alive(pid):
        time.sleep(0.1)
    return not services.is_alive(pid)


LOCAL_FUNCTION_USERS = {
    "predict": "potability_predict",
    "samples": "potability_samples",
    "status": "potability_status",
}
"""Service -> the login user its local function connects as: a member of that service's access
role (sql/005), so the local stack runs with the same least privilege as Cloud SQL's IAM users.
The embedded server trusts its unix socket (it listens on no TCP port), so they need no
password."""


def function_database_url(database_url: str, service: str) -> str:
    """``database_url`` with the user of ``service``'s local function."""
    parsed = urlparse(database_url)
    host = parsed.netloc.rsplit("@", 1)[-1]
    return parsed._replace(netloc=f"{LOCAL_FUNCTION_USERS[service]}@{host}").geturl()


def _ensure_login_users(conn: db.Connection) -> None:
    cur = conn.cursor()
    for user in LOCAL_FUNCTION_USERS.values():
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
        if not cur.fetchone():
            cur.execute(f'CREATE ROLE "{user}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
    conn.commit()


def prepare_database(database_url: str, local_users: bool = True) -> tuple[list[str], int, int]:
    """Apply migrations and seed; return (migrations applied, rows seeded, rows in the table).
    ``local_users``: also create the local functions' login users (the embedded server)."""
    conn = db.connect(Settings(database_url=database_url))
    try:
        members = {}
        if local_users:
            _ensure_login_users(conn)
            members = dict(LOCAL_FUNCTION_USERS)
        applied = migrations.migrate(conn, members).applied
        inference_log.ensure_partitions(conn, inference_log.utc_day(datetime.now(UTC)))
        seeded = seed.seed(conn)
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM water.water_potability")
        total = cur.fetchone()[0]
        conn.commit()
        return applied, seeded, total
    finally:
        conn.close()


# --- MLflow -----------------------------------------------------------------------------

MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
"""MLflow 3's job runner (a pool of huey consumers for GenAI scorers and trace rollups) is of no
use to a tracking server of classical models, and costs ~2 GB and a busy core on a laptop."""


def mlflow_server_command(
    artifacts: Path, database_url: str, port: int
) -> tuple[list[str], dict[str, str]]:
    """MLflow server's command line and environment. The backend store URI (with the database
    password of an external ``DATABASE_URL``) goes in the environment
    (``MLFLOW_BACKEND_STORE_URI``, the option's documented variable), never on the command
    line, which every local user can read with ``ps``."""
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--artifacts-destination",
        artifacts.as_uri(),
        "--serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    return argv, {**MLFLOW_SERVER_ENV, "MLFLOW_BACKEND_STORE_URI": db.sqlalchemy_url(database_url)}


def start_mlflow(home: Path, database_url: str, port: int = DEFAULT_MLFLOW_PORT) -> str:
    """A real MLflow tracking server: metadata in the ``public`` schema, artifacts under home."""
    known = read_env(home).get("MLFLOW_TRACKING_URI")
    if known and services.running_pid(home, MLFLOW):
        return known
    port = services.free_port(port)
    artifacts = home / "mlflow" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    argv, env = mlflow_server_command(artifacts, database_url, port)
    pid = services.start(home, MLFLOW, argv, env=env)
    uri = f"http://127.0.0.1:{port}"
    services.wait_http(f"{uri}/health", timeout=180, pid=pid)
    return uri


# --- the whole stack --------------------------------------------------------------------


def up(settings: Settings, mlflow_port: int = DEFAULT_MLFLOW_PORT) -> StackInfo:
    """Start (or find) everything; safe to run again."""
    home = private_home(settings.home)
    database_url = start_database(home, settings.database_url if settings.env == "local" else "")
    external = settings.env == "local" and bool(settings.database_url)
    applied, seeded, total = prepare_database(database_url, local_users=not external)
    update_env(home, POTABILITY_ENV="local", POTABILITY_HOME=str(home), DATABASE_URL=database_url)
    tracking_uri = start_mlflow(home, database_url, mlflow_port)
    update_env(home, MLFLOW_TRACKING_URI=tracking_uri)
    return StackInfo(database_url, tracking_uri, total, applied, seeded)


def down(home: Path) -> list[str]:
    """Stop every service that has a pid file, then the embedded PostgreSQL; return what stopped."""
    stopped = []
    run = home / "run"
    for pid_path in sorted(run.glob("*.pid")) if run.exists() else []:
        if services.stop(home, pid_path.stem):
            stopped.append(pid_path.stem)
    if stop_database(home):
        stopped.append("postgresql")
    return stopped


def status(home: Path) -> dict[str, str]:
    """What runs, by service, with its pid."""
    result = {}
    pg = postgres_pid(home)
    result["postgresql"] = f"running (pid {pg})" if pg else "stopped"
    run = home / "run"
    for pid_path in sorted(run.glob("*.pid")) if run.exists() else []:
        pid = services.running_pid(home, pid_path.stem)
        result[pid_path.stem] = f"running (pid {pid})" if pid else "stopped"
    return result
