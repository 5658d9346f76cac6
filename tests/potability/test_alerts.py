"""Alerts: the pure decisions, the log line against the filter Terraform uses, the webhook
delivery (a real local HTTP receiver), and the quality-control events raised by real data in
the real database - each reaching the webhook exactly once, however often QC re-runs."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from potability import alerts, db
from potability.config import Settings
from potability.features import FEATURE_COLUMNS
from potability.governance import run_record
from potability.inference import rollup as inference_rollup
from potability.quality import job as qc_job

ROOT = Path(__file__).resolve().parents[2]
UTC = UTC
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


# --- the log line matches the filter (a small evaluator of the Logging query language) ----

SEVERITIES = [
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
]
_TERM = re.compile(r'^(?P<field>[\w.]+)(?P<op>>=|=)(?P<value>"[^"]*"|\w+)$')


def cloud_logging_entry(line: str) -> dict:
    """What Cloud Run / Vertex make of a JSON line on stdout: ``severity`` is lifted to the
    entry, the other keys become ``jsonPayload``."""
    payload = json.loads(line)
    return {"severity": payload.pop("severity", "DEFAULT"), "jsonPayload": payload}


def matches(filter_: str, entry: dict) -> bool:
    """Evaluate ``a=b AND severity>=X`` filters (the only form our filters use)."""
    for term in filter_.split(" AND "):
        m = _TERM.match(term.strip())
        assert m, f"unsupported filter term {term!r}"
        value = entry
        for part in m["field"].split("."):
            value = value.get(part) if isinstance(value, dict) else None
        want = m["value"].strip('"')
        if m["op"] == "=":
            if value != want:
                return False
        elif SEVERITIES.index(value) < SEVERITIES.index(want):
            return False
    return True


def test_each_event_line_matches_its_own_filter_and_no_other() -> None:
    for name in alerts.EVENTS:
        stream = io.StringIO()
        alert = alerts.Alert(name, "x", "something happened", "7", {"n": 1})
        alerts.Notifier("", stream=stream).deliver(alert, NOW)  # the line the code writes
        entry = cloud_logging_entry(stream.getvalue())
        assert stream.getvalue().count("\n") == 1
        assert entry["jsonPayload"]["alert"] == name
        assert entry["jsonPayload"]["model_version"] == "7"
        assert entry["severity"] in ("WARNING", "ERROR")
        for other in alerts.EVENTS:
            assert matches(alerts.log_filter(other), entry) == (other == name)


def test_a_request_log_line_matches_no_alert_filter() -> None:
    from functions import request_log

    record = request_log.entry(
        function="predict",
        method="POST",
        url="http://x/",
        status=503,
        latency_s=0.1,
        request_id="r",
        trace=None,
        message="predict: down",
    )
    entry = cloud_logging_entry(json.dumps(record))
    assert not any(matches(alerts.log_filter(e), entry) for e in alerts.EVENTS)


def test_terraform_reads_the_events_the_code_defines() -> None:
    """``terraform/alert_events.json`` is generated from the code (same strings, not copies)."""
    on_disk = json.loads((ROOT / "terraform" / "alert_events.json").read_text())
    assert on_disk == alerts.terraform_events(), (
        "run: python -m potability.alerts terraform/alert_events.json"
    )


# --- pure decisions -------------------------------------------------------------------------


def test_stale_counts_from_the_last_success_or_the_first_run() -> None:
    assert alerts.stale(None, None, NOW, 36, None) is None
    assert alerts.stale(NOW - timedelta(hours=35), None, NOW, 36, "3") is None
    late = alerts.stale(NOW - timedelta(hours=40), NOW - timedelta(days=9), NOW, 36, "3")
    assert late and late.event == alerts.PIPELINE_STALE and late.figures["hours_since"] == 40
    never = alerts.stale(None, NOW - timedelta(hours=37), NOW, 36, None)
    assert never and "none succeeded" in never.figures["since_what"]
    # the same stale state is the same occurrence an hour later
    assert (
        alerts.stale(NOW - timedelta(hours=40), None, NOW + timedelta(hours=1), 36, "3").occurrence
        == late.occurrence
    )


def _metric(version: str, period: str, flagged: bool, precision: float = 0.4) -> SimpleNamespace:
    return SimpleNamespace(
        model_version=version,
        period=period,
        flagged=flagged,
        week_start=None if period == "all" else NOW.date(),
        precision=precision,
        matches=30,
        true_positives=12,
        false_positives=18,
        alarm_statistic=7.25 if flagged else 1.0,
        alarm_calls=40,
        alarm_confirmed=20,
    )


def test_the_sequential_test_raises_one_alert_per_flagged_version_not_per_week() -> None:
    """Issue 31: the week rows only show where the CUSUM stood; the alert is the version's."""
    rows = [
        _metric("3", "2026-W48", True),
        _metric("3", "all", True),
        _metric("2", "2026-W40", True),  # flagged then, recovered since
        _metric("2", "all", False),
    ]
    (found,) = alerts.flagged_precision(rows, 0.6)
    assert found.occurrence == "3/all" and found.model_version == "3"
    assert found.figures["live_precision"] == 0.5 and found.figures["matches"] == 40
    assert found.figures["alarm_statistic"] == 7.25
    assert alerts.public_detail(found.event, found.figures) == (
        "live precision 50.0% on the last 40 lab-checked potable calls, floor 60%"
    )


def test_reconcile_raises_the_new_and_clears_the_gone() -> None:
    a = alerts.Alert(alerts.FEATURE_DRIFT, "ph", "m")
    b = alerts.Alert(alerts.FEATURE_DRIFT, "Sulfate", "m")
    new, cleared = alerts.reconcile(["ph", "Turbidity"], [a, b])
    assert new == [b] and cleared == ["Turbidity"]
    assert alerts.reconcile(["ph", "Sulfate"], [a, b]) == ([], [])


def test_the_error_rate_monitor_raises_once_per_outage_and_clears() -> None:
    clock = [0.0]
    monitor = alerts.ErrorRateMonitor(60, 0.5, 4, clock=lambda: clock[0])
    changes = []
    for status in [200, 503, 503, 503, 503, 503, 503]:
        clock[0] += 1
        changes.append(monitor.observe(status))
    assert [c[0] if c else None for c in changes] == [None] * 3 + ["raise"] + [None] * 3
    assert changes[3][1]["server_errors"] == 3 and changes[3][1]["requests"] == 4
    clock[0] += 120  # the outage leaves the window; healthy answers clear it
    out = [monitor.observe(200) for _ in range(4)]
    assert [c[0] if c else None for c in out] == [None, None, None, "clear"]
    assert monitor.observe(400) is None  # 4xx are the client's fault, not an outage


# --- webhook delivery ---------------------------------------------------------------------


def test_delivery_retries_then_reaches_the_webhook_once(webhook) -> None:
    webhook.fail_next = 2
    notifier = alerts.Notifier(
        webhook.url, "http://127.0.0.1:1/status", attempts=3, backoff=0.01, stream=io.StringIO()
    )
    alert = alerts.Alert(
        alerts.PIPELINE_RUN_FAILED, "run-1", "run-1 failed", "4", {"step": "train"}
    )
    notifier.publish([alert], NOW)
    assert notifier.flush(10)
    (body,) = webhook.events()
    assert body["event"] == "pipeline_run_failed" and body["severity"] == "ERROR"
    assert body["when"] == "2026-11-26T12:00:00Z" and body["figures"] == {"step": "train"}
    assert body["status_url"] == "http://127.0.0.1:1/status" and body["what_to_do"]
    assert notifier.delivered == 1 and notifier.failed == 0


def test_an_unreachable_webhook_never_blocks_the_caller(webhook) -> None:
    from potability.local import services

    url = f"http://127.0.0.1:{services.free_port()}/hook"  # nothing listens
    notifier = alerts.Notifier(url, attempts=2, timeout=1, backoff=0.01, stream=io.StringIO())
    started = time.perf_counter()
    notifier.publish([alerts.Alert(alerts.FEATURE_DRIFT, "ph", "m")], NOW)
    assert time.perf_counter() - started < 0.5  # submit returns at once
    assert notifier.flush(10)  # and the retries are bounded
    assert notifier.failed == 1 and notifier.delivered == 0


# --- quality control on the real database: real data, one webhook call per occurrence ------


def _training_rows(cur, n: int) -> list[tuple]:
    cur.execute(
        f"SELECT {', '.join(FEATURE_COLUMNS)} FROM water.water_potability "
        "WHERE source = 'seed' ORDER BY sample_id LIMIT %s",
        (n,),
    )
    return cur.fetchall()


def _inference(
    cur, request_id: str, sensor: str, when: datetime, predicted: int, features: tuple
) -> None:
    cols = ", ".join(FEATURE_COLUMNS)
    cur.execute(
        f"INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, {cols}, "
        "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
        f"latency_ms) VALUES (%s, 0, %s, {', '.join(['%s'] * len(FEATURE_COLUMNS))}, %s, %s, "
        "'water-potability', 'al1', 'test', %s, 1.0)",
        (request_id, sensor, *features, predicted, 0.9 if predicted else 0.1, when),
    )


def _lab_sample(cur, sample_id: str, sensor: str, when: datetime, potable: int) -> None:
    cur.execute(
        "INSERT INTO water.water_potability (sample_id, ph, potability, sensor_id, sampled_at, "
        "submitted_by, source) VALUES (%s, 7.0, %s, %s, %s, 'lab-tester', 'lab')",
        (sample_id, potable, sensor, when),
    )


def _open(cur, event: str) -> list[str]:
    cur.execute(
        "SELECT occurrence FROM water.alerts WHERE event = %s AND resolved_at IS NULL "
        "ORDER BY occurrence",
        (event,),
    )
    return [r[0] for r in cur.fetchall()]


@pytest.fixture
def own_qc_runs(conn: db.Connection) -> Iterator[None]:
    """Delete the QC runs a test stores (some are dated ahead of now, and the status page
    shows the latest run)."""
    cur = conn.cursor()
    cur.execute("SELECT coalesce(max(id), 0) FROM water.qc_runs")
    before = cur.fetchone()[0]
    yield
    conn.rollback()
    cur.execute("DELETE FROM water.qc_runs WHERE id > %s", (before,))
    conn.commit()


def _run_qc(conn: db.Connection, settings: Settings, now: datetime) -> qc_job.QcResult:
    result = qc_job.run(conn, settings, now)
    assert alerts.notifier(settings).flush(20)
    return result


def _mid_week() -> datetime:
    """Wednesday noon of the current ISO week: readings a few hours before it stay in one week."""
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    return today - timedelta(days=(today.weekday() - 2) % 7)


def test_lab_samples_that_make_a_week_fall_alert_once(
    clean_db, no_alerts, own_qc_runs, settings: Settings, webhook
) -> None:
    conn = clean_db
    cur = conn.cursor()
    cfg = settings.with_(alert_webhook_url=webhook.url, status_url="http://127.0.0.1:9/")
    assert (cfg.qc_precision_floor, cfg.qc_min_matches) == (0.60, 20)  # the defaults
    now = _mid_week()
    rows = _training_rows(cur, 45)
    # 45 potable calls of sensor P over the morning; the lab confirms the first 15 as potable
    for k in range(45):
        _inference(cur, f"al-i{k}", "P", now - timedelta(minutes=5 * k + 5), 1, rows[k])
    for k in range(30, 45):
        _lab_sample(cur, f"al-s{k}", "P", now - timedelta(minutes=5 * k + 5), 1)
    conn.commit()
    first = _run_qc(conn, cfg, now)
    assert not [a for a in first.alerts_raised if a.event == alerts.LIVE_PRECISION_FLAGGED]

    # the lab's next batch: the 30 later calls were unsafe water -> the CUSUM (default floor
    # 0.60 against 0.70 expected) climbs 30 x log(0.4 / 0.3) = 8.6 past its limit 7.0
    # (25 refuted calls would be enough: 7.19; 24 would not: 6.90)
    for k in range(30):
        _lab_sample(cur, f"al-s{k}", "P", now - timedelta(minutes=5 * k + 5), 0)
    conn.commit()
    second = _run_qc(conn, cfg, now + timedelta(minutes=1))
    third = _run_qc(conn, cfg, now + timedelta(minutes=2))  # same state: nothing new

    got = webhook.wait_for(alerts.LIVE_PRECISION_FLAGGED, 1)
    assert len(got) == 1
    body = got[0]
    assert body["occurrence"] == "al1/all"  # the version's sequential test, not a week
    assert body["model_version"] == "al1" and body["figures"]["live_precision"] == 0.0
    assert body["figures"]["matches"] == 30 and body["figures"]["floor"] == 0.6
    assert body["status_url"] == "http://127.0.0.1:9/" and body["severity"] == "ERROR"
    assert [a.event for a in second.alerts_raised] == [alerts.LIVE_PRECISION_FLAGGED]
    assert third.alerts_raised == []
    assert len(_open(cur, alerts.LIVE_PRECISION_FLAGGED)) == 1
    assert webhook.events(alerts.FEATURE_DRIFT) == []  # training-like readings: no drift


def test_drifted_readings_alert_once_and_resolve_when_they_stop(
    clean_db, no_alerts, own_qc_runs, settings: Settings, webhook
) -> None:
    conn = clean_db
    cur = conn.cursor()
    cfg = settings.with_(alert_webhook_url=webhook.url)
    now = datetime.now(UTC)
    ph = FEATURE_COLUMNS.index("ph")
    # 16 days of 150 training-like readings a day before the last two days: the change
    # test's baseline (issue 31: a drift alert is a change against the weeks before)
    baseline = _training_rows(cur, 16 * 150)
    for k, row in enumerate(baseline):
        when = now - timedelta(days=2 + k // 150, hours=12, minutes=k % 150)
        _inference(cur, f"al-b{k}", "B", when, 0, row)
    for k, row in enumerate(_training_rows(cur, 300)):
        drifted = list(row)
        drifted[ph] = 12.5 + (k % 10) * 0.1  # a pH probe gone wrong
        _inference(cur, f"al-d{k}", "D", now - timedelta(minutes=k + 1), 0, tuple(drifted))
    conn.commit()

    first = _run_qc(conn, cfg, now)
    _run_qc(conn, cfg, now + timedelta(minutes=1))
    assert [a.occurrence for a in first.alerts_raised if a.event == alerts.FEATURE_DRIFT] == ["ph"]
    got = webhook.wait_for(alerts.FEATURE_DRIFT, 1)
    assert len(got) == 1 and got[0]["figures"]["feature"] == "ph"
    assert got[0]["figures"]["change"] > 1 and got[0]["severity"] == "WARNING"
    assert _open(cur, alerts.FEATURE_DRIFT) == ["ph"]

    cur.execute("DELETE FROM water.water_inferences WHERE request_id LIKE 'al-d%'")
    # a correction of the log forgets the rollups (and drift cells) of the hours it touched
    inference_rollup.forget(conn, now - timedelta(hours=7), now + timedelta(hours=1))
    conn.commit()
    _run_qc(conn, cfg, now + timedelta(minutes=2))
    assert _open(cur, alerts.FEATURE_DRIFT) == []  # resolved: off the status page
    assert len(webhook.events(alerts.FEATURE_DRIFT)) == 1


def test_a_stale_pipeline_alerts_once_until_a_run_succeeds(
    no_alerts, settings: Settings, webhook
) -> None:
    conn = no_alerts
    cur = conn.cursor()
    cur.execute("SELECT run_id FROM water.pipeline_runs")
    existing = [r[0] for r in cur.fetchall()]
    cur.execute("CREATE TEMP TABLE saved_runs AS SELECT * FROM water.pipeline_runs")
    cur.execute("DELETE FROM water.pipeline_runs")
    try:
        long_ago = datetime.now(UTC) - timedelta(hours=50)
        cur.execute(
            "INSERT INTO water.pipeline_runs (run_id, started_at, finished_at, status, "
            "champion_version) VALUES ('al-old', %s, %s, 'succeeded', '5')",
            (long_ago, long_ago + timedelta(minutes=10)),
        )
        conn.commit()
        cfg = settings.with_(alert_webhook_url=webhook.url, alert_stale_hours=36)
        now = datetime.now(UTC)
        raised = run_record.check_stale(conn, cfg, now)
        alerts.publish(cfg, raised, now)
        assert run_record.check_stale(conn, cfg, now + timedelta(hours=1)) == []
        assert alerts.notifier(cfg).flush(10)
        got = webhook.wait_for(alerts.PIPELINE_STALE, 1)
        assert len(got) == 1 and got[0]["model_version"] == "5"
        assert 49.5 < got[0]["figures"]["hours_since"] < 50.5

        cur.execute("INSERT INTO water.pipeline_runs (run_id, status) VALUES ('al-new', 'running')")
        conn.commit()
        run_record.finish_run(cfg, "al-new")
        assert _open(cur, alerts.PIPELINE_STALE) == []
        assert run_record.check_stale(conn, cfg, datetime.now(UTC)) == []
    finally:
        conn.rollback()
        cur.execute("DELETE FROM water.pipeline_runs")
        cur.execute("INSERT INTO water.pipeline_runs SELECT * FROM saved_runs")
        cur.execute("DROP TABLE saved_runs")
        conn.commit()
        cur.execute("SELECT count(*) FROM water.pipeline_runs")
        assert cur.fetchone()[0] == len(existing)


def test_settings_read_the_alert_knobs() -> None:
    s = Settings.from_env(
        {
            "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/h",
            "ALERT_STALE_HOURS": "12",
            "ALERT_ERROR_RATE": "0.2",
            "ALERT_ERROR_WINDOW_SECONDS": "60",
            "ALERT_ERROR_MIN_REQUESTS": "5",
            "STATUS_URL": "http://s/",
        }
    )
    assert (
        s.alert_webhook_url,
        s.alert_stale_hours,
        s.alert_error_rate,
        s.alert_error_window_seconds,
        s.alert_error_min_requests,
        s.status_url,
    ) == ("http://127.0.0.1:9/h", 12.0, 0.2, 60.0, 5, "http://s/")
    d = Settings.from_env({})
    assert (d.alert_stale_hours, d.alert_webhook_url) == (36.0, "")
