"""The local scheduler raises the stale-pipeline alert between runs, as Terraform's monitoring
does on GCP: every minute while it waits, on a real database (and the real service, started
as ``potability up`` starts it); and ``up`` refuses scheduled parameters the pipeline does
not declare."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines import local_scheduler
from potability import alerts, config, db
from potability.config import Settings
from potability.local import services


def _succeeded_at(settings: Settings, run_id: str, when: datetime) -> None:
    """A succeeded run recorded directly (finish_run would resolve the alert itself)."""
    conn = db.connect(settings)
    try:
        conn.cursor().execute(
            "INSERT INTO water.pipeline_runs (run_id, started_at, finished_at, status, "
            "decision, champion_version) VALUES (%s, %s, %s, 'succeeded', 'first_champion', "
            "'3')",
            (run_id, when - timedelta(minutes=10), when),
        )
        conn.commit()
    finally:
        conn.close()


def _stale_alerts(settings: Settings) -> list[tuple[str | None, bool]]:
    """(model version, still open) of every pipeline_stale alert recorded."""
    conn = db.connect(settings)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT model_version, resolved_at IS NULL FROM water.alerts "
            "WHERE event = %s ORDER BY id",
            (alerts.PIPELINE_STALE,),
        )
        return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def test_waiting_for_the_next_run_checks_for_a_stale_pipeline_every_minute(
    runs_db: Settings, webhook, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = runs_db.with_(alert_stale_hours=36, alert_webhook_url=webhook.url)
    start = datetime.now(UTC)
    _succeeded_at(settings, "st-old", start - timedelta(hours=50))
    clock = [start]
    naps: list[float] = []
    seen: list[list[tuple[str | None, bool]]] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        seen.append(_stale_alerts(settings))
        before = (clock[0] - start).total_seconds()
        clock[0] += timedelta(seconds=seconds)
        if before < 90 <= (clock[0] - start).total_seconds():
            _succeeded_at(settings, "st-new", clock[0])  # a run by hand succeeds at 90 s

    checked = local_scheduler.wait_until(
        settings, start + timedelta(seconds=150), lambda: clock[0], sleep
    )
    assert clock[0] == start + timedelta(seconds=150)  # slept exactly until the run was due
    assert max(naps) <= local_scheduler.MAX_SLEEP
    assert checked == start + timedelta(seconds=120)  # checked at 0, 60 and 120 s
    # raised by the first check, still open (and not raised again) until the check after the
    # success resolved it
    assert seen[0] == [("3", True)] and seen[-1] == [("3", False)]
    assert _stale_alerts(settings) == [("3", False)]
    assert alerts.notifier(settings).flush(10)
    got = webhook.wait_for(alerts.PIPELINE_STALE, 1)
    assert len(got) == 1 and 49.5 < got[0]["figures"]["hours_since"] < 50.5
    assert capsys.readouterr().out.count('"alert": "pipeline_stale"') == 1  # its log line


def test_a_database_outage_skips_the_check_and_keeps_the_schedule(
    dead_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = Settings(database_url=dead_database_url)
    clock = [datetime.now(UTC)]
    due = clock[0] + timedelta(seconds=70)

    def sleep(seconds: float) -> None:
        clock[0] += timedelta(seconds=seconds)

    local_scheduler.wait_until(dead, due, lambda: clock[0], sleep)
    assert clock[0] == due
    out = capsys.readouterr().out
    assert out.count("stale-run check skipped: DatabaseUnavailable") == 2, out


def test_scheduled_parameters_the_pipeline_does_not_declare_are_refused_at_up(
    tmp_path: Path,
) -> None:
    settings = Settings(
        home=tmp_path,
        pipeline_schedule="0 3 * * *",
        pipeline_schedule_params=("grids=quick", "database_url=x"),
    )
    with pytest.raises(ValueError, match=r"\['database_url=x'\].*recall_floor.*database"):
        local_scheduler.start(settings)
    assert services.running_pid(tmp_path, local_scheduler.SERVICE) is None


def test_the_service_raises_the_stale_alert_while_it_waits(
    runs_db: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DATABASE_URL", "ALERT_STALE_HOURS", "ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    _succeeded_at(runs_db, "st-old", datetime.now(UTC) - timedelta(hours=50))
    config.update_env(
        tmp_path,
        POTABILITY_ENV="local",
        POTABILITY_HOME=str(tmp_path),
        DATABASE_URL=runs_db.database_url,
        ALERT_STALE_HOURS="36",
    )
    settings = config.load_settings(tmp_path).with_(
        pipeline_schedule="0 3 1 1 *", pipeline_schedule_time_zone="Etc/UTC"
    )  # far away
    try:
        local_scheduler.start(settings)
        log = services.log_file(tmp_path, local_scheduler.SERVICE)
        deadline = time.monotonic() + 60
        while '"alert": "pipeline_stale"' not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
    finally:
        services.stop(tmp_path, local_scheduler.SERVICE)
    line = next(json.loads(x) for x in log.read_text().splitlines() if "pipeline_stale" in x)
    assert line["model_version"] == "3" and line["severity"] == "ERROR"
    assert _stale_alerts(runs_db) == [("3", True)]
