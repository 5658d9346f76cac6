"""Fake ``gcloud``/``terraform`` (and friends) first on PATH, for the tests of the deploy-side
commands: each fake is one Python script that logs its argv as a JSON line and answers from
``FAKE_OUTPUTS``; the tests then assert the exact commands sent."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest


def install(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    script: str,
    outputs: dict[str, Any],
    names: Iterable[str] = ("gcloud", "terraform"),
) -> Path:
    """Put ``script`` on PATH under each of ``names``; the log its calls go to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in names:
        exe = bin_dir / name
        exe.write_text(script)
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("FAKE_OUTPUTS", str(tmp_path / "outputs.json"))
    return tmp_path / "calls.log"


def calls(log: Path) -> list[list[str]]:
    """The fakes' calls in order, each ``[name, *argv]``."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
