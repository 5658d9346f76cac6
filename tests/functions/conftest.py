"""Fixtures for the functions: the real handlers on the session's real PostgreSQL and model server.

``client`` serves both functions in-process through the same :func:`functions.context.serve`
wrapper that ``functions/main.py`` uses (the functions-framework processes themselves are
exercised by ``test_local.py`` and the fuzz tests), with a :class:`Context` built for the test
database and model server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fn_support import REGULATOR_TOKEN

from functions.auth import token_sha256
from functions.context import Context
from potability import db
from potability.config import Settings


@pytest.fixture(scope="session")
def fn_settings(settings: Settings, model_server_url: str) -> Settings:
    return settings.with_(
        model_server_url=model_server_url,
        endpoint_mode="local",
        samples_token_sha256=(token_sha256(REGULATOR_TOKEN),),
        predict_max_readings=100,
        samples_max_batch=50,
        max_body_bytes=256 * 1024,
    )


@pytest.fixture(scope="session")
def fn_context(fn_settings: Settings) -> Iterator[Context]:
    ctx = Context(fn_settings)
    yield ctx
    ctx.close()


@pytest.fixture
def client(fn_context: Context, clean_db: db.Connection) -> Any:
    from fn_support import make_app

    return make_app(fn_context).test_client()


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {REGULATOR_TOKEN}"}
