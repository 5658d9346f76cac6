"""Database access through pg8000: a DSN or unix socket locally, the Cloud SQL connector on GCP.

One small module used by the pipeline, the functions and the local stack. Functions keep a
:class:`Pool` per instance (created lazily, connections reused across requests); batch jobs
just call :func:`connect`.
"""

from __future__ import annotations

import contextlib
import enum
import queue
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlparse

import pg8000.dbapi
import pg8000.exceptions
import pg8000.native

from potability.config import Settings


class Cursor(Protocol):
    """What this code uses of a DB-API 2.0 cursor (``pg8000.dbapi.Cursor``; pg8000 ships no
    type information). Rows are lists; ``fetchone`` is None past the last row - callers that
    index it straight away rely on their statement returning one row."""

    @property
    def rowcount(self) -> int: ...

    def execute(
        self, operation: str, args: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> object: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


class Connection(Protocol):
    """What this code uses of a DB-API 2.0 connection (``pg8000.dbapi.Connection``)."""

    autocommit: bool

    def cursor(self) -> Cursor: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


DEFAULT_PORT = 5432

# Failures below SQL: the socket broke, the server vanished, a timeout. pg8000 raises
# InterfaceError ("network error") when it finds the socket closed; the rest are the OS's.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    pg8000.exceptions.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)


class Failure(enum.Enum):
    """What a database error says about the database, as opposed to about the request."""

    CONNECTION = "connection"
    """The session is over (or never began): drop the connection - and the pool's idle ones,
    which a restart or failover killed as well - and retry on a fresh one."""
    TRANSIENT = "transient"
    """The session is fine but the transaction failed for a reason that passes (a serialisation
    conflict, a deadlock victim, resources exhausted): roll back and retry."""
    EXHAUSTED = "exhausted"
    """Every connection of the pool stayed in use for the whole wait: nothing was sent to the
    database. Retrying at once only waits again; the client retries later (503)."""


# SQLSTATEs by family (https://www.postgresql.org/docs/current/errcodes-appendix.html). The
# message text is localised and changes between versions; the code is the contract.
CONNECTION_CLASSES = ("08",)
"""Class 08, connection exception (08000, 08003, 08006, 08001, 08004, 08P01, ...)."""
CONNECTION_STATES = frozenset(
    {
        "57P01",  # admin_shutdown: pg_terminate_backend, a shutdown, Cloud SQL maintenance
        "57P02",  # crash_shutdown: another backend crashed, the server resets every session
        "57P03",  # cannot_connect_now: starting up / shutting down / in recovery (failover)
        "57P05",  # idle_session_timeout (PostgreSQL 14+)
        "25P03",  # idle_in_transaction_session_timeout: the server closed the session
    }
)
TRANSIENT_CLASSES = ("53",)
"""Class 53, insufficient resources: 53300 too_many_connections, 53200 out_of_memory, 53100
disk_full, 53400 configuration_limit_exceeded - the database's trouble, never the request's."""
TRANSIENT_STATES = frozenset(
    {
        "40001",  # serialization_failure: the transaction was rolled back; repeating it is the cure
        "40P01",  # deadlock_detected: we were the victim, rolled back
        "55P03",  # lock_not_available (lock_timeout)
        "57014",  # query_canceled: statement_timeout or pg_cancel_backend by an operator
        "58000",  # system_error (an OS error on the server)
        "58030",  # io_error
    }
)
_SESSION_ENDING_SEVERITIES = frozenset({"FATAL", "PANIC"})


def _server_fields(exc: BaseException) -> dict[str, Any] | None:
    """The server's ErrorResponse fields: pg8000 passes them as a dict in ``args[0]``. Looked
    for along the exception chain too - when a connection attempt fails, pg8000 closes the
    socket, and a failing close replaces the server's error with InterfaceError("network
    error") whose ``__context__`` is the real one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.args and isinstance(current.args[0], dict):
            return current.args[0]
        current = current.__cause__ or current.__context__
    return None


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a server error (field ``"C"``), or ``None`` (a network failure)."""
    fields = _server_fields(exc)
    code = fields.get("C") if fields else None
    return code if isinstance(code, str) else None


def classify(exc: BaseException) -> Failure | None:
    """Whether ``exc`` is the database's failure (and which kind), or ``None`` for an error of
    the request or the code (constraint violations, syntax, types): those are not retried."""
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return Failure.CONNECTION
    if not isinstance(exc, pg8000.exceptions.DatabaseError):
        return None
    fields = _server_fields(exc)
    code = sqlstate(exc)
    if fields is None or code is None:
        return None
    if code.startswith(CONNECTION_CLASSES) or code in CONNECTION_STATES:
        return Failure.CONNECTION
    if code.startswith(TRANSIENT_CLASSES) or code in TRANSIENT_STATES:
        return Failure.TRANSIENT
    severity = fields.get("V") or fields.get("S")  # "V": never localised (PostgreSQL 9.6+)
    if severity in _SESSION_ENDING_SEVERITIES:  # any FATAL ends the session, whatever its code
        return Failure.CONNECTION
    return None


class DatabaseUnavailable(RuntimeError):
    """The database could not serve the request; retry later. Nothing was written.

    ``failure`` says whether the connection died or only the transaction; ``sqlstate`` is the
    server's code when it sent one (for the log line), ``None`` for a network failure.
    """

    def __init__(
        self, message: str, *, failure: Failure = Failure.CONNECTION, sqlstate: str | None = None
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.sqlstate = sqlstate


def unavailable(exc: BaseException, what: str, failure: Failure) -> DatabaseUnavailable:
    """The :class:`DatabaseUnavailable` for a classified failure, its SQLSTATE kept."""
    fields = _server_fields(exc)
    code = sqlstate(exc)
    detail = f"{code} {fields.get('M', '')}" if fields and code else str(exc) or type(exc).__name__
    return DatabaseUnavailable(f"{what}: {detail}", failure=failure, sqlstate=code)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    try:
        parsed = urlparse(url)
        if not parsed.password:
            return url
        netloc = parsed.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return parsed._replace(netloc=f"{user}:***@{netloc[1]}").geturl()
    except ValueError:
        return "<unparsable URL>"


def parse_database_url(url: str) -> dict[str, Any]:
    """Turn ``postgresql://user:pw@host:port/db?host=/socket/dir`` into pg8000 keyword arguments.

    A ``host`` query parameter (libpq style, what pgserver prints) or an empty host with
    ``unix_sock`` selects a unix socket, which is how the embedded PostgreSQL listens.
    """
    parsed = urlparse(url)
    if parsed.scheme.split("+")[0] not in {"postgresql", "postgres"}:
        raise ValueError(f"not a PostgreSQL URL: {redact_url(url)!r}")
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
        extra["password"] = settings.db_password.get_secret_value()
    return _connector.connect(
        settings.cloud_sql_instance, "pg8000", user=settings.db_user, db=settings.db_name, **extra
    )


def connect(settings: Settings, timeout: float = 10.0) -> Connection:
    """Open one connection as configured; raise :class:`DatabaseUnavailable` if that fails.

    Every failure to connect is the database's, not the caller's: refused or timed out,
    ``57P03`` (starting up, shutting down, in recovery), ``53300`` (no free slot), but also a
    rejected login or a missing database - a 503 the operator reads the cause of in the log,
    never a 500 (a client cannot fix any of them).
    """
    try:
        if settings.cloud_sql_instance:
            return _cloud_sql_connect(settings)
        if not settings.database_url:
            raise DatabaseUnavailable(
                "no database configured: set DATABASE_URL (local) or CLOUD_SQL_INSTANCE (GCP)"
            )
        return pg8000.dbapi.connect(**parse_database_url(settings.database_url), timeout=timeout)
    except DatabaseUnavailable:
        raise
    except Exception as exc:  # the connector raises its own types, too
        raise unavailable(exc, "database unreachable", Failure.CONNECTION) from exc


@contextlib.contextmanager
def advisory_lock(settings: Settings, name: str, wait_seconds: float = 600.0) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock ``name`` (hashed to a key) for the block.

    Serialises work across processes and machines that share the database - two pipeline runs
    promoting at once. It lives on a connection of its own, so it is released when the block
    ends *and* when the holder dies (a SIGKILLed step's session ends with its socket). Waiting
    longer than ``wait_seconds`` fails (``55P03``) instead of hanging forever.
    """
    # the socket must outwait the lock wait: at the 10 s default a second maintenance run
    # waiting for the first died with TimeoutError instead of waiting (issue 29)
    conn = connect(settings, timeout=wait_seconds + 30)
    try:
        conn.autocommit = True
        cur = conn.cursor()
        try:
            cur.execute(f"SET lock_timeout = {int(wait_seconds * 1000)}")
            cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (name,))
        except Exception as exc:  # classified below, else re-raised
            failure = classify(exc)
            if failure is None:
                raise
            raise unavailable(exc, f"could not take the lock {name!r}", failure) from exc
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))
    finally:
        _close_quietly(conn)


class Pool:
    """A small thread-safe pool: connections are created lazily and reused across requests.

    **Bounded**: at most ``size`` connections are open at once. A checkout takes one of
    ``size`` slots (waiting up to ``wait_seconds`` for one, then :class:`DatabaseUnavailable`
    with :attr:`Failure.EXHAUSTED`, the retryable 503) and gives it back at checkin. A new
    connection is opened only when no idle one is left, so open = in use + idle <= ``size``:
    a burst of misses waits for a connection instead of opening one each (Cloud SQL's
    ``max_connections`` is shared by every instance of every function and the pipeline).
    This is the existing pool bounded rather than SQLAlchemy's ``QueuePool``: the hot path
    keeps its prepared statements per pg8000 connection (:meth:`run`) and the generation
    rule below, which ``QueuePool``'s ``pre_ping``/``invalidate`` would replace with a round
    trip per checkout or a per-connection discovery of a failover.

    A failure that ends the session (:attr:`Failure.CONNECTION`) discards the connection *and*
    every idle one opened before it: a restart or failover killed them all, and handing them
    out one by one would cost one failed request each. Connections in use at that moment are
    discarded when they come back (they belong to an older generation).
    """

    def __init__(
        self, settings: Settings, size: int = 4, wait_seconds: float | None = None
    ) -> None:
        self._settings = settings
        self.size = size
        self.wait_seconds = settings.db_pool_wait_seconds if wait_seconds is None else wait_seconds
        self._slots = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[tuple[int, Connection]] = queue.LifoQueue(maxsize=size)
        self._generation = 0
        self._lock = threading.Lock()

    def _checkout(self) -> tuple[int, Connection]:
        """A slot, then an idle connection of the current generation or a new one."""
        if not self._slots.acquire(timeout=self.wait_seconds):
            raise DatabaseUnavailable(
                f"database pool exhausted: all {self.size} connections in use for "
                f"{self.wait_seconds:g} s",
                failure=Failure.EXHAUSTED,
            )
        try:
            return self._take()
        except BaseException:
            self._slots.release()
            raise

    def _take(self) -> tuple[int, Connection]:
        while True:
            try:
                generation, conn = self._idle.get_nowait()
            except queue.Empty:
                generation = self._generation
                try:
                    return generation, connect(self._settings)
                except DatabaseUnavailable:
                    self.invalidate()
                    raise
            if generation == self._generation:
                return generation, conn
            _close_quietly(conn)

    def invalidate(self) -> None:
        """Forget every connection opened so far (the server they talk to is gone)."""
        with self._lock:
            self._generation += 1
        while True:
            try:
                _close_quietly(self._idle.get_nowait()[1])
            except queue.Empty:
                return

    @contextlib.contextmanager
    def transaction(
        self, *, read_only: bool = False, statement_timeout_ms: int | None = None
    ) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on error.

        ``read_only`` makes it a read-only transaction; ``statement_timeout_ms`` bounds each of
        its statements (``SET LOCAL``: the pooled session keeps its default afterwards) - a
        statement cancelled by it (``57014``) is a transient failure like the others.

        A failure the database is to blame for (:func:`classify`) leaves as
        :class:`DatabaseUnavailable` - after the rollback, nothing of the transaction stays.
        """
        generation, conn = self._checkout()
        healthy = True
        try:
            if read_only:
                conn.cursor().execute("SET TRANSACTION READ ONLY")
            if statement_timeout_ms is not None:
                conn.cursor().execute(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
            yield conn
            conn.commit()
        except BaseException as exc:
            failure = classify(exc)
            if failure is Failure.CONNECTION:
                healthy = False
                self.invalidate()
                raise unavailable(exc, "database connection lost", failure) from exc
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001 - a connection that cannot roll back is done
                healthy = False
            if failure is Failure.TRANSIENT:
                raise unavailable(exc, "database transaction failed", failure) from exc
            raise
        finally:
            self._checkin(generation, conn, healthy)

    def _checkin(self, generation: int, conn: Connection, healthy: bool) -> None:
        """Back to the idle queue if healthy and of the current generation, else closed; the
        slot is free again either way."""
        try:
            if healthy and generation == self._generation:
                try:
                    self._idle.put_nowait((generation, conn))
                except queue.Full:
                    _close_quietly(conn)
            else:
                _close_quietly(conn)
        finally:
            self._slots.release()

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        """Run ONE statement on its own (no BEGIN/COMMIT) as a prepared statement; its rows.

        The hot path's primitive (predict). Outside a transaction PostgreSQL commits a
        statement by itself when it completes, atomically, so one statement that writes
        everything it must (``water.log_inferences``) needs no BEGIN and no COMMIT - two round
        trips fewer. It is also prepared once per connection (``pg8000.native``'s
        ``PreparedStatement``: ``:name`` parameters), so a call is a single Bind/Execute/Sync
        round trip, where ``cursor.execute`` costs three (Parse, Describe, Bind/Execute) plus
        the statement text scanned in Python each time. Failures are classified as in
        :meth:`transaction`: the caller sees :class:`DatabaseUnavailable` for the database's.
        """
        generation, conn = self._checkout()
        healthy = True
        try:
            statement = _prepared(conn, sql)
            return statement.run(**params) or []
        except BaseException as exc:
            failure = classify(exc)
            if failure is Failure.CONNECTION:
                healthy = False
                self.invalidate()
                raise unavailable(exc, "database connection lost", failure) from exc
            if failure is Failure.TRANSIENT:
                raise unavailable(exc, "database statement failed", failure) from exc
            raise
        finally:
            self._checkin(generation, conn, healthy)

    def close(self) -> None:
        """Close idle connections (tests and shutdown)."""
        while True:
            try:
                _close_quietly(self._idle.get_nowait()[1])
            except queue.Empty:
                return


_statements: weakref.WeakKeyDictionary[Connection, dict[str, pg8000.native.PreparedStatement]] = (
    weakref.WeakKeyDictionary()
)
"""Prepared statements by connection (a server-side name lives as long as its session)."""


def _prepared(conn: Connection, sql: str) -> pg8000.native.PreparedStatement:
    """``sql`` prepared on ``conn``, once: a pooled connection is used by one thread at a time,
    so the per-connection dict needs no lock."""
    mine = _statements.get(conn)
    if mine is None:
        mine = _statements[conn] = {}
    statement = mine.get(sql)
    if statement is None:
        statement = mine[sql] = pg8000.native.PreparedStatement(conn, sql)
    return statement


def _close_quietly(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # closing a dead connection may fail; fine
        conn.close()
