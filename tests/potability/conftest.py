"""Fixtures of the potability tests beyond the shared ones (tests/conftest.py)."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from potability import db, migrations
from potability.config import Settings


@pytest.fixture
def runs_db(database_url: str) -> Iterator[Settings]:
    """Settings of a database of its own on the session's server, migrated and without any
    pipeline run or alert: for the questions asked of the whole ``water.pipeline_runs`` table
    (the latest run, the current champion, staleness). Dropped afterwards."""
    name = f"runs_{uuid.uuid4().hex[:10]}"
    admin = db.connect(Settings(database_url=database_url))
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        url = db.with_database(database_url, name)
        conn = db.connect(Settings(database_url=url))
        try:
            migrations.migrate(conn)
        finally:
            conn.close()
        yield Settings(env="local", database_url=url)
    finally:
        admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()
