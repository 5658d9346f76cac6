"""The one home of the quality-control tables (``water.qc_runs``, ``water.qc_live_metrics``,
``water.qc_drift``, sql/004_quality_control.sql), like :mod:`potability.governance.run_record` is of
``water.pipeline_runs``: the one writer (:func:`store_run`, called by :mod:`potability.quality.job`)
and typed reads (:func:`latest_run` for the status page). Also the lab-sample counts the status
page shows (:func:`lab_sample_counts`). Nothing else writes SQL on these tables; the status
function maps the records to JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from potability.db import Connection
from potability.features import FEATURE_NAMES, SMOKE_SENSOR_LIKE
from potability.quality.drift import FeatureDrift
from potability.quality.live_precision import FreshPrecision, LiveMetric


@dataclass(frozen=True)
class QcSettings:
    """The settings a run was computed with (stored with it: the page states them)."""

    match_window_minutes: float
    precision_floor: float
    min_matches: int


@dataclass(frozen=True)
class QcRun:
    """One stored quality-control run with its result rows: ``live`` ordered by model version,
    weeks first then ``all``; ``drift`` in the feature schema's order."""

    run_id: int
    computed_at: datetime
    settings: QcSettings
    lab_samples: int
    matched_samples: int
    champion_version: str | None
    drift_window_start: datetime
    drift_window_end: datetime
    drift_reference_rows: int
    drift_recent_rows: int
    live: list[LiveMetric]
    drift: list[FeatureDrift]
    fresh: FreshPrecision | None = None
    """The champion's precision on lab samples no promotion test used (sql/017); None before
    017 or without a champion."""


@dataclass(frozen=True)
class LabSampleCounts:
    """Certified lab samples (``source = 'lab'``) received up to ``now``."""

    total: int
    last_24h: int
    last_7d: int
    potable_7d: int
    sensors_7d: int
    last_received_at: datetime | None


def store_run(
    conn: Connection,
    settings: QcSettings,
    computed_at: datetime,
    drift_window_start: datetime,
    lab_samples: int,
    matched_samples: int,
    metrics: Sequence[LiveMetric],
    drifts: Sequence[FeatureDrift],
    champion_version: str | None,
    fresh: FreshPrecision | None = None,
) -> int:
    """Insert one run and its rows in the caller's transaction; its id."""
    cur = conn.cursor()
    reference_rows = drifts[0].reference_rows if drifts else 0
    recent_rows = drifts[0].recent_rows if drifts else 0
    cur.execute(
        "INSERT INTO water.qc_runs (computed_at, match_window_minutes, precision_floor, "
        "min_matches, lab_samples, matched_samples, champion_version, drift_window_start, "
        "drift_window_end, drift_reference_rows, drift_recent_rows, fresh_model_version, "
        "fresh_since, fresh_potable_calls, fresh_confirmed, fresh_precision_low, "
        "fresh_precision_high) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "RETURNING id",
        (
            computed_at,
            settings.match_window_minutes,
            settings.precision_floor,
            settings.min_matches,
            lab_samples,
            matched_samples,
            champion_version,
            drift_window_start,
            computed_at,
            reference_rows,
            recent_rows,
            *(
                (
                    fresh.model_version,
                    fresh.since,
                    fresh.potable_calls,
                    fresh.confirmed,
                    fresh.precision_low,
                    fresh.precision_high,
                )
                if fresh
                else (None,) * 6
            ),
        ),
    )
    run_id = int(cur.fetchone()[0])
    for m in metrics:
        cur.execute(
            "INSERT INTO water.qc_live_metrics (run_id, model_version, period, week_start, "
            "matches, true_positives, false_positives, false_negatives, true_negatives, "
            "live_precision, live_recall, flagged, precision_low, precision_high) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                run_id,
                m.model_version,
                m.period,
                m.week_start,
                m.matches,
                m.true_positives,
                m.false_positives,
                m.false_negatives,
                m.true_negatives,
                m.precision,
                m.recall,
                m.flagged,
                m.precision_low,
                m.precision_high,
            ),
        )
    for d in drifts:
        cur.execute(
            "INSERT INTO water.qc_drift (run_id, feature, psi, status, reference_rows, "
            "recent_rows, reference_null_share, recent_null_share) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                run_id,
                d.feature,
                d.psi,
                d.status,
                d.reference_rows,
                d.recent_rows,
                d.reference_null_share,
                d.recent_null_share,
            ),
        )
    return run_id


def latest_run(conn: Connection) -> QcRun | None:
    """The newest stored run (by ``computed_at``, then id), or ``None`` before the first."""
    cur = conn.cursor()
    cur.execute(
        "SELECT id, computed_at, match_window_minutes, precision_floor, min_matches, "
        "lab_samples, matched_samples, champion_version, drift_window_start, drift_window_end, "
        "drift_reference_rows, drift_recent_rows, fresh_model_version, fresh_since, "
        "fresh_potable_calls, fresh_confirmed, fresh_precision_low, fresh_precision_high "
        "FROM water.qc_runs ORDER BY computed_at DESC, id DESC LIMIT 1"
    )
    row = cur.fetchone()
    if row is None:
        return None
    (
        run_id,
        computed_at,
        window,
        floor,
        min_matches,
        lab,
        matched,
        champion,
        start,
        end,
        reference_rows,
        recent_rows,
        f_version,
        f_since,
        f_calls,
        f_confirmed,
        f_low,
        f_high,
    ) = row
    fresh = (
        None
        if f_version is None
        else FreshPrecision(
            f_version, f_since, f_calls, f_confirmed, f_low, f_high, f_calls >= min_matches
        )
    )
    cur.execute(
        "SELECT model_version, period, week_start, matches, true_positives, false_positives, "
        "false_negatives, true_negatives, live_precision, live_recall, flagged, precision_low, "
        "precision_high FROM water.qc_live_metrics WHERE run_id = %s "
        "ORDER BY model_version, (period = 'all'), week_start",
        (run_id,),
    )
    live = [
        LiveMetric(
            model_version=v,
            period=p,
            week_start=_date(w),
            matches=n,
            true_positives=tp,
            false_positives=fp,
            false_negatives=fn,
            true_negatives=tn,
            precision=prec,
            recall=rec,
            flagged=flag,
            precision_low=low,
            precision_high=high,
        )
        for v, p, w, n, tp, fp, fn, tn, prec, rec, flag, low, high in cur.fetchall()
    ]
    cur.execute(
        "SELECT feature, psi, status, reference_rows, recent_rows, reference_null_share, "
        "recent_null_share FROM water.qc_drift WHERE run_id = %s",
        (run_id,),
    )
    order = {name: i for i, name in enumerate(FEATURE_NAMES)}
    drift = sorted(
        (FeatureDrift(*r) for r in cur.fetchall()), key=lambda d: order.get(d.feature, len(order))
    )
    return QcRun(
        run_id,
        computed_at,
        QcSettings(window, floor, min_matches),
        lab,
        matched,
        champion,
        start,
        end,
        reference_rows,
        recent_rows,
        live,
        drift,
        fresh,
    )


@dataclass(frozen=True)
class DayDrift:
    """The drift measured by the last quality-control run of one UTC day."""

    day: date
    computed_at: datetime
    champion_version: str | None
    features: list[FeatureDrift]
    """In the feature schema's order."""


def drift_by_day(conn: Connection, start: datetime, end: datetime) -> list[DayDrift]:
    """Per UTC day of ``[start, end]`` with a run, the drift of the day's last run (oldest day
    first): the status page's drift trend. Reads the runs of the window by
    ``qc_runs_computed_at_idx`` and their nine ``qc_drift`` rows each - a cost that follows
    the window (90 daily runs, or ~2,000 if qc ran hourly), never the table's history."""
    cur = conn.cursor()
    cur.execute(
        "SELECT r.day, r.computed_at, r.champion_version, d.feature, d.psi, d.status, "
        "d.reference_rows, d.recent_rows, d.reference_null_share, d.recent_null_share "
        "FROM (SELECT DISTINCT ON (day) id, computed_at, champion_version, day FROM ("
        "  SELECT id, computed_at, champion_version, "
        "  (computed_at AT TIME ZONE 'UTC')::date AS day FROM water.qc_runs "
        "  WHERE computed_at >= %s AND computed_at <= %s) w "
        " ORDER BY day, computed_at DESC, id DESC) r "
        "JOIN water.qc_drift d ON d.run_id = r.id ORDER BY r.day",
        (start, end),
    )
    order = {name: i for i, name in enumerate(FEATURE_NAMES)}
    days: dict[date, DayDrift] = {}
    for day, computed_at, champion, *drift in cur.fetchall():
        entry = days.setdefault(day, DayDrift(day, computed_at, champion, []))
        entry.features.append(FeatureDrift(*drift))
    for entry in days.values():
        entry.features.sort(key=lambda d: order.get(d.feature, len(order)))
    return list(days.values())


def _date(value: date | datetime | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value


def lab_sample_counts(conn: Connection, now: datetime) -> LabSampleCounts:
    """Lab samples received up to ``now``: in total, the last 24 hours and 7 days (indexed by
    ``created_at``; the lab-sample table grows by the regulator's pace, not the sensors')."""
    day, week = now - timedelta(hours=24), now - timedelta(days=7)
    cur = conn.cursor()
    cur.execute(
        "SELECT count(*), "
        "count(*) FILTER (WHERE created_at > %s), "
        "count(*) FILTER (WHERE created_at > %s), "
        "count(*) FILTER (WHERE created_at > %s AND potability = 1), "
        "count(DISTINCT sensor_id) FILTER (WHERE created_at > %s), "
        "max(created_at) "
        "FROM water.water_potability WHERE source = 'lab' AND created_at <= %s "
        "AND (sensor_id IS NULL OR sensor_id NOT LIKE %s)",  # not the deploy smoke test's
        (day, week, week, week, now, SMOKE_SENSOR_LIKE),
    )
    total, last_day, last_week, potable_week, sensors_week, last = cur.fetchone()
    return LabSampleCounts(total, last_day, last_week, potable_week, sensors_week, last)
