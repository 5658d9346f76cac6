"""The browser tests' Chromium: Debian's package (tools/setup-test-tools.sh), never a browser
that Playwright would download."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from potability.local import services

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "functions" / "main.py"


@pytest.fixture(scope="session")
def chromium(require_tool: Callable[..., str]) -> str:
    return require_tool(
        "chromium", "run `bash tools/setup-test-tools.sh` (apt-get install -y chromium)"
    )


@pytest.fixture
def serve_status(stack_home: Path, database_url: str) -> Iterator[Callable[[str], str]]:
    """Start functions-framework serving the ``status`` target of the functions' entry file, as
    the local service ``name``, on the session database; its URL once it answers. No
    in-process cache (``STATUS_REFRESH_SECONDS=0``): rows written before the call show at once.
    Started when a test calls it (after its rows are in: the function caches what it read
    first), stopped after the test."""
    assert ENTRY.exists(), f"{ENTRY} (the functions' entry file) is missing"
    started: list[str] = []

    def start(name: str) -> str:
        port = services.free_port()
        argv = [
            str(Path(sys.executable).parent / "functions-framework"),
            *("--source", str(ENTRY), "--target", "status"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ]
        env = {
            "POTABILITY_ENV": "local",
            "POTABILITY_HOME": str(stack_home),
            "DATABASE_URL": database_url,
            "STATUS_REFRESH_SECONDS": "0",
        }
        started.append(name)
        pid = services.start(stack_home, name, argv, env=env, cwd=ROOT)
        url = f"http://127.0.0.1:{port}/"
        services.wait_http(url + "?format=json", timeout=60, pid=pid)
        return url

    yield start
    for name in started:
        services.stop(stack_home, name)
