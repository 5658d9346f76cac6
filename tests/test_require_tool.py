"""``require_tool`` (tests/conftest.py): a test whose tool is missing is skipped on a developer's
machine, with the command that installs it, and fails under CI, which must not pass by
skipping."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

Require = Callable[..., str]


def test_a_missing_tool_is_skipped_locally(
    require_tool: Require, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(
        pytest.skip.Exception, match="no-such-tool-7f3 is not installed: apt-get install it"
    ):
        require_tool("no-such-tool-7f3", "apt-get install it")


@pytest.mark.parametrize("ci", ["true", "True", "1"])
def test_a_missing_tool_fails_under_ci(
    require_tool: Require, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"no-such-tool-7f3 is not installed.*CI=true"):
        require_tool("no-such-tool-7f3", "apt-get install it")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):  # an absent path, the same
        require_tool("its venv", "run the setup script", path=tmp_path / "bin" / "tool")


def test_a_tool_is_found_on_path_or_at_its_path(
    require_tool: Require, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CI", "true")
    exe = tmp_path / "bin" / "my-tool"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    assert require_tool("my-tool", "-", path=exe) == str(exe)
    monkeypatch.setenv("PATH", str(exe.parent))
    assert require_tool("my-tool", "-") == str(exe)
