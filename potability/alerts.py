"""Alerts: the one definition of the events somebody must be told about, and their delivery.

The events (:data:`EVENTS`): a pipeline run failed, no successful run for
``ALERT_STALE_HOURS``, a live-precision row newly flagged below the floor, a feature newly at
"drift", and predict/add_sample answering too many 5xx over a window; and the changes of the
model in service (a rollback, an operator's approval / rejection / release, a hold, the daily
pipeline's promotion, a candidate waiting for approval: :mod:`potability.governance.model_changes`,
docs/operating-the-model.md). Each occurrence is

- recorded once in ``water.alerts`` (``sql/007_alerts.sql``): a partial unique index allows one
  *open* alert per (event, occurrence), so a QC re-run of the same state, a retried step or a
  second process raises nothing new; the row is resolved when the condition clears, and the
  same condition coming back later is a new occurrence;
- written as one structured log line (Cloud Logging's JSON format: ``severity``, ``message``,
  a stable ``alert`` field naming the event, the model version, the figures). On GCP the
  log-based metrics and alert policies of ``terraform/monitoring.tf`` match these lines with
  the filters :func:`log_filter` builds; ``terraform/alert_events.json`` is generated from
  :func:`terraform_events` (``python -m potability.alerts``) and a test keeps it in sync;
- POSTed to ``ALERT_WEBHOOK_URL`` when set (locally): JSON with event, severity, when, figures
  and a link to the status page, by a background thread with a bounded retry, so raising an
  alert never blocks or fails the request or pipeline step that raised it.

The deciding functions are pure (state in, alerts out); the database and HTTP edges are below
them. Who raises what: ``potability/governance/run_record.py`` (failed runs, resolved by the next
success; and ``check_stale``, run by ``potability alerts check``, the pipeline's export step
and the local scheduler between runs), ``potability/quality/job.py`` (flagged precision, drift),
``functions/context.py`` (5xx rate, :class:`ErrorRateMonitor` per instance).
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from potability.config import Settings

log = logging.getLogger(__name__)

PIPELINE_RUN_FAILED = "pipeline_run_failed"
PIPELINE_STALE = "pipeline_stale"
LIVE_PRECISION_FLAGGED = "live_precision_flagged"
FEATURE_DRIFT = "feature_drift"
FUNCTION_ERRORS = "function_errors"
MODEL_ROLLED_BACK = "model_rolled_back"
MODEL_CHANGED = "model_changed"
MODEL_HELD = "model_held"
MODEL_PROMOTED = "model_promoted"
MODEL_CANDIDATE = "model_candidate"
CHAMPION_UNDER_FLOOR = "champion_under_recall_floor"
MAINTENANCE_FAILED = "maintenance_failed"
QC_FAILED = "qc_failed"


@dataclass(frozen=True)
class Event:
    """One kind of alert: its stable name, severity, who should act and what to do."""

    name: str
    severity: str
    title: str
    runbook: str
    gcp_resource: str
    """The monitored resource type its log lines carry on GCP: ``ml_job`` for pipeline steps
    (Vertex AI runs each as a custom job), ``cloud_run_revision`` for the functions (2nd gen
    functions are Cloud Run services)."""


EVENTS: dict[str, Event] = {
    e.name: e
    for e in (
        Event(
            PIPELINE_RUN_FAILED,
            "ERROR",
            "The daily training pipeline run failed",
            "A step of the training pipeline failed; the champion and the served model are "
            "unchanged (a failed run never moves the alias). Open the run in Vertex AI Pipelines "
            "(or `.potability/logs` locally), read the failed step's error, fix the cause "
            "(data, quota, image) and re-run: `potability pipeline submit`.",
            "ml_job",
        ),
        Event(
            PIPELINE_STALE,
            "ERROR",
            "No successful training run for too long",
            "No pipeline run has succeeded for longer than ALERT_STALE_HOURS: the model is not "
            "retrained on new lab samples. Check the Cloud Scheduler job (paused? failing?), the "
            "last pipeline runs in Vertex AI Pipelines and their errors; re-run by hand.",
            "ml_job",
        ),
        Event(
            LIVE_PRECISION_FLAGGED,
            "ERROR",
            "Live precision fell below the floor",
            "Lab samples show the served model calls unsafe water potable too often (live "
            "precision below QC_PRECISION_FLOOR on enough matches). Tell the regulator; check "
            "the status page's lab confirmation table and drift; consider rolling the champion "
            "alias back and retraining with the new lab samples.",
            "ml_job",
        ),
        Event(
            FEATURE_DRIFT,
            "WARNING",
            "A measurement drifted from the training data",
            "The readings of a feature changed in the last two days against the four weeks "
            "before (a day-by-day test, docs/statistics.md), or most of its values went missing. "
            "Check the sensor (calibration, units, a failing probe) and the plant; if the water "
            "really changed, collect lab samples so the next training run learns it.",
            "ml_job",
        ),
        Event(
            FUNCTION_ERRORS,
            "ERROR",
            "predict or add_sample answers server errors",
            "The function answered 5xx (503: database or model endpoint down) for more than "
            "ALERT_ERROR_RATE of its requests over ALERT_ERROR_WINDOW_SECONDS. Check Cloud SQL, "
            "the Vertex endpoint and the function's logs; sensors retry 503s, nothing is lost.",
            "cloud_run_revision",
        ),
        # Model changes (potability/governance/model_changes.py). The operators' actions
        # (`potability model ...`) run on an operator's machine: on GCP their lines go to Cloud
        # Logging as the ``global`` resource (potability/governance/model_control.py); the
        # pipeline's as its ``ml_job``.
        Event(
            MODEL_ROLLED_BACK,
            "ERROR",
            "The model in service was rolled back",
            "An operator served an earlier model version again (`potability model rollback`); "
            "the status page's model history says who, why and on what evidence. Find out what "
            "was wrong with the rolled-back version (live precision, drift, lab samples) before "
            "promotions resume; consider `potability model hold` meanwhile.",
            "global",
        ),
        Event(
            MODEL_CHANGED,
            "WARNING",
            "An operator changed the model in service",
            "An operator approved a candidate (it now serves), rejected one, or released a hold. "
            "Check the status page's model history and watch the live precision.",
            "global",
        ),
        Event(
            MODEL_HELD,
            "WARNING",
            "Model promotions are held",
            "An operator held promotions (`potability model hold`): daily runs still train and "
            "evaluate but never change the served model. Release with `potability model "
            "release --reason ...` once the cause is dealt with.",
            "global",
        ),
        Event(
            MODEL_PROMOTED,
            "WARNING",
            "The daily pipeline promoted a new model",
            "A challenger beat the champion on held-out evidence and now serves. Check the "
            "status page's model history; if live precision drops, `potability model rollback "
            "--reason ...` serves the previous version again.",
            "ml_job",
        ),
        Event(
            MODEL_CANDIDATE,
            "WARNING",
            "A model candidate waits for approval",
            "In manual approval mode (PROMOTION_APPROVAL=manual) a challenger passed the "
            "evidence test and waits: `potability model approve VERSION --reason ...` or "
            "`reject`. It expires after CANDIDATE_EXPIRY_DAYS.",
            "ml_job",
        ),
        Event(
            CHAMPION_UNDER_FLOOR,
            "WARNING",
            "The served model's recall is likely under the floor",
            "The pipeline installed a model whose held-out recall misses RECALL_FLOOR in most "
            "bootstrap resamples (a first champion is served anyway: no model means no answers "
            "at all). It calls fewer samples potable than promised, not more unsafe ones: "
            "precision is unaffected. Expect the next runs, with more lab samples, to replace "
            "it; to keep such a model out instead, set PROMOTION_APPROVAL=manual "
            "(docs/statistics.md). Resolved when the pipeline installs another version.",
            "ml_job",
        ),
        # The scheduled jobs (potability/jobs.py, issue 29): a failed run names its step and
        # error class; a run that quarantined readings it could not process names them.
        Event(
            MAINTENANCE_FAILED,
            "ERROR",
            "The inference-log maintenance failed",
            "`potability maintenance` (the hourly Cloud Run job) failed in the step the alert "
            "names, or quarantined readings it could not process. Until it succeeds, readings "
            "of days without a partition stay in the DEFAULT partition, retention stops and "
            "the rollups lag (the status page says since when). Read the job's log for the "
            "error, fix the cause and run it again: each run continues where the last stopped. "
            "Quarantined readings: water.inference_quarantine (docs/inference-log.md).",
            "cloud_run_job",
        ),
        Event(
            QC_FAILED,
            "ERROR",
            "Quality control failed",
            "`potability qc` failed in the step the alert names, or quarantined readings it "
            "could not process: live precision and drift on the status page are as of its last "
            "success (shown there). Read the run's log, fix the cause, re-run `potability qc`. "
            "Quarantined readings: water.inference_quarantine (docs/quality-control.md).",
            "ml_job",
        ),
    )
}


@dataclass(frozen=True)
class Alert:
    """One occurrence of an event."""

    event: str
    occurrence: str
    """What makes this occurrence itself (the run id, ``version/week``, the feature...)."""
    message: str
    model_version: str | None = None
    figures: Mapping[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return EVENTS[self.event].severity


# --- the log line and its filter ---------------------------------------------------------

ALERT_FIELD = "alert"


def log_filter(event: str) -> str:
    """The Cloud Logging filter matching the lines :func:`log_record` writes for ``event``.

    Cloud Run and Vertex AI turn a JSON line on stdout into a structured entry: ``severity``
    becomes the entry's severity, other keys land in ``jsonPayload``. (Logging query language:
    https://cloud.google.com/logging/docs/view/logging-query-language.)
    """
    return f'jsonPayload.{ALERT_FIELD}="{event}" AND severity>={EVENTS[event].severity}'


def log_record(alert: Alert, when: datetime, status_url: str = "") -> dict[str, Any]:
    """The structured log line of one alert (pure)."""
    record: dict[str, Any] = {
        "severity": alert.severity,
        "message": f"ALERT {alert.event}: {alert.message}",
        ALERT_FIELD: alert.event,
        "occurrence": alert.occurrence,
        "model_version": alert.model_version,
        "figures": dict(alert.figures),
        "when": iso(when),
    }
    if status_url:
        record["status_url"] = status_url
    return record


def webhook_payload(alert: Alert, when: datetime, status_url: str = "") -> dict[str, Any]:
    """The JSON POSTed to ``ALERT_WEBHOOK_URL`` (pure)."""
    return {
        "event": alert.event,
        "severity": alert.severity,
        "title": EVENTS[alert.event].title,
        "when": iso(when),
        "occurrence": alert.occurrence,
        "model_version": alert.model_version,
        "message": alert.message,
        "figures": dict(alert.figures),
        "what_to_do": EVENTS[alert.event].runbook,
        "status_url": status_url or None,
    }


def terraform_events() -> dict[str, Any]:
    """What ``terraform/monitoring.tf`` reads (``terraform/alert_events.json``)."""
    return {
        "events": {
            e.name: {
                "severity": e.severity,
                "title": e.title,
                "runbook": e.runbook,
                "log_filter": log_filter(e.name),
                "gcp_resource": e.gcp_resource,
            }
            for e in EVENTS.values()
        }
    }


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- deciding (pure) ---------------------------------------------------------------------


def pipeline_failed(run_id: str, error: str, model_version: str | None) -> Alert:
    """A pipeline run failed (``model_version``: the champion still served)."""
    step = error.split(":", 1)[0]
    return Alert(
        PIPELINE_RUN_FAILED,
        run_id,
        f"pipeline run {run_id} failed in {step}",
        model_version,
        {"run_id": run_id, "step": step, "error": error[:500]},
    )


def stale(
    last_success: datetime | None,
    first_run: datetime | None,
    now: datetime,
    hours: float,
    model_version: str | None,
) -> Alert | None:
    """No successful run for more than ``hours``: measured from the last success, or from the
    first run ever started if none succeeded (no run at all: nothing to be stale yet)."""
    since = last_success or first_run
    if since is None or now - since <= timedelta(hours=hours):
        return None
    age = (now - since).total_seconds() / 3600.0
    what = "last successful run" if last_success else "first run (none succeeded)"
    return Alert(
        PIPELINE_STALE,
        f"since {iso(since)}",
        f"no successful pipeline run for {age:.1f} h (limit {hours:g} h)",
        model_version,
        {
            "hours_since": round(age, 2),
            "limit_hours": hours,
            "since": iso(since),
            "since_what": what,
        },
    )


def flagged_precision(metrics: Iterable[Any], floor: float) -> list[Alert]:
    """One alert per model version whose live-precision CUSUM is at or above its limit (the
    ``all`` row of ``live_precision.LiveMetric``, issue 31): the sequential test's state, so the
    alert stays open while the evidence of a drop does and a daily look raises nothing new.
    Its figures are the calls the alarm rests on (since the statistic last stood at 0)."""
    return [
        Alert(
            LIVE_PRECISION_FLAGGED,
            f"{m.model_version}/{m.period}",
            f"live precision of model {m.model_version} dropped towards the floor {floor:g}: "
            f"{m.alarm_confirmed} of its last {m.alarm_calls} lab-checked potable calls "
            f"confirmed (CUSUM {m.alarm_statistic:.2f})",
            m.model_version,
            {
                "period": m.period,
                "live_precision": round(m.alarm_confirmed / m.alarm_calls, 4),
                "floor": floor,
                "matches": m.alarm_calls,
                "true_positives": m.alarm_confirmed,
                "false_positives": m.alarm_calls - m.alarm_confirmed,
                "alarm_statistic": round(m.alarm_statistic, 4),
            },
        )
        for m in metrics
        if m.flagged and m.week_start is None and m.alarm_calls
    ]


def champion_under_floor(
    model_name: str, version: str, recall: float, floor: float, meets_floor: float
) -> Alert | None:
    """The alert for a newly installed champion whose recall is more likely under the floor
    than over it (``meets_floor``: share of bootstrap resamples of the held-out rows in which
    its recall reaches the floor, < 0.5); None when it is not (issue 31)."""
    if meets_floor >= 0.5:
        return None
    return Alert(
        CHAMPION_UNDER_FLOOR,
        model_name,
        f"{model_name} v{version} serves with held-out recall {recall:.3f}, under the floor "
        f"{floor:g} in {(1 - meets_floor) * 100:.0f}% of bootstrap resamples",
        version,
        {
            "version": version,
            "held_out_recall": round(recall, 4),
            "floor": floor,
            "meets_floor": round(meets_floor, 4),
        },
    )


def drifting_features(drifts: Iterable[Any], champion_version: str | None) -> list[Alert]:
    """One alert per feature at "drift" (``drift.FeatureDrift``): its day-by-day change test
    fired, or most of its values went missing (potability/quality/drift.py)."""
    return [
        Alert(
            FEATURE_DRIFT,
            d.feature,
            (
                f"{d.feature} changed in the last days against the weeks before "
                f"(test statistic {d.change:.1f} x its limit)"
                if d.change is not None and d.change >= 1
                else f"{d.feature}: most values are missing ({(d.recent_null_share or 0):.0%})"
            ),
            champion_version,
            {
                "feature": d.feature,
                "psi": None if d.psi is None else round(d.psi, 4),
                "change": None if d.change is None else round(d.change, 2),
                "recent_null_share": d.recent_null_share,
                "recent_rows": d.recent_rows,
                "reference_rows": d.reference_rows,
            },
        )
        for d in drifts
        if d.status == "drift"
    ]


def reconcile(
    open_occurrences: Iterable[str], current: Sequence[Alert]
) -> tuple[list[Alert], list[str]]:
    """(alerts to raise: current ones not open yet, open occurrences no longer current)."""
    opened = set(open_occurrences)
    now_keys = {a.occurrence for a in current}
    return ([a for a in current if a.occurrence not in opened], sorted(opened - now_keys))


class ErrorRateMonitor:
    """5xx share of one function's requests over a sliding time window, per instance.

    ``observe`` returns ``"raise"`` when the window crosses the threshold (at least
    ``min_requests`` requests and an error share >= ``rate``) and ``"clear"`` when, on at least
    ``min_requests`` requests, the share is back below it; ``None`` otherwise - so a lasting
    outage raises once, not once per request. Thread-safe.
    """

    def __init__(
        self,
        window_seconds: float,
        rate: float,
        min_requests: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window_seconds
        self.rate = rate
        self.min_requests = max(1, min_requests)
        self.clock = clock
        self.raised = False
        self._events: deque[tuple[float, bool]] = deque()
        self._errors = 0
        self._lock = threading.Lock()

    def observe(self, status: int) -> tuple[str, dict[str, Any]] | None:
        now = self.clock()
        with self._lock:
            error = status >= 500
            self._events.append((now, error))
            self._errors += error
            while self._events and self._events[0][0] < now - self.window:
                self._errors -= self._events.popleft()[1]
            total = len(self._events)
            if total < self.min_requests:
                return None
            share = self._errors / total
            figures = {
                "requests": total,
                "server_errors": self._errors,
                "error_rate": round(share, 4),
                "threshold": self.rate,
                "window_seconds": self.window,
            }
            if not self.raised and share >= self.rate:
                self.raised = True
                return "raise", figures
            if self.raised and share < self.rate:
                self.raised = False
                return "clear", figures
            return None


def function_errors(
    function: str, figures: Mapping[str, Any], model_version: str | None = None
) -> Alert:
    return Alert(
        FUNCTION_ERRORS,
        function,
        f"{function} answered {figures['server_errors']} server errors in "
        f"{figures['requests']} requests over {figures['window_seconds']:g} s",
        model_version,
        {"function": function, **figures},
    )


# --- the database edge -------------------------------------------------------------------


def open_occurrences(conn: Any, event: str) -> list[str]:
    cur = conn.cursor()
    cur.execute(
        "SELECT occurrence FROM water.alerts WHERE event = %s AND resolved_at IS NULL", (event,)
    )
    return [r[0] for r in cur.fetchall()]


def insert(conn: Any, alert: Alert, now: datetime) -> bool:
    """Record ``alert`` unless the same occurrence is already open; True if it is new.
    In the caller's transaction (no commit)."""
    cur = conn.cursor()
    cur.execute(
        "INSERT INTO water.alerts (event, occurrence, severity, model_version, message, figures, "
        "raised_at) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s) "
        "ON CONFLICT (event, occurrence) WHERE resolved_at IS NULL DO NOTHING RETURNING id",
        (
            alert.event,
            alert.occurrence,
            alert.severity,
            alert.model_version,
            alert.message,
            json.dumps(dict(alert.figures), default=str),
            now,
        ),
    )
    return cur.fetchone() is not None


def resolve(conn: Any, event: str, occurrences: Iterable[str] | None, now: datetime) -> int:
    """Close open alerts of ``event`` (all of them when ``occurrences`` is None)."""
    cur = conn.cursor()
    if occurrences is None:
        cur.execute(
            "UPDATE water.alerts SET resolved_at = greatest(%s, raised_at) "
            "WHERE event = %s AND resolved_at IS NULL",
            (now, event),
        )
    else:
        keys = list(occurrences)
        if not keys:
            return 0
        cur.execute(
            "UPDATE water.alerts SET resolved_at = greatest(%s, raised_at) "
            "WHERE event = %s AND resolved_at IS NULL AND occurrence = ANY(%s)",
            (now, event, keys),
        )
    return cur.rowcount


def sync(conn: Any, event: str, current: Sequence[Alert], now: datetime) -> list[Alert]:
    """Make the open alerts of ``event`` match ``current`` (the whole present state of the
    event): raise the new ones, resolve the cleared ones; return those newly raised.
    In the caller's transaction."""
    cur = conn.cursor()
    cur.execute("LOCK TABLE water.alerts IN SHARE ROW EXCLUSIVE MODE")  # one sync at a time
    new, cleared = reconcile(open_occurrences(conn, event), current)
    resolve(conn, event, cleared, now)
    return [a for a in new if insert(conn, a, now)]


def public_detail(event: str, figures: Mapping[str, Any]) -> str:
    """A one-line summary fit for the public status page: figures only, never error texts
    (they may carry hostnames) or run ids."""
    f = figures
    try:
        if event == PIPELINE_RUN_FAILED:
            return f"the {f['step']} step failed; the served model is unchanged"
        if event == PIPELINE_STALE:
            return (
                f"last successful training {f['hours_since']:.0f} h ago "
                f"(limit {f['limit_hours']:g} h)"
            )
        if event == LIVE_PRECISION_FLAGGED:
            return (
                f"live precision {f['live_precision'] * 100:.1f}% on the last {f['matches']} "
                f"lab-checked potable calls, floor {f['floor'] * 100:.0f}%"
            )
        if event == CHAMPION_UNDER_FLOOR:
            return (
                f"v{f['version']}: held-out recall {f['held_out_recall'] * 100:.1f}%, "
                f"floor {f['floor'] * 100:.0f}%"
            )
        if event == FEATURE_DRIFT:
            if f.get("change") is not None and f["change"] >= 1:
                return f"{f['feature']}: changed in the last 2 days ({f['change']:.1f} x the limit)"
            return f"{f['feature']}: most values missing"
        if event in (MODEL_ROLLED_BACK, MODEL_CHANGED, MODEL_HELD, MODEL_PROMOTED, MODEL_CANDIDATE):
            return (
                f"{f['action'].replace('_', ' ')}: v{f['version']}"
                if f.get("version")
                else f"{f['action'].replace('_', ' ')}"
            )
        if event in (MAINTENANCE_FAILED, QC_FAILED):
            if f["step"] == "quarantine":
                return f"{f['job']}: {f['quarantined']} reading(s) quarantined"
            return f"{f['job']} failed in {f['step']} ({f['error_class']})"
        if event == FUNCTION_ERRORS:
            return (
                f"{f['function']}: {f['error_rate'] * 100:.0f}% server errors over "
                f"{f['requests']} requests"
            )
    except (KeyError, TypeError, ValueError):
        pass
    return ""


def open_alerts(conn: Any, limit: int = 50) -> list[dict[str, Any]]:
    """The open alerts, newest first (the status page lists them at the top)."""
    cur = conn.cursor()
    cur.execute(
        "SELECT event, severity, model_version, message, figures, raised_at FROM water.alerts "
        "WHERE resolved_at IS NULL ORDER BY raised_at DESC, id DESC LIMIT %s",
        (limit,),
    )
    out = []
    for event, severity, version, message, figures, raised_at in cur.fetchall():
        if isinstance(figures, str):
            figures = json.loads(figures)
        out.append(
            {
                "event": event,
                "title": EVENTS[event].title if event in EVENTS else event,
                "severity": severity,
                "model_version": version,
                "message": message,
                "figures": figures,
                "detail": public_detail(event, figures),
                "raised_at": iso(raised_at),
            }
        )
    return out


# --- delivery: log line + webhook --------------------------------------------------------


def _post(url: str, payload: Mapping[str, Any], timeout: float) -> None:
    data = json.dumps(payload, default=str).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "potability-alerts/1",
            "Idempotency-Key": f"{payload['event']}:{payload['occurrence']}:{payload['when']}",
        },
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # our URL
        response.read()


class Notifier:
    """Delivers alerts in the background: writes the log line, POSTs the webhook with a bounded
    retry. ``submit`` never blocks (a full queue drops the webhook, the log line is kept)."""

    def __init__(
        self,
        webhook_url: str,
        status_url: str = "",
        attempts: int = 3,
        timeout: float = 5.0,
        backoff: float = 0.5,
        flush_seconds: float = 10.0,
        stream: Any = None,
    ) -> None:
        self.webhook_url = webhook_url
        self.status_url = status_url
        self.attempts = max(1, attempts)
        self.timeout = timeout
        self.backoff = backoff
        self.flush_seconds = flush_seconds
        self.stream = stream
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="alerts", daemon=True)
                self._thread.start()

    def submit(self, job: Callable[[], object]) -> None:
        """Run ``job`` on the delivery thread (jobs call :meth:`deliver`; what they return is
        not used)."""
        self._ensure_thread()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            log.error("alert queue full; dropping an alert job")

    def publish(self, alerts: Iterable[Alert], when: datetime | None = None) -> None:
        """Log and deliver alerts already recorded as new."""
        moment = when or datetime.now(UTC)
        for alert in alerts:
            self.submit(functools.partial(self.deliver, alert, moment))

    def deliver(self, alert: Alert, when: datetime) -> bool:
        """Write the log line, then POST the webhook (bounded retry); True if delivered."""
        line = json.dumps(log_record(alert, when, self.status_url), default=str)
        out = self.stream or sys.stdout
        with self._lock:  # one whole line at a time
            out.write(line + "\n")
            out.flush()
        if not self.webhook_url:
            return False
        payload = webhook_payload(alert, when, self.status_url)
        for attempt in range(self.attempts):
            try:
                _post(self.webhook_url, payload, self.timeout)
                self.delivered += 1
                return True
            except urllib.error.HTTPError as exc:
                if exc.code < 500 and exc.code not in (408, 429):
                    break  # the receiver refused this payload; retrying cannot help
                reason = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                reason = str(exc)
            log.warning("alert webhook attempt %d failed: %s", attempt + 1, reason)
            if attempt + 1 < self.attempts:
                time.sleep(self.backoff * 2**attempt)
        self.failed += 1
        log.error("alert %s/%s not delivered to the webhook", alert.event, alert.occurrence)
        return False

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                job()
            except Exception:  # a delivery must never kill the thread
                log.exception("alert job failed")
            finally:
                self._queue.task_done()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (bounded) until queued alerts are handled; True if the queue drained."""
        deadline = time.monotonic() + (self.flush_seconds if timeout is None else timeout)
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True


_notifiers: dict[tuple[Any, ...], Notifier] = {}
_notifier_lock = threading.Lock()


def notifier(settings: Settings) -> Notifier:
    """The process's notifier for these delivery settings (created on first use; flushed,
    bounded, at exit so a pipeline step's alerts leave before its process ends)."""
    key = (
        settings.alert_webhook_url,
        settings.status_url,
        settings.alert_webhook_attempts,
        settings.alert_webhook_timeout_seconds,
    )
    with _notifier_lock:
        if key not in _notifiers:
            made = Notifier(
                settings.alert_webhook_url,
                settings.status_url,
                attempts=settings.alert_webhook_attempts,
                timeout=settings.alert_webhook_timeout_seconds,
            )
            atexit.register(made.flush)
            _notifiers[key] = made
        return _notifiers[key]


def publish(settings: Settings, alerts: Sequence[Alert], when: datetime | None = None) -> None:
    """Log and deliver newly recorded alerts in the background (never raises)."""
    if alerts:
        try:
            notifier(settings).publish(alerts, when)
        except Exception:  # alerting never fails the caller
            log.exception("could not publish alerts")


def raise_in_background(
    settings: Settings, alert: Alert, record: Callable[[Alert, datetime], bool]
) -> None:
    """Record (``record`` returns True if new) and deliver on the delivery thread, so the
    caller (a request) never waits on the database or the webhook. If the database cannot be
    reached the alert is delivered anyway (it is about that outage): deduplication then rests
    on the caller's own state (one per occurrence per instance)."""
    from potability import db

    def job() -> None:
        when = datetime.now(UTC)
        try:
            new = record(alert, when)
        except db.DatabaseUnavailable:
            new = True
        if new:
            notifier(settings).deliver(alert, when)

    try:
        notifier(settings).submit(job)
    except Exception:
        log.exception("could not queue an alert")


WATCHED_FUNCTIONS = ("predict", "add_sample")
"""The functions whose 5xx rate is watched (the status page is read-only and public)."""


def raise_function_alert(conn: Any, alert: Alert, now: datetime) -> bool:
    """Record a ``function_errors`` alert through ``water.raise_function_alert`` (sql/011):
    the public functions' roles may not write ``water.alerts`` themselves."""
    cur = conn.cursor()
    cur.execute(
        "SELECT water.raise_function_alert(%s, %s, %s, %s::jsonb, %s)",
        (
            alert.occurrence,
            alert.model_version,
            alert.message,
            json.dumps(dict(alert.figures), default=str),
            now,
        ),
    )
    return bool(cur.fetchone()[0])


def _record_with_own_connection(settings: Settings) -> Callable[[Alert, datetime], bool]:
    def record(alert: Alert, when: datetime) -> bool:
        from potability import db

        conn = db.connect(settings, timeout=settings.alert_webhook_timeout_seconds)
        try:
            new = raise_function_alert(conn, alert, when)
            conn.commit()
            return new
        finally:
            conn.close()

    return record


def _resolve_with_own_connection(settings: Settings, alert: Alert) -> None:
    from potability import db

    try:
        conn = db.connect(settings, timeout=settings.alert_webhook_timeout_seconds)
        try:
            cur = conn.cursor()
            cur.execute(
                "SELECT water.resolve_function_alert(%s, %s)",
                (alert.occurrence, datetime.now(UTC)),
            )
            conn.commit()
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - the next clear (or a later raise) tries again
        log.warning("could not resolve alert %s/%s", alert.event, alert.occurrence)


def observe_response(
    settings: Settings,
    monitor: ErrorRateMonitor,
    function: str,
    status: int,
    model_version: str | None = None,
) -> None:
    """Feed one answer of ``function`` to its monitor; raise or resolve ``function_errors`` on a
    crossing, in the background (the request is never delayed). Never raises."""
    try:
        change = monitor.observe(status)
        if change is None:
            return
        kind, figures = change
        alert = function_errors(function, figures, model_version)
        if kind == "raise":
            raise_in_background(settings, alert, _record_with_own_connection(settings))
        else:
            notifier(settings).submit(lambda: _resolve_with_own_connection(settings, alert))
    except Exception:  # alerting never fails a request
        log.exception("error-rate monitoring failed")


def main(argv: list[str] | None = None) -> int:
    """``python -m potability.alerts [path]``: write the events for Terraform (default stdout)."""
    text = json.dumps(terraform_events(), indent=2, sort_keys=True) + "\n"
    args = sys.argv[1:] if argv is None else argv
    if args:
        with open(args[0], "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
