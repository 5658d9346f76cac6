"""The status page degrades instead of failing (issue 29): a refresh that cannot finish while
the database is up serves the last good data marked stale with its time; hours a backfill left
un-rolled are named as pending instead of being counted from raw rows inside the statement
timeout, and the page is exact again once they are rolled up; the scheduled jobs' last success
and failure are shown. On the real database, through the real handler."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from test_status import _hold_rollups, call, insert_scenario

from functions import status as status_module
from functions.context import Context
from potability import db, jobs
from potability.config import Settings
from potability.inference import rollup as inference_rollup


@pytest.fixture
def quick(settings: Settings) -> Iterator[Context]:
    context = Context(
        settings.with_(db_pool_size=3, status_refresh_seconds=0, status_statement_timeout_ms=400)
    )
    yield context
    context.close()


def test_a_refresh_that_cannot_finish_serves_the_last_data_marked_stale(
    quick: Context, clean_db: db.Connection, settings: Settings
) -> None:
    insert_scenario(clean_db, settings, datetime.now(UTC))
    first = call(quick, "/?format=json")
    assert first.status_code == 200 and first.get_json()["stale"] is False
    blocker = db.connect(settings)
    try:
        _hold_rollups(blocker)  # every statement of the refresh now waits, then times out
        for path in ("/?format=json", "/"):
            response = call(quick, path)
            assert response.status_code == 200  # the database is up: no 503
        body = call(quick, "/?format=json").get_json()
        assert body["stale"] is True and body["stale_since"] == first.get_json()["generated_at"]
        assert body["inferences"] == first.get_json()["inferences"]
        assert 'data-testid="stale"' in call(quick, "/").get_data(as_text=True)
        assert status_module.source(quick).stale_answers >= 3
    finally:
        blocker.rollback()
        blocker.close()
    assert call(quick, "/?format=json").get_json()["stale"] is False


def _reading(cur: db.Cursor, key: str, when: datetime) -> None:
    cur.execute(
        "INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, ph, "
        "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
        "latency_ms) VALUES (%s, 0, 'backfill-1', 7.0, 1, 0.5, 'm', '3', 'e', %s, 1)",
        (f"backfill-{key}", when),
    )


def test_a_backfill_leaves_hours_pending_and_the_page_exact_after_the_catch_up(
    quick: Context, clean_db: db.Connection, settings: Settings
) -> None:
    now = datetime.now(UTC)
    current = inference_rollup.floor_hour(now)
    backfilled = [current - k * inference_rollup.HOUR for k in range(10, 18)]  # 8 hours
    cur = clean_db.cursor()
    for k, hour in enumerate(backfilled):
        _reading(cur, f"old-{k}", hour + timedelta(minutes=7))
    _reading(cur, "now", now - timedelta(seconds=5))
    clean_db.commit()
    blocker = db.connect(settings)
    try:
        # a catch-up holds the rollup lock: the refresh cannot roll anything up
        blocker.cursor().execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('water.inference_hourly', 0))"
        )
        response = call(quick, "/?format=json")
        assert response.status_code == 200
        body = response.get_json()
        assert body["inferences"]["exact"] is False
        assert body["inferences"]["pending_hours"] == [
            h.isoformat().replace("+00:00", "Z") for h in sorted(backfilled)
        ]
        assert body["inferences"]["last_7d"]["total"] == 1  # the pending hours are not counted
        page = call(quick, "/").get_data(as_text=True)
        assert 'data-testid="pending-hours">Readings of 8 hour(s)' in page
    finally:
        blocker.rollback()
        blocker.close()
    inference_rollup.catch_up(clean_db, now)  # what the hourly maintenance does
    body = call(quick, "/?format=json").get_json()
    assert body["inferences"]["exact"] is True and body["inferences"]["pending_hours"] == []
    assert body["inferences"]["last_7d"]["total"] == 9


def _fail_in_drift(settings: Settings) -> None:
    with jobs.recorded(settings, jobs.QC) as run, run.step("drift"):
        raise RuntimeError("a failure")


def test_the_page_shows_when_each_job_last_succeeded(
    quick: Context, clean_db: db.Connection, settings: Settings
) -> None:
    cur = clean_db.cursor()
    cur.execute("DELETE FROM water.job_status")
    clean_db.commit()
    try:
        with jobs.recorded(settings, jobs.MAINTENANCE):
            pass
        with pytest.raises(RuntimeError):
            _fail_in_drift(settings)
        body = call(quick, "/?format=json").get_json()
        by_job = {j["job"]: j for j in body["jobs"]}
        assert by_job["maintenance"]["failing"] is False
        assert by_job["maintenance"]["last_succeeded_at"] is not None
        assert by_job["qc"]["failing"] is True and by_job["qc"]["last_succeeded_at"] is None
        assert (by_job["qc"]["failed_step"], by_job["qc"]["error_class"]) == (
            "drift",
            "RuntimeError",
        )
        assert "a failure" not in call(quick, "/?format=json").get_data(as_text=True)
        page = call(quick, "/").get_data(as_text=True)
        assert 'data-testid="job-failing">failing in drift (RuntimeError)<' in page
    finally:
        clean_db.rollback()
        cur = clean_db.cursor()
        cur.execute("DELETE FROM water.job_status")
        cur.execute("DELETE FROM water.alerts WHERE event IN ('maintenance_failed', 'qc_failed')")
        clean_db.commit()
