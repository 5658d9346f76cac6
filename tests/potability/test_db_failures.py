"""One classification of database failures (``potability.db.classify``), per SQLSTATE family.

Each family is provoked for real on PostgreSQL where PostgreSQL lets us (a terminated backend,
a role out of connection slots, a serialisation conflict, a deadlock, a statement timeout, a
server shutting down); the rest - and every family's boundary - on exceptions built exactly as
pg8000 builds them from the server's ErrorResponse (``args[0]`` the fields dict, ``"C"`` the
SQLSTATE). The classification never looks at message text.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pg8000.exceptions
import pytest

from potability import db
from potability.config import Settings
from potability.local import stack as local_stack

CONNECTION, TRANSIENT = db.Failure.CONNECTION, db.Failure.TRANSIENT


def server_error(code: str, severity: str = "ERROR") -> pg8000.exceptions.DatabaseError:
    """What pg8000 raises for a server ErrorResponse (fields as the protocol names them)."""
    return pg8000.exceptions.DatabaseError(
        {"S": severity, "V": severity, "C": code, "M": "text never consulted"}
    )


@pytest.mark.parametrize("code", ["08000", "08003", "08006", "08001", "08004", "08P01"])
def test_class_08_connection_exceptions_end_the_connection(code: str) -> None:
    assert db.classify(server_error(code)) is CONNECTION
    assert db.classify(server_error(code, "FATAL")) is CONNECTION


@pytest.mark.parametrize("code", ["57P01", "57P02", "57P03", "57P05", "25P03"])
def test_shutdowns_restarts_and_session_timeouts_end_the_connection(code: str) -> None:
    assert db.classify(server_error(code, "FATAL")) is CONNECTION


@pytest.mark.parametrize("code", ["53000", "53100", "53200", "53300", "53400"])
def test_class_53_insufficient_resources_is_transient(code: str) -> None:
    assert db.classify(server_error(code)) is TRANSIENT


@pytest.mark.parametrize("code", ["40001", "40P01", "55P03", "57014", "58000", "58030"])
def test_conflicts_timeouts_and_server_system_errors_are_transient(code: str) -> None:
    assert db.classify(server_error(code)) is TRANSIENT


@pytest.mark.parametrize(
    "code",
    [
        "23505",  # unique_violation
        "23514",  # check_violation
        "22P02",  # invalid_text_representation
        "42P01",  # undefined_table
        "42501",  # insufficient_privilege: a deployment bug, not an outage
        "25006",  # read_only_sql_transaction
        "40002",  # transaction_integrity_constraint_violation (class 40, not retry-safe)
        "57000",  # operator_intervention (class 57, but none of the listed states)
        "XX000",  # internal_error
    ],
)
def test_errors_of_the_request_or_the_code_are_not_the_databases(code: str) -> None:
    assert db.classify(server_error(code)) is None


def test_any_fatal_error_ends_the_connection_whatever_its_code() -> None:
    assert db.classify(server_error("57P04", "FATAL")) is CONNECTION  # database_dropped
    assert db.classify(server_error("XX000", "PANIC")) is CONNECTION
    localised = pg8000.exceptions.DatabaseError({"S": "FATAL", "C": "XX000", "M": "..."})
    assert db.classify(localised) is CONNECTION  # "S" only (pre-9.6 servers)


def test_failures_below_sql_end_the_connection() -> None:
    for exc in (
        pg8000.exceptions.InterfaceError("network error"),
        ConnectionResetError(),
        BrokenPipeError(),
        TimeoutError(),
        OSError("socket"),
    ):
        assert db.classify(exc) is CONNECTION
    assert db.classify(ValueError("a bug")) is None
    assert db.classify(pg8000.exceptions.DatabaseError("no fields")) is None


def test_the_code_is_found_behind_pg8000s_network_error_on_connect() -> None:
    """pg8000 closes the socket after a failed startup; if that close fails, the server's
    error survives only as the InterfaceError's ``__context__``."""
    exc = pg8000.exceptions.InterfaceError("network error")
    exc.__context__ = server_error("53300", "FATAL")  # what `raise` inside `except` sets
    assert db.sqlstate(exc) == "53300" and db.classify(exc) is CONNECTION
    assert db.unavailable(exc, "unreachable", CONNECTION).sqlstate == "53300"


def test_unavailable_keeps_the_sqlstate_for_the_log() -> None:
    exc = db.unavailable(server_error("57P03", "FATAL"), "database unreachable", CONNECTION)
    assert exc.sqlstate == "57P03" and exc.failure is CONNECTION
    assert str(exc).startswith("database unreachable: 57P03")
    exc = db.unavailable(pg8000.exceptions.InterfaceError("network error"), "lost", CONNECTION)
    assert exc.sqlstate is None and "network error" in str(exc)


# --- provoked for real ---------------------------------------------------------------------


def backend_pid(conn: db.Connection) -> int:
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    return cur.fetchone()[0]


def terminate(admin: db.Connection, pid: int) -> None:
    admin.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
    admin.commit()


@pytest.fixture
def pool(settings: Settings) -> Iterator[db.Pool]:
    pool = db.Pool(settings, size=3)
    yield pool
    pool.close()


@pytest.fixture
def scratch(conn: db.Connection) -> Iterator[str]:
    """A table of its own (two rows) for conflicts, dropped afterwards."""
    name = f"public.faults_{uuid.uuid4().hex[:8]}"
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v int NOT NULL)")
    cur.execute(f"INSERT INTO {name} VALUES (1, 0), (2, 0)")
    conn.commit()
    yield name
    conn.rollback()
    conn.cursor().execute(f"DROP TABLE IF EXISTS {name}")
    conn.commit()


def test_backend_terminated_mid_query_ends_the_connection_and_the_pool_starts_afresh(
    pool, conn
) -> None:
    """The server sends FATAL 57P01 and closes the socket; pg8000 1.31 keeps reading for
    ReadyForQuery and reports the closed socket (InterfaceError, the code lost) - either way
    it is a lost connection, and the pool must not hand the dead one out again."""
    with pool.transaction() as first:
        old = backend_pid(first)
    with pool.transaction() as c:  # LIFO: the same connection again
        assert backend_pid(c) == old
    errors: list[BaseException] = []

    def sleeper() -> None:
        try:
            with pool.transaction() as c:
                c.cursor().execute("SELECT pg_sleep(20)")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    thread = threading.Thread(target=sleeper)
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait for the sleep to be running
        cur = conn.cursor()
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND query LIKE %s",
            (old, "%pg_sleep%"),
        )
        found = cur.fetchone()[0]
        conn.rollback()
        if found:
            break
        time.sleep(0.05)
    terminate(conn, old)
    thread.join(timeout=15)
    assert not thread.is_alive()
    [exc] = errors
    assert isinstance(exc, db.DatabaseUnavailable)
    assert exc.failure is CONNECTION, repr(exc.__cause__)
    assert db.classify(exc.__cause__) is CONNECTION
    with pool.transaction() as c:
        assert backend_pid(c) != old


def test_a_stale_idle_connection_is_dropped_with_its_siblings(pool, conn) -> None:
    """A restart kills every pooled connection: the first failure invalidates them all, so the
    retry (and the next request) run on fresh connections instead of one failure each."""
    holders = [pool.transaction() for _ in range(3)]
    conns = [h.__enter__() for h in holders]
    pids = [backend_pid(c) for c in conns]
    for h in holders:
        h.__exit__(None, None, None)
    for pid in pids:
        terminate(conn, pid)
    time.sleep(0.2)
    with pytest.raises(db.DatabaseUnavailable) as caught, pool.transaction() as c:
        backend_pid(c)
    assert caught.value.failure is CONNECTION
    with pool.transaction() as c:  # not one of the other two dead ones
        assert backend_pid(c) not in pids


def test_no_free_connection_slot_is_53300(settings: Settings, conn) -> None:
    role = f"faults_limited_{uuid.uuid4().hex[:6]}"
    cur = conn.cursor()
    cur.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 1")
    conn.commit()
    limited = Settings(database_url=settings.database_url.replace("postgres:@", f"{role}:@", 1))
    first = db.connect(limited)
    try:
        with pytest.raises(db.DatabaseUnavailable) as caught:
            db.connect(limited)
        assert (caught.value.failure, caught.value.sqlstate) == (CONNECTION, "53300")
    finally:
        first.close()
        cur.execute(f"DROP ROLE {role}")
        conn.commit()


def _update_after_a_concurrent_update(pool: db.Pool, conn: db.Connection, scratch: str) -> None:
    """A REPEATABLE READ transaction of the pool updates a row another session changed after
    its snapshot: the server refuses it (40001)."""
    with pool.transaction() as c:
        cur = c.cursor()
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute(f"SELECT v FROM {scratch} WHERE id = 1")  # the snapshot is taken
        other = conn.cursor()
        other.execute(f"UPDATE {scratch} SET v = v + 1 WHERE id = 1")
        conn.commit()
        cur.execute(f"UPDATE {scratch} SET v = v + 10 WHERE id = 1")


def test_serialisation_conflict_is_40001_and_the_connection_is_kept(pool, conn, scratch) -> None:
    with pool.transaction() as c:
        kept = backend_pid(c)
    with pytest.raises(db.DatabaseUnavailable) as caught:
        _update_after_a_concurrent_update(pool, conn, scratch)
    assert (caught.value.failure, caught.value.sqlstate) == (TRANSIENT, "40001")
    with pool.transaction() as c:  # rolled back and reused: only the transaction failed
        assert backend_pid(c) == kept
        cur = c.cursor()
        cur.execute(f"SELECT v FROM {scratch} WHERE id = 1")
        assert cur.fetchone()[0] == 1


def test_deadlock_victim_is_40P01(pool, scratch) -> None:
    barrier = threading.Barrier(2, timeout=10)
    outcomes: list[BaseException | None] = []

    def worker(first: int, second: int) -> None:
        try:
            with pool.transaction() as c:
                cur = c.cursor()
                cur.execute("SET LOCAL deadlock_timeout = '100ms'")
                cur.execute(f"UPDATE {scratch} SET v = v + 1 WHERE id = %s", (first,))
                barrier.wait()
                cur.execute(f"UPDATE {scratch} SET v = v + 1 WHERE id = %s", (second,))
            outcomes.append(None)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            outcomes.append(exc)

    threads = [threading.Thread(target=worker, args=args) for args in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not any(t.is_alive() for t in threads)
    failed = [o for o in outcomes if o is not None]
    assert len(outcomes) == 2 and len(failed) == 1
    assert isinstance(failed[0], db.DatabaseUnavailable)
    assert (failed[0].failure, failed[0].sqlstate) == (TRANSIENT, "40P01")


def _sleep_past_the_statement_timeout(pool: db.Pool) -> None:
    with pool.transaction() as c:
        cur = c.cursor()
        cur.execute("SET LOCAL statement_timeout = '50ms'")
        cur.execute("SELECT pg_sleep(5)")


def test_statement_timeout_is_57014(pool) -> None:
    with pytest.raises(db.DatabaseUnavailable) as caught:
        _sleep_past_the_statement_timeout(pool)
    assert (caught.value.failure, caught.value.sqlstate) == (TRANSIENT, "57014")


def test_request_errors_pass_through_and_keep_the_connection(pool, scratch) -> None:
    with pool.transaction() as c:
        kept = backend_pid(c)
    with pytest.raises(pg8000.exceptions.DatabaseError) as caught, pool.transaction() as c:
        c.cursor().execute(f"INSERT INTO {scratch} VALUES (1, 0)")
    assert not isinstance(caught.value, db.DatabaseUnavailable)
    assert db.sqlstate(caught.value) == "23505"
    with pool.transaction() as c:
        assert backend_pid(c) == kept


@pytest.fixture
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A PostgreSQL of this test's own (it is shut down on purpose)."""
    home = tmp_path_factory.mktemp("pg-private")
    try:
        yield home, local_stack.start_database(home)
    finally:
        local_stack.stop_database(home)


@pytest.mark.e2e
def test_a_server_shutting_down_refuses_with_57P03_and_a_restart_recovers(
    private_server: tuple[Path, str],
) -> None:
    """Cloud SQL maintenance and failover look like this: new connections get FATAL 57P03
    (pg8000 raises DatabaseError, not InterfaceError) - it must be 'unavailable', not a bug."""
    home, url = private_server
    settings = Settings(database_url=url)
    pool = db.Pool(settings, size=2)
    with pool.transaction() as c:
        before = backend_pid(c)
    holder = db.connect(settings)  # a smart shutdown waits for this session to end
    pid = local_stack.postgres_pid(home)
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # PostgreSQL's "smart" shutdown
    caught: Any = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            db.connect(settings).close()
        except db.DatabaseUnavailable as exc:
            caught = exc
            if exc.sqlstate == "57P03":
                break
        time.sleep(0.05)
    assert caught is not None and caught.sqlstate == "57P03", caught
    assert caught.failure is CONNECTION
    holder.close()
    pool.close()  # the pool's idle session would keep a smart shutdown waiting, too
    deadline = time.monotonic() + 20
    while local_stack.postgres_pid(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert local_stack.postgres_pid(home) is None
    with pytest.raises(db.DatabaseUnavailable), pool.transaction() as c:  # down: refused
        backend_pid(c)
    local_stack.start_database(home)
    with pool.transaction() as c:  # the pool recovers without being rebuilt
        assert backend_pid(c) != before
    pool.close()


# --- the advisory lock that serialises promotions ------------------------------------------


def test_advisory_lock_serialises_holders(settings: Settings) -> None:
    name = f"faults-lock-{uuid.uuid4().hex[:6]}"
    events: list[str] = []
    first_in = threading.Event()

    def holder(tag: str, hold: float) -> None:
        with db.advisory_lock(settings, name):
            events.append(f"{tag} in")
            first_in.set()
            time.sleep(hold)
            events.append(f"{tag} out")

    a = threading.Thread(target=holder, args=("a", 0.5))
    a.start()
    assert first_in.wait(10)
    b = threading.Thread(target=holder, args=("b", 0.0))
    b.start()
    a.join(timeout=15)
    b.join(timeout=15)
    assert events == ["a in", "a out", "b in", "b out"]


def test_advisory_lock_is_released_when_its_holder_is_killed(settings: Settings) -> None:
    import subprocess
    import sys

    name = f"faults-lock-{uuid.uuid4().hex[:6]}"
    code = (
        "import sys, time; from potability import db; from potability.config import Settings;"
        f" cm = db.advisory_lock(Settings(database_url={settings.database_url!r}), {name!r});"
        " cm.__enter__(); print('held', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        # held: 55P03 after the wait
        with (
            pytest.raises(db.DatabaseUnavailable) as caught,
            db.advisory_lock(settings, name, wait_seconds=0.3),
        ):
            pass
        assert caught.value.sqlstate == "55P03"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        started = time.monotonic()
        with db.advisory_lock(settings, name, wait_seconds=10):
            assert time.monotonic() - started < 10
    finally:
        child.kill()
        child.wait(timeout=10)
