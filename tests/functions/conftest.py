"""Fixtures for the functions: the real handlers on the session's real PostgreSQL and model server.

``client`` serves both functions in-process through the same :func:`functions.serving.serve`
wrapper that ``functions/main.py`` uses (the functions-framework processes themselves are
exercised by ``test_local.py`` and the fuzz tests), with a :class:`Context` built for the test
database and model server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from fn_support import REGULATOR_TOKEN

from functions.auth import token_sha256
from functions.serving import Context
from potability import config, db, local_stack, services
from potability.config import Settings


@pytest.fixture(scope="session")
def fn_settings(settings: Settings, model_server_url: str) -> Settings:
    return settings.with_(model_server_url=model_server_url, endpoint_mode="local",
                          samples_token_sha256=(token_sha256(REGULATOR_TOKEN),),
                          predict_max_readings=100, samples_max_batch=50,
                          max_body_bytes=256 * 1024)


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


@pytest.fixture
def dead_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    return services.free_port()



@pytest.fixture(scope="session")
def local_functions(tmp_path_factory: pytest.TempPathFactory, database_url: str,
                    model_server_url: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """The three functions started exactly as ``potability functions`` starts them (real
    functions-framework processes), in their own stack home pointing at the session's
    database and model server."""
    from potability import local_functions as local

    home = tmp_path_factory.mktemp("fnstack")
    config.update_env(home, POTABILITY_ENV="local", DATABASE_URL=database_url,
                           MODEL_SERVER_URL=model_server_url)
    try:
        env = local.start(home)
        yield home, env
    finally:
        local_stack.down(home)
