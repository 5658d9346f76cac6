"""The browser tests' Chromium: Debian's package (tools/setup-test-tools.sh), never a browser
that Playwright would download."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture(scope="session")
def chromium(require_tool: Callable[..., str]) -> str:
    return require_tool(
        "chromium", "run `bash tools/setup-test-tools.sh` (apt-get install -y chromium)"
    )
