"""Fault injection on real processes: functions-framework started exactly as Cloud Run starts
a function, our model server, PostgreSQL servers of the tests' own (so stopping one never
disturbs the session's). Loopback only; every test bounds its own time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faults_support import FunctionProcess, start_function

from potability.local import stack as local_stack


@pytest.fixture
def function_factory(tmp_path: Path) -> Iterator[Callable[..., FunctionProcess]]:
    started: list[FunctionProcess] = []

    def factory(target: str, env: dict[str, str], threads: int = 4) -> FunctionProcess:
        proc = start_function(tmp_path, target, env, threads)
        started.append(proc)
        return proc

    yield factory
    for proc in started:
        proc.stop()


@pytest.fixture
def private_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A migrated PostgreSQL of the test's own: (its home, its URL). Stopped afterwards."""
    home = tmp_path_factory.mktemp("pg-fault")
    url = local_stack.start_database(home)
    local_stack.prepare_database(url)
    try:
        yield home, url
    finally:
        local_stack.stop_database(home)
