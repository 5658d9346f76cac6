"""The scheduled jobs' failures are visible (issue 29): ``maintenance_failed`` and ``qc_failed``
raised through the alert mechanism (``water.alerts``, the log line, the webhook) with the step
and the error class, once per failing streak, resolved by the next success; ``water.job_status``
says when each job last succeeded; a reading a job cannot process is quarantined - kept,
counted, named in the alert - and the rest is processed. On a migrated database of its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from potability import alerts, db, jobs
from potability.config import Settings
from potability.inference import log as inference_log
from potability.inference import rollup as inference_rollup
from potability.quality import job as qc_job


@pytest.fixture
def job_conn(runs_db: Settings) -> Iterator[db.Connection]:
    conn = db.connect(runs_db)
    yield conn
    conn.rollback()
    conn.close()


def _rows(conn: db.Connection, sql: str, *args: Any) -> list[list[Any]]:
    cur = conn.cursor()
    cur.execute(sql, args)
    rows = [list(r) for r in cur.fetchall()]
    conn.commit()
    return rows


def _status(conn: db.Connection, job: str) -> jobs.JobStatus:
    [found] = [s for s in jobs.status(conn) if s.job == job]
    conn.commit()
    return found


def test_a_failing_maintenance_raises_its_alert_once_and_a_success_resolves_it(
    runs_db: Settings, job_conn: db.Connection, webhook: Any
) -> None:
    good = runs_db.with_(alert_webhook_url=webhook.url)
    bad = good.with_(inference_retention_days=3)  # below the minimum: the retention step fails
    for _ in range(2):
        with pytest.raises(ValueError, match="INFERENCE_RETENTION_DAYS=3"):
            inference_log.run_maintenance(bad)
    [hook] = webhook.wait_for(alerts.MAINTENANCE_FAILED)
    assert hook["figures"]["step"] == "retention"
    assert hook["figures"]["error_class"] == "ValueError"
    open_rows = _rows(
        job_conn,
        "SELECT occurrence, figures->>'step', figures->>'error_class' FROM water.alerts "
        "WHERE event = %s AND resolved_at IS NULL",
        alerts.MAINTENANCE_FAILED,
    )
    assert open_rows == [["maintenance", "retention", "ValueError"]]  # once, not per run
    failing = _status(job_conn, jobs.MAINTENANCE)
    assert failing.failing and failing.failed_step == "retention"
    assert failing.error_class == "ValueError" and failing.failures_in_a_row == 2
    assert failing.last_succeeded_at is None
    [public] = [a for a in alerts.open_alerts(job_conn) if a["event"] == alerts.MAINTENANCE_FAILED]
    assert public["detail"] == "maintenance failed in retention (ValueError)"

    inference_log.run_maintenance(good)
    ok = _status(job_conn, jobs.MAINTENANCE)
    assert not ok.failing and ok.failures_in_a_row == 0 and ok.last_succeeded_at is not None
    assert not [a for a in alerts.open_alerts(job_conn) if a["event"] == alerts.MAINTENANCE_FAILED]


def test_a_failing_qc_raises_qc_failed_with_its_step(
    runs_db: Settings, job_conn: db.Connection, webhook: Any
) -> None:
    settings = runs_db.with_(alert_webhook_url=webhook.url, qc_precision_floor=1.5)
    conn = db.connect(settings)
    try:
        with pytest.raises(ValueError, match="need 0 < precision floor < expected precision < 1"):
            qc_job.run(conn, settings, datetime.now(UTC))
    finally:
        conn.close()
    [hook] = webhook.wait_for(alerts.QC_FAILED)
    assert hook["figures"]["step"] == "compute" and hook["figures"]["error_class"] == "ValueError"
    assert _status(job_conn, jobs.QC).failing
    assert _rows(job_conn, "SELECT count(*) FROM water.qc_runs") == [[0]]


# The sql/015 cell: PostgreSQL raises 22003 where the arithmetic underflows (the bug of issue
# 29), put back to stand for any reading a job cannot process.
_OLD_DRIFT_CELL = """
CREATE OR REPLACE FUNCTION water.drift_cell(x double precision, lo double precision,
    hi double precision) RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN x IS NULL THEN -1
            ELSE least(greatest(floor((x - lo) * 2000 / (hi - lo)), 0), 1999)::smallint END
"""


def test_a_reading_the_job_cannot_process_is_quarantined_and_named(
    runs_db: Settings, job_conn: db.Connection, webhook: Any
) -> None:
    cur = job_conn.cursor()
    cur.execute("SET ROLE water_owner")
    cur.execute(_OLD_DRIFT_CELL)
    cur.execute("RESET ROLE")
    job_conn.commit()
    now = datetime.now(UTC)
    hour = inference_rollup.floor_hour(now) - 3 * inference_rollup.HOUR
    for k, solids in enumerate([100.0, 5e-324, 250.0, 300.0]):
        cur.execute(
            "INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, solids, "
            "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
            "latency_ms) VALUES (%s, 0, %s, %s, 1, 0.5, 'm', '7', 'e', %s, 1)",
            (f"q-{k}", f"sensor-{k}", solids, hour + timedelta(minutes=k)),
        )
    job_conn.commit()
    [[bad_id]] = _rows(job_conn, "SELECT id FROM water.water_inferences WHERE request_id = 'q-1'")

    settings = runs_db.with_(alert_webhook_url=webhook.url)
    report = inference_log.run_maintenance(settings, now=now)  # succeeds despite the reading
    assert report.hours_rolled_up > 0
    assert _rows(job_conn, "SELECT id, sensor_id, job, step FROM water.inference_quarantine") == [
        [bad_id, "sensor-1", "maintenance", "drift_cells"]
    ]
    # the other readings' cells are there; the quarantined one is kept in the log
    assert _rows(
        job_conn,
        "SELECT sum(readings)::int FROM water.inference_hourly_cells WHERE hour = %s "
        "AND feature = 2",
        hour,
    ) == [[3]]
    assert _rows(job_conn, "SELECT count(*) FROM water.water_inferences") == [[4]]
    [hook] = webhook.wait_for(alerts.MAINTENANCE_FAILED)
    assert hook["occurrence"] == "maintenance/quarantine"
    assert hook["figures"]["quarantined"] == 1
    assert hook["figures"]["quarantined_readings"][0]["id"] == bad_id
    assert _status(job_conn, jobs.MAINTENANCE).quarantined == 1
    # qc's raw part skips it too: qc runs and stores a run
    conn = db.connect(settings)
    try:
        result = qc_job.run(conn, settings, now)
    finally:
        conn.close()
    assert result.run_id > 0 and not _status(job_conn, jobs.QC).failing
