"""The local stack's command line, as a user runs it: `up` twice is harmless, `down` stops by
pid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from potability.local import services
from potability.local import stack as local_stack


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["POTABILITY_HOME"] = str(home)
    env["PIPELINE_SCHEDULE"] = ""  # no daily run in the session's stack (test_local_scheduler)
    return subprocess.run(
        [sys.executable, "-m", "potability.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_up_again_reuses_the_running_stack(stack_home, database_url, mlflow_uri, clean_db):
    # clean_db: lab samples left by other tests would change the row count.
    out = _cli(stack_home, "up").stdout
    assert "water.water_potability: 3276 rows (0 seeded now)" in out
    assert "migrations applied now: none (up to date)" in out
    assert f"MLflow       {mlflow_uri}" in out
    assert database_url in out
    assert "Schedule     off (PIPELINE_SCHEDULE is empty)" in out
    assert len(out.splitlines()) <= 8  # its share of make run's 80-line budget
    status = _cli(stack_home, "status").stdout
    assert "postgresql     running" in status and "mlflow         running" in status
    assert "next run                 none (the scheduler is not running)" in status
    assert "last run                 " in status


@pytest.mark.integration
def test_down_stops_what_up_started(tmp_path):
    home = tmp_path / "stack"
    url = local_stack.start_database(home)
    local_stack.prepare_database(url)
    sleeper = services.start(
        home, "sleeper", [sys.executable, "-c", "import time; time.sleep(600)"]
    )
    pg = local_stack.postgres_pid(home)
    assert pg and services.is_alive(sleeper)
    out = _cli(home, "down").stdout
    assert "sleeper" in out and "postgresql" in out
    assert not services.is_alive(sleeper) and not services.is_alive(pg)
    assert "nothing was running" in _cli(home, "down").stdout
    # and it comes back with the data it had
    url = local_stack.start_database(home)
    assert local_stack.prepare_database(url)[1:] == (0, 3276)
    local_stack.down(home)
