"""The pool's bound: at most ``size`` connections open, a wait, then the retryable 503."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from functions.context import retry_stale_connection
from potability import db
from potability.config import Settings


@pytest.fixture
def pool(settings: Settings) -> Iterator[db.Pool]:
    pool = db.Pool(settings, size=3, wait_seconds=5.0)
    yield pool
    pool.close()


def test_a_burst_shares_at_most_size_connections(pool: db.Pool) -> None:
    """24 threads released at once, each holding its connection a moment: an unbounded pool
    opens one connection per miss (24 backends); this one serves all 24 on three."""
    threads_n = 24
    start = threading.Barrier(threads_n)
    pids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def call() -> None:
        start.wait()
        try:
            rows = pool.run("SELECT pg_backend_pid(), pg_sleep(0.05)")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
            return
        with lock:
            pids.append(rows[0][0])

    threads = [threading.Thread(target=call) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(pids) == threads_n
    assert len(set(pids)) <= pool.size


def test_an_exhausted_pool_waits_then_refuses_retryably_and_recovers(settings: Settings) -> None:
    pool = db.Pool(settings, size=2, wait_seconds=0.3)
    inside = [threading.Event(), threading.Event()]
    release = threading.Event()

    def holder(entered: threading.Event) -> None:
        with pool.transaction():
            entered.set()
            release.wait(10)

    holders = [threading.Thread(target=holder, args=(e,)) for e in inside]
    for t in holders:
        t.start()
    try:
        assert all(e.wait(10) for e in inside)  # both slots taken
        with pytest.raises(db.DatabaseUnavailable, match="pool exhausted") as caught:
            pool.run("SELECT 1")
        assert caught.value.failure is db.Failure.EXHAUSTED
    finally:
        release.set()
        for t in holders:
            t.join(timeout=10)
    assert pool.run("SELECT 1") == [[1]]  # the slots came back
    pool.close()


def test_a_failed_connect_gives_its_slot_back(settings: Settings) -> None:
    """A checkout whose connect fails must not leak its slot, or a few outages would leave
    the pool refusing forever with the database back up."""
    dead = Settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    pool = db.Pool(dead, size=1, wait_seconds=0.2)
    for _ in range(3):
        with pytest.raises(db.DatabaseUnavailable) as caught:
            pool.run("SELECT 1")
        assert caught.value.failure is db.Failure.CONNECTION  # not EXHAUSTED: the slot is free


def test_an_exhausted_pool_is_not_retried_at_once() -> None:
    calls: list[int] = []

    def unit() -> None:
        calls.append(1)
        raise db.DatabaseUnavailable("pool exhausted", failure=db.Failure.EXHAUSTED)

    with pytest.raises(db.DatabaseUnavailable):
        retry_stale_connection(unit)
    assert calls == [1]


def test_a_lost_connection_is_retried_once() -> None:
    calls: list[int] = []

    def unit() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise db.DatabaseUnavailable("connection lost", failure=db.Failure.CONNECTION)
        return "ok"

    assert retry_stale_connection(unit) == "ok"
    assert calls == [1, 1]
