"""The scheduled jobs' record of themselves: ``water.job_status`` (sql/018) and their alerts.

Issue 29: a job that failed said so only in a traceback; the next hourly run failed the same
way and nobody knew. Every run of ``potability maintenance`` and ``potability qc`` goes
through :func:`recorded`:

- it names the step the job is in (:meth:`JobRun.step`), so a failure says *where*;
- on success it stamps ``last_succeeded_at`` and resolves the job's open failure alert;
- on failure it stamps ``last_failed_at`` with the step and the error class, and raises the
  job's alert (``maintenance_failed``, ``qc_failed``: :mod:`potability.alerts`, one open
  occurrence per job, so a job failing every hour raises once and is resolved by its next
  success) - then re-raises: the process still exits non-zero, as a scheduler expects.

Readings a job could not process are quarantined (:func:`potability.inference.rollup.
quarantine_failing`), counted here and named in the alert. The status page shows this table
(:func:`status`).

Its own connection, short timeouts: recording the outcome must work when the job's own
connection is the thing that broke (a socket timeout, a killed backend). If the database
cannot be reached at all the alert is still written as its log line (the event is about
that outage too).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from potability import alerts, db
from potability.config import Settings

log = logging.getLogger(__name__)

MAINTENANCE = "maintenance"
QC = "qc"
EVENT_OF_JOB = {MAINTENANCE: alerts.MAINTENANCE_FAILED, QC: alerts.QC_FAILED}
RECORD_TIMEOUT_SECONDS = 10.0
"""Socket timeout of the connection that records an outcome (a few tiny statements)."""
RECORD_STATEMENT_TIMEOUT_MS = 5000


@dataclass
class JobRun:
    """One run of a job: the step it is in, what it quarantined."""

    job: str
    started_at: datetime
    current: str = "start"
    quarantined_before: int | None = None
    """Readings in quarantine when the run started (None: unknown); more at its end are named
    in a ``job/quarantine`` alert."""

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Mark the work of the block as step ``name`` (what a failure's alert names)."""
        previous, self.current = self.current, name
        yield  # no finally: a failure leaves ``current`` naming the step it happened in
        self.current = previous


def _connect(settings: Settings) -> db.Connection:
    conn = db.connect(settings, timeout=RECORD_TIMEOUT_SECONDS)
    conn.cursor().execute(f"SET statement_timeout = {RECORD_STATEMENT_TIMEOUT_MS}")
    return conn


def _quarantine_figures(conn: db.Connection) -> dict[str, Any]:
    from potability.inference import rollup as inference_rollup

    total, newest = inference_rollup.quarantined(conn, limit=10)
    return {
        "quarantined": total,
        "quarantined_readings": [
            {
                "id": q.id,
                "inferred_at": alerts.iso(q.inferred_at),
                "sensor_id": q.sensor_id,
                "step": q.step,
                "error_class": q.error_class,
            }
            for q in newest
        ],
    }


def failed_alert(
    job: str, step: str, exc: BaseException, figures: dict[str, Any] | None = None
) -> alerts.Alert:
    """The alert of a failed run (pure): the error class and the step; the message keeps the
    error's text (the status page shows ``public_detail`` only, never it)."""
    return alerts.Alert(
        EVENT_OF_JOB[job],
        job,  # one open occurrence per job: an hourly failure raises once
        f"{job} failed in step {step}: {type(exc).__name__}: {str(exc)[:300]}",
        None,
        {
            "job": job,
            "step": step,
            "error_class": type(exc).__name__,
            "sqlstate": db.sqlstate(exc),
            **(figures or {}),
        },
    )


def quarantine_alert(job: str, figures: dict[str, Any]) -> alerts.Alert:
    """Readings newly quarantined by a run that otherwise succeeded: they are named (pure)."""
    return alerts.Alert(
        EVENT_OF_JOB[job],
        f"{job}/quarantine",
        f"{job} quarantined {figures['quarantined']} reading(s) it could not process",
        None,
        {"job": job, "step": "quarantine", "error_class": "quarantined", **figures},
    )


def _started(settings: Settings, job: str, now: datetime) -> int | None:
    """Stamp the start; the readings in quarantine now (None if the database is not there:
    the job itself will meet that and fail, recorded)."""
    try:
        conn = _connect(settings)
        try:
            cur = conn.cursor()
            cur.execute(
                "INSERT INTO water.job_status (job, last_started_at) VALUES (%s, %s) "
                "ON CONFLICT (job) DO UPDATE SET last_started_at = excluded.last_started_at",
                (job, now),
            )
            cur.execute("SELECT count(*) FROM water.inference_quarantine")
            before = int(cur.fetchone()[0])
            conn.commit()
            return before
        finally:
            conn.close()
    except Exception:  # noqa: BLE001
        log.warning("could not record the start of %s", job)
        return None


def _succeeded(settings: Settings, run: JobRun, now: datetime) -> list[alerts.Alert]:
    conn = _connect(settings)
    try:
        figures = _quarantine_figures(conn)
        cur = conn.cursor()
        cur.execute(
            "INSERT INTO water.job_status (job, last_succeeded_at, quarantined) "
            "VALUES (%s, %s, %s) ON CONFLICT (job) DO UPDATE SET "
            "last_succeeded_at = excluded.last_succeeded_at, failures_in_a_row = 0, "
            "quarantined = excluded.quarantined",
            (run.job, now, figures["quarantined"]),
        )
        event = EVENT_OF_JOB[run.job]
        alerts.resolve(conn, event, [run.job], now)
        raised = []
        if figures["quarantined"] > (run.quarantined_before or 0):
            alert = quarantine_alert(run.job, figures)
            if alerts.insert(conn, alert, now):
                raised.append(alert)
        elif not figures["quarantined"]:
            alerts.resolve(conn, event, [f"{run.job}/quarantine"], now)
        conn.commit()
        return raised
    finally:
        conn.close()


def _failed(settings: Settings, run: JobRun, exc: BaseException, now: datetime) -> None:
    alert = failed_alert(run.job, run.current, exc)
    new = True
    try:
        conn = _connect(settings)
        try:
            alert = failed_alert(run.job, run.current, exc, _quarantine_figures(conn))
            cur = conn.cursor()
            cur.execute(
                "INSERT INTO water.job_status (job, last_failed_at, failed_step, error_class, "
                "failures_in_a_row) VALUES (%s, %s, %s, %s, 1) ON CONFLICT (job) DO UPDATE SET "
                "last_failed_at = excluded.last_failed_at, failed_step = excluded.failed_step, "
                "error_class = excluded.error_class, "
                "failures_in_a_row = water.job_status.failures_in_a_row + 1",
                (run.job, now, run.current, type(exc).__name__),
            )
            new = alerts.insert(conn, alert, now)
            conn.commit()
        finally:
            conn.close()
    except Exception:  # the database is down: the log line still goes out
        log.exception("could not record the failure of %s", run.job)
    if new:
        alerts.publish(settings, [alert], now)


@contextmanager
def recorded(settings: Settings, job: str, now: datetime | None = None) -> Iterator[JobRun]:
    """Run the block as one run of ``job``: its outcome recorded, its failure alerted."""
    started = now or datetime.now(UTC)
    run = JobRun(job, started)
    run.quarantined_before = _started(settings, job, started)
    try:
        yield run
    except BaseException as exc:
        _failed(settings, run, exc, datetime.now(UTC) if now is None else now)
        raise
    raised = _succeeded(settings, run, datetime.now(UTC) if now is None else now)
    alerts.publish(settings, raised, now)


@dataclass(frozen=True)
class JobStatus:
    job: str
    last_started_at: datetime | None
    last_succeeded_at: datetime | None
    last_failed_at: datetime | None
    failed_step: str | None
    error_class: str | None
    failures_in_a_row: int
    quarantined: int

    @property
    def failing(self) -> bool:
        """The last run failed (no success since)."""
        return self.last_failed_at is not None and (
            self.last_succeeded_at is None or self.last_failed_at > self.last_succeeded_at
        )


def status(conn: db.Connection) -> list[JobStatus]:
    """Every job that ever ran, by name (the status page's "jobs" block)."""
    cur = conn.cursor()
    cur.execute(
        "SELECT job, last_started_at, last_succeeded_at, last_failed_at, failed_step, "
        "error_class, failures_in_a_row, quarantined FROM water.job_status ORDER BY job"
    )
    return [JobStatus(*r) for r in cur.fetchall()]
