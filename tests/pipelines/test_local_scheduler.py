"""The local daily schedule: cron arithmetic, and the real service firing a real pipeline run
(quick grid) on a short schedule, with the run's progress lines, outcome and log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipelines import local_scheduler
from pipelines.local_scheduler import Schedule
from potability import config, db
from potability.config import Settings
from potability.local import services

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("export", "train", "evaluate", "promote", "deploy", "quality control")


def test_next_firing_is_read_in_the_schedules_time_zone() -> None:
    daily = Schedule("0 3 * * *", "Europe/Paris")
    after = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    first = daily.next_after(after)
    assert first == datetime(2026, 3, 29, 3, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert first.utcoffset() == timedelta(hours=2)  # the night clocks go forward
    assert daily.next_after(first) == datetime(2026, 3, 30, 3, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert Schedule("0 3 * * *", "Etc/UTC").next_after(after) == datetime(
        2026, 3, 29, 3, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("every day", "Etc/UTC", "is not a cron expression"),
        ("0 3 * * *", "Mars/Olympus", "is not an IANA time zone"),
    ],
)
def test_a_bad_schedule_is_refused_with_its_setting_named(
    expression: str, zone: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule(expression, zone)


def test_an_empty_schedule_starts_nothing(tmp_path: Path) -> None:
    line = local_scheduler.start(Settings(home=tmp_path, pipeline_schedule=""))
    assert line.startswith("off")
    assert services.running_pid(tmp_path, local_scheduler.SERVICE) is None


def _status(home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PIPELINE_SCHEDULE")}
    return subprocess.run(
        [sys.executable, "-m", "potability.cli", "status"],
        cwd=ROOT,
        env={**env, "POTABILITY_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


@pytest.fixture
def scheduled_home(tmp_path: Path, database_url: str, mlflow_uri: str) -> Iterator[Path]:
    config.update_env(
        tmp_path,
        POTABILITY_ENV="local",
        POTABILITY_HOME=str(tmp_path),
        DATABASE_URL=database_url,
        MLFLOW_TRACKING_URI=mlflow_uri,
    )
    yield tmp_path
    for service in (local_scheduler.SERVICE, "model-server"):
        services.stop(tmp_path, service)


@pytest.mark.e2e
def test_the_service_fires_a_real_run_at_its_time(scheduled_home: Path, database_url: str) -> None:
    home = scheduled_home
    zone = ZoneInfo("Europe/Paris")
    at = (datetime.now(zone) + timedelta(seconds=20)).replace(microsecond=0)
    expression = f"{at.minute} {at.hour} * * * {at.second}"  # daily, to the second: fires once
    model = f"water-potability-sched-{uuid.uuid4().hex[:6]}"
    settings = config.load_settings(home).with_(
        pipeline_schedule=expression,
        pipeline_schedule_time_zone="Europe/Paris",
        pipeline_schedule_params=("grids=quick", "cv_folds=2", f"model_name={model}"),
    )
    line = local_scheduler.start(settings)
    assert line == f"{expression} (Europe/Paris), next run {at.isoformat()}"
    assert f"{'next run':24} {at.isoformat()}" in _status(home)
    assert local_scheduler.start(settings) == line  # `up` again keeps the running service

    log = services.log_file(home, local_scheduler.SERVICE)
    deadline = time.monotonic() + 900
    while "\n  export " not in log.read_text():  # the scheduled run holds the lock by now
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(1)
    # never two at once: a run by hand while the scheduled one runs is refused
    by_hand = subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "--local"],
        cwd=ROOT,
        env={**os.environ, "POTABILITY_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_hand.returncode == 3, by_hand.stdout + by_hand.stderr
    assert "another local pipeline run is in progress" in by_hand.stderr
    while "last_exit" not in local_scheduler.read_state(home):
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(2)

    state = local_scheduler.read_state(home)
    assert state["last_maintenance_outcome"] == "succeeded"  # before the run: the log's upkeep
    assert "inference-log maintenance: partitions created" in log.read_text()
    text = log.read_text()
    assert state["last_exit"] == 0, text
    run_id = re.search(r"^run (\S+): succeeded", text, re.M).group(1)
    output = text[text.index("scheduled run starting") :].splitlines()[1:-1]
    # the run's output: a header, one line per step in order, a short summary
    steps = [re.match(r"  (\S+(?: control)?) +(\d+\.\d) s  (.*)", line) for line in output[1:7]]
    assert [m.group(1) for m in steps if m] == list(STEPS), output
    results = {m.group(1): m.group(3) for m in steps}
    assert re.fullmatch(r"\d+ rows exported", results["export"])
    assert re.fullmatch(
        r"\d+ families on \d+ rows, best CV precision \d+\.\d% \(\w+\)", results["train"]
    )
    assert results["promote"] == "first champion, champion v1"
    assert results["deploy"].startswith(f"started {model} v1 at http://127.0.0.1:")
    assert len(output) <= 20, output  # the run's share of make run's 80 lines (no functions)
    assert re.search(rf"^champion     {model} v1 \(\w+\): held-out precision \d+\.\d%", text, re.M)
    link = re.search(r"^MLflow run   (\S+)", text, re.M).group(1)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/#/experiments/\d+/runs/[0-9a-f]{32}", link)
    run_log = home / "logs" / "pipeline-runs" / f"{run_id}.log"
    assert f"full log     {run_log}" in text
    assert "Executing task" in run_log.read_text()  # kfp's whole output went there
    assert "Executing task" not in text

    conn = db.connect(Settings(database_url=database_url))
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT status, model_name FROM water.pipeline_runs WHERE run_id = %s", (run_id,)
        )
        assert tuple(cur.fetchone()) == ("succeeded", model)
        status = _status(home)
        assert f"{run_id} succeeded" in status and str(run_log) in status
        assert re.search(r"next run +\S+", status)  # the next day's firing
        cur.execute("DELETE FROM water.pipeline_runs WHERE run_id = %s", (run_id,))
        conn.commit()
    finally:
        conn.close()
