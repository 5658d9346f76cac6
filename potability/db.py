"""Database access through pg8000: a DSN or unix socket locally, the Cloud SQL connector on GCP.

One small module used by the pipeline, the functions and the local stack. Functions keep a
:class:`Pool` per instance (created lazily, connections reused across requests); batch jobs
just call :func:`connect`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlparse

import pg8000.dbapi
import pg8000.exceptions

from potability.config import Settings

Connection = pg8000.dbapi.Connection

DEFAULT_PORT = 5432

# Errors that mean "the database is unreachable or the connection died": the caller answers
# with a retryable 503 and a pool drops the connection. SQL errors (constraint violations...)
# are pg8000.dbapi.DatabaseError and mean the request itself was wrong.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    pg8000.exceptions.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; retry later. Nothing was written."""


def parse_database_url(url: str) -> dict[str, Any]:
    """Turn ``postgresql://user:pw@host:port/db?host=/socket/dir`` into pg8000 keyword arguments.

    A ``host`` query parameter (libpq style, what pgserver prints) or an empty host with
    ``unix_sock`` selects a unix socket, which is how the embedded PostgreSQL listens.
    """
    parsed = urlparse(url)
    if parsed.scheme.split("+")[0] not in {"postgresql", "postgres"}:
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    kwargs: dict[str, Any] = {
        "user": unquote(parsed.username or "postgres"),
        "database": unquote(parsed.path.lstrip("/")) or "postgres",
    }
    if parsed.password:
        kwargs["password"] = unquote(parsed.password)
    port = parsed.port or DEFAULT_PORT
    socket_dir = query.get("host", "")
    if query.get("unix_sock"):
        kwargs["unix_sock"] = query["unix_sock"]
    elif socket_dir.startswith("/"):
        kwargs["unix_sock"] = f"{socket_dir.rstrip('/')}/.s.PGSQL.{port}"
    else:
        kwargs["host"] = parsed.hostname or socket_dir or "localhost"
        kwargs["port"] = port
    return kwargs


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    parsed = urlparse(url)
    return parsed._replace(path="/" + database).geturl()


def sqlalchemy_url(database_url: str) -> str:
    """The SQLAlchemy form MLflow needs (``postgresql+pg8000://``), socket included."""
    kw = parse_database_url(database_url)
    auth = kw["user"] + (f":{kw['password']}" if "password" in kw else "")
    if "unix_sock" in kw:
        return f"postgresql+pg8000://{auth}@/{kw['database']}?unix_sock={kw['unix_sock']}"
    return f"postgresql+pg8000://{auth}@{kw['host']}:{kw['port']}/{kw['database']}"


_connector = None
_connector_lock = threading.Lock()


def _cloud_sql_connect(settings: Settings) -> Connection:
    """Connect through the Cloud SQL Python Connector (private IP, IAM database auth)."""
    global _connector
    from google.cloud.sql.connector import Connector, IPTypes  # only needed on GCP

    with _connector_lock:
        if _connector is None:
            _connector = Connector(ip_type=IPTypes.PRIVATE, refresh_strategy="lazy")
    extra: dict[str, Any] = {}
    if settings.db_iam_auth:
        extra["enable_iam_auth"] = True
    else:
        extra["password"] = settings.db_password
    return _connector.connect(
        settings.cloud_sql_instance, "pg8000", user=settings.db_user, db=settings.db_name, **extra
    )


def connect(settings: Settings, timeout: float = 10.0) -> Connection:
    """Open one connection as configured; raise :class:`DatabaseUnavailable` if unreachable."""
    try:
        if settings.cloud_sql_instance:
            return _cloud_sql_connect(settings)
        if not settings.database_url:
            raise DatabaseUnavailable(
                "no database configured: set DATABASE_URL (local) or CLOUD_SQL_INSTANCE (GCP)"
            )
        return pg8000.dbapi.connect(**parse_database_url(settings.database_url), timeout=timeout)
    except UNAVAILABLE_ERRORS as exc:
        raise DatabaseUnavailable(f"database unreachable: {exc}") from exc


class Pool:
    """A small thread-safe pool: connections are created lazily and reused across requests.

    A connection that failed with a connection-level error is discarded, never reused.
    """

    def __init__(self, settings: Settings, size: int = 4) -> None:
        self._settings = settings
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue(maxsize=size)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = connect(self._settings)
        healthy = True
        try:
            yield conn
            conn.commit()
        except UNAVAILABLE_ERRORS as exc:
            healthy = False
            raise DatabaseUnavailable(f"database connection lost: {exc}") from exc
        except BaseException:
            try:
                conn.rollback()
            except UNAVAILABLE_ERRORS:
                healthy = False
            raise
        finally:
            if healthy:
                try:
                    self._idle.put_nowait(conn)
                except queue.Full:
                    conn.close()
            else:
                with contextlib.suppress(Exception):
                    conn.close()

    def close(self) -> None:
        """Close idle connections (tests and shutdown)."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
            except Exception:  # noqa: BLE001 - closing a dead connection may fail; fine
                continue
