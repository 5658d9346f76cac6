"""``potability.db.Pool.run``: one prepared statement on its own, on the real PostgreSQL.

The predict function's hot path: each call must commit by itself (no BEGIN/COMMIT round
trips), be prepared once per connection, keep the connection usable after a request error,
and turn a dead connection into :class:`~potability.db.DatabaseUnavailable` like
:meth:`~potability.db.Pool.transaction` does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pg8000.exceptions
import pytest

from potability import db
from potability.config import Settings


@pytest.fixture
def pool(settings: Settings) -> Iterator[db.Pool]:
    pool = db.Pool(settings, size=2)
    yield pool
    pool.close()


@pytest.fixture
def scratch(conn: db.Connection) -> Iterator[str]:
    name = f"public.run_{uuid.uuid4().hex[:8]}"
    conn.cursor().execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v text NOT NULL)")
    conn.commit()
    yield name
    conn.rollback()
    conn.cursor().execute(f"DROP TABLE IF EXISTS {name}")
    conn.commit()


def _rows(conn: db.Connection, sql: str) -> list[list[object]]:
    conn.rollback()  # a fresh snapshot
    cur = conn.cursor()
    cur.execute(sql)
    rows = cur.fetchall()
    conn.rollback()
    return [list(r) for r in rows]


def test_a_statement_commits_by_itself_and_is_prepared_once(pool, conn, scratch) -> None:
    insert = f"INSERT INTO {scratch} VALUES (:id, :v) RETURNING id"
    assert pool.run(insert, id=1, v="a") == [[1]]
    # Committed already: another session sees it, and no transaction is left open.
    assert _rows(conn, f"SELECT id, v FROM {scratch}") == [[1, "a"]]
    [[backend]] = pool.run("SELECT pg_backend_pid()")
    assert _rows(conn, f"SELECT state FROM pg_stat_activity WHERE pid = {backend}") == [["idle"]]
    assert pool.run(insert, id=2, v="b") == [[2]]
    [[prepared]] = pool.run(  # pg8000 sends the text with $1, $2 for :id, :v
        "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :s",
        s=f"INSERT INTO {scratch} VALUES ($1, $2)%",
    )
    assert prepared == 1  # the second call reused the first one's prepared statement
    assert pool.run("SELECT pg_backend_pid()") == [[backend]]  # one connection all along


def test_a_request_error_passes_through_and_the_connection_stays_usable(
    pool, conn, scratch
) -> None:
    insert = f"INSERT INTO {scratch} VALUES (:id, :v)"
    pool.run(insert, id=1, v="a")
    [[backend]] = pool.run("SELECT pg_backend_pid()")
    with pytest.raises(pg8000.exceptions.DatabaseError) as caught:
        pool.run(insert, id=1, v="again")
    assert not isinstance(caught.value, db.DatabaseUnavailable)
    assert db.sqlstate(caught.value) == "23505"
    # The failed statement rolled back alone; the same connection goes on (no aborted txn).
    pool.run(insert, id=2, v="b")
    assert pool.run("SELECT pg_backend_pid()") == [[backend]]
    assert _rows(conn, f"SELECT id, v FROM {scratch} ORDER BY id") == [[1, "a"], [2, "b"]]


def test_a_dead_connection_is_unavailable_and_the_next_call_runs_on_a_new_one(pool, conn) -> None:
    [[old]] = pool.run("SELECT pg_backend_pid()")
    conn.cursor().execute("SELECT pg_terminate_backend(%s)", (old,))
    conn.commit()
    time.sleep(0.2)
    with pytest.raises(db.DatabaseUnavailable) as caught:
        pool.run("SELECT pg_backend_pid()")
    assert caught.value.failure is db.Failure.CONNECTION
    [[new]] = pool.run("SELECT pg_backend_pid()")  # prepared anew on the fresh connection
    assert new != old
