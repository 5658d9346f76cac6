"""The status page's 90-day trends (issue 33) on the real database: each from its owner's
tables, bounded by the window (nothing older is read into the answer), the day's last QC run,
the smoke sensor left out. The browser test (tests/browser/test_trends_browser.py) reads the
charts from a stack with five weeks of history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from test_status import _inference

from functions.status import TREND_DAYS, drift_summary, status_data
from potability import db
from potability.config import Settings
from potability.features import FEATURE_NAMES, SMOKE_SENSOR_LIKE
from potability.inference import rollup as inference_rollup
from potability.quality import record as qc_record
from potability.quality.drift import FeatureDrift
from potability.quality.live_precision import LiveMetric

SETTINGS = qc_record.QcSettings(30.0, 0.6, 20)


def _drift(psi: float, status: str) -> list[FeatureDrift]:
    return [FeatureDrift(f, psi, status, 100, 100, 0.0, 0.0) for f in FEATURE_NAMES]


def _week(version: str, start: date, tp: int, fp: int) -> LiveMetric:
    year, week, _ = start.isocalendar()
    return LiveMetric(
        model_version=version,
        period=f"{year}-W{week:02d}",
        week_start=start,
        matches=tp + fp,
        true_positives=tp,
        false_positives=fp,
        false_negatives=0,
        true_negatives=0,
        precision=tp / (tp + fp),
        recall=1.0,
        flagged=False,
        precision_low=0.3,
        precision_high=0.9,
    )


def _store(
    conn: db.Connection, at: datetime, psi: float, status: str, live: list[LiveMetric] | None = None
) -> int:
    return qc_record.store_run(
        conn, SETTINGS, at, at - timedelta(days=7), 10, 5, live or [], _drift(psi, status), "3"
    )


def test_trends_read_the_window_only(clean_db: db.Connection, settings: Settings) -> None:
    now = datetime.now(UTC)
    today = now.date()
    midnight = datetime.combine(today, datetime.min.time(), UTC)
    cur = clean_db.cursor()
    for key, sensor, when, predicted in [
        ("old", "north-1", midnight - timedelta(days=TREND_DAYS + 5), 1),  # before the window
        ("a", "north-1", midnight - timedelta(days=40, hours=-3), 1),
        ("b", "south-2", midnight - timedelta(days=40, hours=-5), 0),
        ("c", "north-1", midnight - timedelta(days=2, hours=-1), 1),
        ("smoke", SMOKE_SENSOR_LIKE.replace("%", "x"), midnight - timedelta(days=2), 1),
    ]:
        _inference(cur, key, sensor, when, predicted)
    clean_db.commit()
    inference_rollup.catch_up(clean_db, now, days=TREND_DAYS + 10)

    weeks_ago = today - timedelta(days=today.weekday() + 14)  # a Monday two weeks back
    _store(clean_db, now - timedelta(days=TREND_DAYS + 3), 0.9, "drift")  # before the window
    _store(clean_db, midnight - timedelta(days=10, hours=-1), 0.3, "drift")
    _store(clean_db, midnight - timedelta(days=10, hours=-5), 0.12, "watch")  # that day's last
    live = [
        _week("3", weeks_ago - timedelta(days=120), 5, 5),  # older than the window
        _week("3", weeks_ago, 8, 2),
        _week("4", weeks_ago + timedelta(days=7), 3, 1),
    ]
    _store(clean_db, now - timedelta(minutes=5), 0.02, "ok", live)
    clean_db.commit()

    trends = status_data(clean_db, now)["trends"]
    assert (trends["days"], trends["first_day"], trends["last_day"]) == (
        90,
        (today - timedelta(days=89)).isoformat(),
        today.isoformat(),
    )
    traffic = {d["day"]: d for d in trends["traffic"]}
    assert len(traffic) == 90 and sum(d["total"] for d in trends["traffic"]) == 3  # no smoke
    forty = traffic[(today - timedelta(days=40)).isoformat()]
    assert (forty["total"], forty["potable"], forty["potable_share"]) == (2, 1, 0.5)
    assert forty["hours_counted"] == 24  # every hour of the day rolled up
    two = traffic[(today - timedelta(days=2)).isoformat()]
    assert (two["total"], two["potable"]) == (1, 1)  # the smoke sensor's reading left out
    assert traffic[today.isoformat()]["hours_counted"] < 24

    assert [(d["day"], d["features"][0]["status"]) for d in trends["drift"]] == [
        ((today - timedelta(days=10)).isoformat(), "watch"),
        (today.isoformat(), "ok"),
    ]
    assert [
        (r["model_version"], r["week_start"], r["potable_calls"], r["interval_95"])
        for r in trends["live_precision"]
    ] == [
        ("3", weeks_ago.isoformat(), 10, [0.3, 0.9]),
        ("4", (weeks_ago + timedelta(days=7)).isoformat(), 4, [0.3, 0.9]),
    ]
    assert trends["precision_floor"] == 0.6


def test_drift_summary_says_since_when_a_measurement_drifts() -> None:
    def day(d: str, status: str, psi: float) -> dict:
        return {"day": d, "features": [{"feature": "Sulfate", "psi": psi, "status": status}]}

    days = [
        day("2026-11-01", "drift", 0.4),  # an earlier episode, ended
        day("2026-11-02", "ok", 0.02),
        day("2026-11-03", "insufficient_data", 0.0),  # not a measurement: skipped
        day("2026-11-04", "drift", 0.3),
        day("2026-11-06", "drift", 0.35),  # a day without a QC run does not break the run
    ]
    by_feature = {s["feature"]: s for s in drift_summary(days)}
    sulfate = by_feature["Sulfate"]
    assert sulfate["drifting_since"] == "2026-11-04"
    assert (sulfate["max_psi"], sulfate["max_psi_day"]) == (0.4, "2026-11-01")
    assert (sulfate["drift_days"], sulfate["watch_days"], sulfate["measured_days"]) == (3, 0, 4)
    assert by_feature["ph"] == {"feature": "ph", "measured_days": 0}
    ended = drift_summary([*days, day("2026-11-07", "watch", 0.2)])
    assert next(s for s in ended if s["feature"] == "Sulfate")["drifting_since"] is None


def test_days_rolled_up_before_019_are_summed_from_the_hourly_rows(
    clean_db: db.Connection,
) -> None:
    """The roll-up keeps each hour's public totals (sql/019); an hour rolled up before them has
    NULLs and is summed from its rollup rows: the same figures either way."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date(), datetime.min.time(), UTC)
    cur = clean_db.cursor()
    for k in range(12):
        when = midnight - timedelta(days=3, hours=-k)
        _inference(cur, f"r{k}", "north-1" if k % 3 else "smoke-deploy", when, k % 2)
    clean_db.commit()
    inference_rollup.catch_up(clean_db, now, days=5)
    first, last = now.date() - timedelta(days=4), now.date()
    with_totals = inference_rollup.daily(clean_db, first, last)
    cur.execute(
        "SELECT sum(public_readings), sum(public_potable) FROM water.inference_rolled_hours "
        "WHERE hour >= %s AND hour < %s",
        (midnight - timedelta(days=3), midnight - timedelta(days=2)),
    )
    assert [int(v) for v in cur.fetchone()] == [8, 4]  # the 4 smoke readings left out
    cur.execute(
        "UPDATE water.inference_rolled_hours SET public_readings = NULL, public_potable = NULL"
    )
    clean_db.commit()
    assert inference_rollup.daily(clean_db, first, last) == with_totals
    day = next(d for d in with_totals if d.day == (midnight - timedelta(days=3)).date())
    assert (day.readings, day.potable, day.hours) == (8, 4, 24)
