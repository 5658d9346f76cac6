"""The public, read-only status page: the regulator follows the operation, customers see the
quality of the service.

``GET /`` answers HTML (a self-contained page, server-rendered SVG charts, no scripts);
``?format=json`` or ``Accept: application/json`` answers the same data as JSON. This module
maps records to JSON and holds no SQL: the current champion and the last pipeline run come
from :mod:`potability.governance.run_record` (no MLflow call), inference counts from
:mod:`potability.inference.rollup` (hourly rollups plus the raw rows of the hours not rolled
up yet), lab-sample counts, live precision and drift from :mod:`potability.quality.record` (the
latest ``potability qc`` run), open alerts from :mod:`potability.alerts`. The 90-day trends
(issue 33: traffic and potable share per day, drift per feature per day, live precision per
model version and week with its interval, the model changes) come from the same owners - the
hourly rollups (:func:`potability.inference.rollup.daily`), the QC tables
(:func:`potability.quality.record.drift_by_day`, the latest run's weekly rows) and the model
history - each read bounded by the window, never by history (docs/scale.md).

The page cannot be used to take the database from predict (issue 18): each instance reads the
database at most once per ``STATUS_REFRESH_SECONDS`` however many readers there are
(:class:`StatusSource`, single flight), on its own pool of ``STATUS_DB_POOL_SIZE`` connections,
with ``STATUS_STATEMENT_TIMEOUT_MS`` on every statement; ``Cache-Control`` lets browsers and
CDNs keep the answer as well.

Nothing private is shown: no submitter identities, no sample or request ids, no tokens, no
error texts (they may carry hostnames). It is served like the other functions, through
:func:`functions.context.serve` (the instance's shared pool, one request log line, the JSON
error contract, the stale-connection retry); database down -> 503 with ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from concurrent.futures import Future
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

import flask

from functions.context import Call, Context, retry_stale_connection
from functions.http import RETRY_AFTER_SECONDS, ApiError, error_response
from functions.status_page import render_error_html, render_html
from potability import alerts, db, jobs
from potability.config import Settings
from potability.features import FEATURE_NAMES
from potability.governance import model_changes, run_record
from potability.inference import rollup as inference_rollup
from potability.quality import record as qc_record

if TYPE_CHECKING:  # the published answers' types (functions/openapi.py): checked, not imported
    from functions.openapi import (
        Alert,
        Champion,
        DriftDay,
        Inferences,
        Job,
        LabSamples,
        LastRun,
        LivePrecision,
        ModelChange,
        ModelHistory,
        QualityControl,
        Status,
        TrafficDay,
        Trends,
        WeeklyPrecision,
        Window,
    )

FUNCTION = "status"
log = logging.getLogger(__name__)
CACHE_SECONDS = 60
MAX_SENSORS = 50
"""Per-sensor breakdowns list the busiest sensors only, so the page stays readable."""


# --- data: records from their owner modules, mapped to JSON ------------------------------


@overload
def _iso(value: datetime | date) -> str: ...
@overload
def _iso(value: datetime | date | None) -> str | None: ...
def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _num(value: float | None) -> float | None:
    """The value as computed, or None where it is not finite (JSON has no NaN).

    Not rounded: the page rounds once, when it formats. Rounding here as well made 37 of 95
    potable (38.947%) show as 39.0%, through 0.3895.
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(value)


def _share(part: int, total: int) -> float | None:
    return _num(part / total) if total else None


def _champion(conn: db.Connection) -> Champion | None:
    record = run_record.current_champion(conn)
    if record is None:
        return None
    r = record.run
    return {
        "name": r.model_name,
        "version": r.champion_version,
        "family": r.champion_family,
        "held_out_precision": _num(r.champion_precision),
        # 95% bootstrap interval (training/evaluation.py::precision_interval); None before 006
        "held_out_precision_interval": (
            [_num(r.champion_precision_low), _num(r.champion_precision_high)]
            if r.champion_precision_low is not None
            else None
        ),
        # the held-out rows are reused by every later run's promotion test: the champion is
        # their survivor, so this figure is optimistic (issue 23); champion_fresh_precision is not
        "held_out_precision_reused_by_tests": True,
        "held_out_recall": _num(r.champion_recall),
        "threshold": _num(r.champion_threshold),
        "training_rows": r.training_rows,
        "confirmed_at": _iso(r.finished_at),
        "decision": r.decision,
    }


def _last_run(conn: db.Connection) -> LastRun | None:
    r = run_record.last_run(conn)
    if r is None:
        return None
    return {
        "status": r.status,
        "decision": r.decision,
        "started_at": _iso(r.started_at),
        "finished_at": _iso(r.finished_at),
        "champion_version": r.champion_version,
        "challenger_family": r.challenger_family,
        "challenger_precision": _num(r.challenger_precision),
        "challenger_recall": _num(r.challenger_recall),
        "recall_floor": _num(r.recall_floor),
    }


def _counts(counts: list[inference_rollup.Count], key: str) -> list[dict[str, Any]]:
    return [
        {
            key: c.key,
            "total": c.readings,
            "potable": c.potable,
            "potable_share": _share(c.potable, c.readings),
        }
        for c in counts
    ]


def _window(w: inference_rollup.WindowSummary) -> Window:
    return {
        "total": w.readings,
        "potable": w.potable,
        "potable_share": _share(w.potable, w.readings),
        "sensors": w.sensors,
        "by_sensor": _counts(w.by_sensor, "sensor_id"),
        "by_model_version": _counts(w.by_model_version, "model_version"),
        "start": _iso(w.start),
    }


def _inferences(conn: db.Connection, now: datetime, max_raw_hours: int | None = None) -> Inferences:
    """The log's last 24 hours and 7 days in whole UTC hours, the current one included:
    charts bucketed by clock hour (``start``, ``end`` of each bucket). ``exact`` is false while
    ``pending_hours`` (complete hours not rolled up yet, their readings not counted) remain:
    the refreshes and the hourly maintenance roll them up in bounded steps."""
    a = inference_rollup.activity(conn, now, MAX_SENSORS, max_raw_hours)
    hour = inference_rollup.HOUR
    return {
        "exact": not a.pending,
        "pending_hours": [_iso(h) for h in a.pending],
        "last_24h": _window(a.last_24h),
        "last_7d": _window(a.last_7d),
        "hourly_24h": [
            {
                "start": _iso(c.key),
                "end": _iso(c.key + hour),
                "total": c.readings,
                "potable": c.potable,
            }
            for c in a.hourly
        ],
        "daily_7d": [
            {
                "start": _iso(c.key - 24 * hour),
                "end": _iso(c.key),
                "total": c.readings,
                "potable": c.potable,
            }
            for c in a.daily
        ],
    }


def _lab_samples(conn: db.Connection, now: datetime) -> LabSamples:
    c = qc_record.lab_sample_counts(conn, now)
    return {
        "total": c.total,
        "last_24h": c.last_24h,
        "last_7d": c.last_7d,
        "potable_share_7d": _share(c.potable_7d, c.last_7d),
        "sensors_7d": c.sensors_7d,
        "last_received_at": _iso(c.last_received_at),
    }


def _fresh(run: qc_record.QcRun) -> dict[str, Any] | None:
    """The champion's precision on lab samples no promotion test used (sql/017)."""
    f = run.fresh
    if f is None:
        return None
    return {
        "model_version": f.model_version,
        "since": _iso(f.since),
        "potable_calls": f.potable_calls,
        "confirmed": f.confirmed,
        "precision": _num(f.precision),
        "interval_95": (
            [_num(f.precision_low), _num(f.precision_high)] if f.precision_low is not None else None
        ),
        "enough_evidence": f.enough,
        "min_potable_calls": run.settings.min_matches,
        "computed_at": _iso(run.computed_at),
    }


def _quality_control(run: qc_record.QcRun | None) -> QualityControl | None:
    if run is None:
        return None
    live: list[LivePrecision] = [
        {
            "model_version": m.model_version,
            "period": m.period,
            "week_start": _iso(m.week_start),
            "matches": m.matches,
            "true_positives": m.true_positives,
            "false_positives": m.false_positives,
            "false_negatives": m.false_negatives,
            "true_negatives": m.true_negatives,
            "precision": _num(m.precision),
            "recall": _num(m.recall),
            "flagged": m.flagged,
        }
        for m in run.live
    ]
    drift = [
        {
            "feature": d.feature,
            "psi": _num(d.psi),
            "status": d.status,
            "recent_null_share": _num(d.recent_null_share),
            "reference_null_share": _num(d.reference_null_share),
        }
        for d in run.drift
    ]
    return {
        "computed_at": _iso(run.computed_at),
        "champion_fresh_precision": _fresh(run),
        "match_window_minutes": _num(run.settings.match_window_minutes),
        "precision_floor": _num(run.settings.precision_floor),
        "min_matches": run.settings.min_matches,
        "lab_samples": run.lab_samples,
        "matched_samples": run.matched_samples,
        "flagged": any(r["flagged"] for r in live),
        "live": live,
        "drift": {
            "champion_version": run.champion_version,
            "window_start": _iso(run.drift_window_start),
            "window_end": _iso(run.drift_window_end),
            "reference_rows": run.drift_reference_rows,
            "recent_rows": run.drift_recent_rows,
            "features": drift,
            "drifting": [d["feature"] for d in drift if d["status"] == "drift"],
            "watch": [d["feature"] for d in drift if d["status"] == "watch"],
        },
    }


def _headline(model: Champion | None, qc: QualityControl | None) -> LivePrecision | None:
    """The live precision to show first: the champion's all-weeks row (else the version with
    the most matches)."""
    if qc is None:
        return None
    rows = [r for r in qc["live"] if r["period"] == "all"]
    if not rows:
        return None
    chosen = [r for r in rows if model and r["model_version"] == model["version"]]
    return chosen[0] if chosen else max(rows, key=lambda r: r["matches"])


def _open_alerts(conn: db.Connection) -> list[Alert]:
    """The open alerts (``water.alerts``), public fields only: no messages or raw figures."""
    return [
        {
            "event": a["event"],
            "title": a["title"],
            "severity": a["severity"],
            "model_version": a["model_version"],
            "detail": a["detail"],
            "raised_at": a["raised_at"],
        }
        for a in alerts.open_alerts(conn)
    ]


# --- model history (issue 22): the changes of the served model, public ----------------------


def model_history(conn: db.Connection, now: datetime) -> ModelHistory:
    """The model changes of the last 90 days (:mod:`potability.governance.model_changes`),
    newest first, each with its evidence, who made it (a role: :func:`public_role`) and
    the alerts raised around it; and the hold in force. Reasons are shown: operators write them
    for the public (``--reason``)."""
    changes = model_changes.history(conn, now)
    near = model_changes.alerts_around(conn, changes)
    names = {c.model_name for c in changes}
    holds = [model_changes.hold_state(conn, n) for n in names if n]
    hold = next((h for h in holds if h is not None), None)
    return {
        "days": model_changes.HISTORY_DAYS,
        "held": (
            {"since": _iso(hold.since), "by": public_role(hold.actor), "reason": hold.reason}
            if hold
            else None
        ),
        "changes": [
            {
                "when": _iso(c.changed_at or c.started_at),
                "action": c.action,
                "model_name": c.model_name,
                "version": c.version,
                "previous_version": c.previous_version,
                "family": c.family,
                "by": public_role(c.actor),
                "reason": c.reason,
                "in_progress": c.status == model_changes.SWITCHING,
                "evidence": {
                    "held_out_precision": _num(c.held_out_precision),
                    "held_out_precision_interval": (
                        [_num(c.held_out_precision_low), _num(c.held_out_precision_high)]
                        if c.held_out_precision_low is not None
                        else None
                    ),
                    "probability_better": _num(c.probability_better),
                },
                "alerts": near.get(c.id, []),
            }
            for c in changes
        ],
    }


def _jobs(conn: db.Connection) -> list[Job]:
    """When each scheduled job last succeeded (``water.job_status``, :mod:`potability.jobs`);
    a failing one with its step and error class (a class name, never the error's text)."""
    return [
        {
            "job": j.job,
            "last_succeeded_at": _iso(j.last_succeeded_at),
            "last_failed_at": _iso(j.last_failed_at),
            "failing": j.failing,
            "failed_step": j.failed_step if j.failing else None,
            "error_class": j.error_class if j.failing else None,
            "failures_in_a_row": j.failures_in_a_row,
            "quarantined_readings": j.quarantined,
        }
        for j in jobs.status(conn)
    ]


# --- trends (issue 33): 90 days from the rollups and the QC tables ---------------------------

TREND_DAYS = 90
"""The trends' window: the last 90 UTC days, today included (the model history's too)."""
CHANGES_OF_SERVICE = ("promoted", "rolled_back", "approved")
"""Model changes that change the served version: marked on the trends' time axis."""


def drift_summary(days: list[DriftDay]) -> list[dict[str, Any]]:
    """Per feature, over the trend's days with a QC run: the latest PSI and status, the
    highest PSI and its day, the days at watch and at drift, and since when it has been
    drifting (the first day of the unbroken run of drift days that ends with the latest;
    None when the latest is not drift) - the question "since when has Sulfate drifted?"."""
    out = []
    for name in FEATURE_NAMES:
        series = [
            (d["day"], f)
            for d in days
            for f in d["features"]
            if f["feature"] == name and f["status"] != "insufficient_data"
        ]
        if not series:
            out.append({"feature": name, "measured_days": 0})
            continue
        since = None
        for day, f in reversed(series):
            if f["status"] != "drift":
                break
            since = day
        top_day, top = max(series, key=lambda item: item[1]["psi"] or 0.0)
        out.append(
            {
                "feature": name,
                "measured_days": len(series),
                "latest_day": series[-1][0],
                "latest_psi": series[-1][1]["psi"],
                "latest_status": series[-1][1]["status"],
                "max_psi": top["psi"],
                "max_psi_day": top_day,
                "watch_days": sum(f["status"] == "watch" for _, f in series),
                "drift_days": sum(f["status"] == "drift" for _, f in series),
                "drifting_since": since,
            }
        )
    return out


def _trends(
    conn: db.Connection,
    now: datetime,
    run: qc_record.QcRun | None,
    history: ModelHistory,
) -> Trends:
    """The last :data:`TREND_DAYS` days: traffic and potable share per day (hourly rollups:
    :func:`potability.inference.rollup.daily`), drift per feature per day (the day's last QC
    run: :func:`potability.quality.record.drift_by_day`), live precision per model version
    and ISO week with its 95% interval (the latest QC run's weekly rows, recomputed by every
    run from all lab samples), and the model changes of the period. Each read is bounded by
    the window, not by history (docs/scale.md)."""
    last = now.astimezone(UTC).date()
    first = last - timedelta(days=TREND_DAYS - 1)
    start = datetime.combine(first, datetime.min.time(), UTC)
    traffic: list[TrafficDay] = [
        {
            "day": _iso(c.day),
            "total": c.readings,
            "potable": c.potable,
            "potable_share": _share(c.potable, c.readings),
            "hours_counted": c.hours,
        }
        for c in inference_rollup.daily(conn, first, last)
    ]
    drift: list[DriftDay] = [
        {
            "day": _iso(d.day),
            "computed_at": _iso(d.computed_at),
            "model_version": d.champion_version,
            "features": [
                {"feature": f.feature, "psi": _num(f.psi), "status": f.status} for f in d.features
            ],
        }
        for d in qc_record.drift_by_day(conn, start, now)
    ]
    earliest_week = first - timedelta(days=6)  # the week that contains the first day
    live: list[WeeklyPrecision] = [
        {
            "model_version": m.model_version,
            "period": m.period,
            "week_start": _iso(m.week_start),
            "matches": m.matches,
            "potable_calls": m.predicted_positive,
            "confirmed": m.true_positives,
            "precision": _num(m.precision),
            "interval_95": (
                [_num(m.precision_low), _num(m.precision_high)]
                if m.precision_low is not None and m.precision_high is not None
                else None
            ),
            "flagged": m.flagged,
        }
        for m in (run.live if run else [])
        if m.week_start is not None and m.week_start >= earliest_week
    ]
    changes: list[ModelChange] = [
        {
            "when": c["when"],
            "action": c["action"],
            "version": c["version"],
            "previous_version": c["previous_version"],
        }
        for c in reversed(history["changes"])  # oldest first, like the time axis
        if c["action"] in CHANGES_OF_SERVICE and not c["in_progress"] and c["when"]
    ]
    return {
        "days": TREND_DAYS,
        "first_day": _iso(first),
        "last_day": _iso(last),
        "precision_floor": _num(run.settings.precision_floor) if run else None,
        "traffic": traffic,
        "drift": drift,
        "drift_summary": drift_summary(drift),
        "live_precision": live,
        "model_changes": changes,
    }


def status_data(conn: db.Connection, now: datetime, max_raw_hours: int | None = None) -> Status:
    """Everything the page shows, as JSON-safe values (ISO-8601 UTC strings, finite floats).
    ``max_raw_hours``: bound the raw counting (:func:`potability.inference.rollup.activity`)."""
    model = _champion(conn)
    run = qc_record.latest_run(conn)
    qc = _quality_control(run)
    history = model_history(conn, now)
    return {
        "generated_at": _iso(now),
        "stale": False,
        "stale_since": None,
        "jobs": _jobs(conn),
        "alerts": _open_alerts(conn),
        "model": model,
        "champion_fresh_precision": qc["champion_fresh_precision"] if qc else None,
        "last_pipeline_run": _last_run(conn),
        "inferences": _inferences(conn, now, max_raw_hours),
        "lab_samples": _lab_samples(conn, now),
        "live_precision": _headline(model, qc),
        "quality_control": qc,
        "model_history": history,
        "trends": _trends(conn, now, run, history),
    }


# --- the instance's source of the data: single flight, own pool, statement timeout -------

ROLLUP_HOURS_PER_REFRESH = 6
"""Hours a refresh may roll up (oldest first): normally the one that just ended; after a deploy
on a full log, the week is caught up a few hours per refresh, each a bounded cost."""
ROLLUP_BUDGET_MS = 800
"""The statement timeout of a refresh's roll-up: a page view that waits for a refresh waits
for it, and a refresh must stay under a second (issue 29's target). After a backfill, hours
that do not fit stay pending for the hourly maintenance; each failed roll-up halves the hours
the next refresh tries, a successful one restores :data:`ROLLUP_HOURS_PER_REFRESH`."""
MAX_RAW_HOURS = 4
"""Complete un-rolled hours (besides the latest two) a refresh still counts from raw rows; with
more (a backfill, a deploy on a full log) they are named as pending instead (issue 29)."""


class StatusSource:
    """The status data of one instance, read from the database at most once per
    ``status_refresh_seconds`` whatever the number of readers: the first reader after the
    interval refreshes, the readers arriving meanwhile wait for that same refresh (single
    flight) and share its answer - or its failure. Its own pool of ``status_db_pool_size``
    connections (the page never takes a connection predict needs) and a statement timeout on
    every query, so a slow database makes the page fail fast (503) rather than pile up.
    """

    def __init__(self, settings: Settings) -> None:
        self.pool = db.Pool(settings, size=settings.status_db_pool_size)
        self.refresh_seconds = settings.status_refresh_seconds
        self.statement_timeout_ms = settings.status_statement_timeout_ms
        self.refreshes = 0
        """Database refreshes done (the bench and the tests count them)."""
        self.rollup_hours = ROLLUP_HOURS_PER_REFRESH
        """Hours the next refresh may roll up (halved after one that timed out)."""
        self.stale_answers = 0
        """Refreshes that failed while the database was up, answered with the last data."""
        self._lock = threading.Lock()
        self._data: Status | None = None
        self._fetched = 0.0
        self._flight: Future[Status] | None = None
        self._bodies: dict[str, tuple[Status, str, str]] = {}

    def get(self) -> Status:
        """The current data: from memory while fresh, else from the one refresh in flight."""
        with self._lock:
            if self._data is not None and time.monotonic() - self._fetched < self.refresh_seconds:
                return self._data
            flight, leader = self._flight, self._flight is None
            if leader:
                flight = self._flight = Future()
        assert flight is not None
        if not leader:
            return flight.result()
        try:
            data = retry_stale_connection(self._read)  # read-only: always safe to repeat
        except BaseException as exc:
            stale = self._stale(exc)
            with self._lock:
                self._flight = None
            if stale is None:
                flight.set_exception(exc)
                raise
            flight.set_result(stale)
            return stale
        with self._lock:
            self._data, self._fetched, self._flight = data, time.monotonic(), None
        flight.set_result(data)
        return data

    def _stale(self, exc: BaseException) -> Status | None:
        """The last good data marked stale, when a refresh failed while the database is up (a
        statement timeout, a lock, a query's error: issue 29) - never a 503 then; None when the
        database is unreachable (503, as before) or nothing was read yet."""
        if isinstance(exc, db.DatabaseUnavailable) and exc.failure is db.Failure.CONNECTION:
            return None
        if not isinstance(exc, Exception):
            return None
        with self._lock:
            last = self._data
        if last is None:
            return None
        self.stale_answers += 1
        log.warning("status refresh failed (%s); serving the data of %s", exc, last["generated_at"])
        stale = last.copy()
        stale["stale"], stale["stale_since"] = True, last["generated_at"]
        return stale

    def rendered(self, fmt: str) -> tuple[str, str]:
        """(body, mimetype) of the current data as ``json`` or ``html``, rendered once per
        refresh: a page view served from memory costs no database query and no rendering."""
        data = self.get()
        with self._lock:
            cached = self._bodies.get(fmt)
            if cached is not None and cached[0] is data:
                return cached[1], cached[2]
        if fmt == "json":
            body, mimetype = (
                json.dumps(data, separators=(",", ":"), allow_nan=False),
                "application/json",
            )
        else:
            body, mimetype = render_html(data), "text/html"
        with self._lock:
            self._bodies[fmt] = (data, body, mimetype)
        return body, mimetype

    def _read(self) -> Status:
        self.refreshes += 1
        now = datetime.now(UTC)
        try:
            # its own transaction and a small budget: what it rolled up stays even if the read
            # below fails, and a roll-up that cannot finish (a backfill's heavy hours, a lock
            # held by a catch-up) leaves the read its time - the hours stay pending, and the
            # next refresh tries fewer of them (readers waiting on a refresh wait for it)
            budget = min(self.statement_timeout_ms // 2, ROLLUP_BUDGET_MS)
            with self.pool.transaction(statement_timeout_ms=budget) as c:
                inference_rollup.roll_up(
                    c,
                    now - timedelta(days=7),
                    inference_rollup.rollable_through(now),
                    self.rollup_hours,
                )
            self.rollup_hours = ROLLUP_HOURS_PER_REFRESH
        except db.DatabaseUnavailable as exc:
            if exc.failure is db.Failure.CONNECTION:
                raise
            self.rollup_hours = max(1, self.rollup_hours // 2)
            log.warning("status roll-up skipped this refresh: %s", exc)
        with self.pool.transaction(
            read_only=True, statement_timeout_ms=self.statement_timeout_ms
        ) as conn:
            return status_data(conn, now, MAX_RAW_HOURS)

    def close(self) -> None:
        self.pool.close()


def source(ctx: Context) -> StatusSource:
    """The instance's :class:`StatusSource`, created on first use."""
    return ctx.shared(FUNCTION, lambda: StatusSource(ctx.settings))


# --- HTTP edge ---------------------------------------------------------------------------


def _wants_json(request: flask.Request) -> bool:
    fmt = request.args.get("format")
    if fmt is not None:
        return fmt == "json"
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


SECURITY_HEADERS = {
    # The page is one document with its CSS inline and inline SVG charts: nothing else may
    # load, run, frame it or be submitted from it (https://www.w3.org/TR/CSP3/).
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP level 2
    "Referrer-Policy": "no-referrer",
}
"""Sent with every answer of the public page, HTML or JSON, errors included."""


def public_role(actor: str) -> str:
    """Who made a model change, as the public page names it: ``pipeline`` for the daily
    pipeline, ``operator`` for a person. The person (an e-mail, ``user@host``) stays in
    ``water.model_changes`` for the audit and ``potability model status``; the public page
    is no place for an operator's identity."""
    return "pipeline" if actor == model_changes.AUTOMATIC else "operator"


def handle(request: flask.Request, ctx: Context, call: Call) -> flask.Response:
    """The page (or its JSON); run through :func:`functions.context.serve` like the others."""
    if request.method not in ("GET", "HEAD"):
        raise ApiError(405, "method", "use GET or HEAD", {"Allow": "GET, HEAD"})
    fmt = request.args.get("format")
    if fmt not in (None, "html", "json"):
        raise ApiError(400, "format", "format must be 'html' or 'json'")
    as_json = _wants_json(request)
    call.log["format"] = "json" if as_json else "html"
    body, mimetype = source(ctx).rendered("json" if as_json else "html")
    response = flask.Response(body, 200, mimetype=mimetype)
    response.headers.update({"Cache-Control": f"public, max-age={CACHE_SECONDS}", "Vary": "Accept"})
    response.headers.update(SECURITY_HEADERS)
    return response


def render_error(request: flask.Request, error: ApiError, request_id: str | None) -> flask.Response:
    """Errors in the functions' JSON contract, except that a browser asking for the page while
    the database is down gets a readable HTML page (same 503, same ``Retry-After``). Never
    cached: a CDN must not keep serving an outage after it ended."""
    if error.status == 503 and not _wants_json(request):
        retry_after = int(error.headers.get("Retry-After", RETRY_AFTER_SECONDS))
        response = flask.Response(render_error_html(retry_after), 503, mimetype="text/html")
        response.headers.update(error.headers)
    else:
        response = error_response(error, request_id)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Accept"
    response.headers.update(SECURITY_HEADERS)
    return response
