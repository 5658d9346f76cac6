"""The pipeline's row in ``water.pipeline_runs``: opened by export, decided by promote, closed
by deploy, and marked ``failed`` (with the error) by whichever step fails.

Every step wraps its work in :func:`failure_recorded`, so a failure is recorded the same way
on Vertex and under ``kfp.local`` (neither needs an exit handler, which ``kfp.local`` lacks).
If the failing run had already moved the ``champion`` alias (promote succeeded, deploy
failed), the alias is put back where it was: a failed run never moves the alias.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping

from potability import alerts, db
from potability.config import Settings

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
_DECISION_COLUMNS = (
    "decision", "model_name", "champion_version", "champion_family", "champion_precision",
    "champion_recall", "champion_threshold", "challenger_family", "challenger_precision",
    "challenger_recall", "recall_floor", "training_rows", "mlflow_run_id",
    # sql/006_promotion_evidence.sql
    "champion_precision_low", "champion_precision_high", "promotion_confidence",
    "precision_difference", "precision_difference_low", "precision_difference_high",
    "probability_challenger_better",
)


def start_run(settings: Settings, run_id: str, data_sha256: str, rows: int) -> None:
    """Open (or reopen, on a retried export) the run's row with status ``running``.

    First it checks that the previous runs have not gone stale (``pipeline_stale``: no success
    for ``ALERT_STALE_HOURS``; catches runs killed before they could record their failure).

    Args:
        settings: where the database is.
        run_id: the pipeline job name (one row per pipeline run).
        data_sha256: content hash of the exported data.
        rows: number of rows exported.
    """
    conn = db.connect(settings)
    try:
        try:
            alerts.publish(settings, alerts.check_stale(conn, settings, datetime.now(timezone.utc)))
        except Exception:  # noqa: BLE001 - a check must not stop the run it precedes
            log.exception("stale-run check failed")
        conn.cursor().execute(
            "INSERT INTO water.pipeline_runs (run_id, status, data_sha256, training_rows) "
            "VALUES (%s, 'running', %s, %s) ON CONFLICT (run_id) DO UPDATE SET "
            "status = 'running', data_sha256 = EXCLUDED.data_sha256, "
            "training_rows = EXCLUDED.training_rows, error = NULL, finished_at = NULL",
            (run_id, data_sha256, rows),
        )
        conn.commit()
    finally:
        conn.close()


def record_decision(settings: Settings, run_id: str, values: Mapping[str, Any],
                    details: Mapping[str, Any]) -> None:
    """Write promote's decision and both scores into the run's row (still ``running``).

    Args:
        settings: where the database is.
        run_id: the pipeline job name.
        values: the decision columns (see :data:`_DECISION_COLUMNS`); others are refused.
        details: JSON details; ``previous_champion_version`` lets a failure restore the alias.
    """
    unknown = set(values) - set(_DECISION_COLUMNS)
    if unknown:
        raise ValueError(f"not decision columns: {sorted(unknown)}")
    names = list(values)
    assignments = ", ".join(f"{n} = %s" for n in names)
    conn = db.connect(settings)
    try:
        cur = conn.cursor()
        cur.execute(
            "INSERT INTO water.pipeline_runs (run_id, status) VALUES (%s, 'running') "
            "ON CONFLICT (run_id) DO NOTHING", (run_id,))
        cur.execute(
            f"UPDATE water.pipeline_runs SET {assignments}, details = %s::jsonb "
            "WHERE run_id = %s",
            [values[n] for n in names] + [json.dumps(dict(details)), run_id],
        )
        conn.commit()
    finally:
        conn.close()


def finish_run(settings: Settings, run_id: str) -> None:
    """Mark the run ``succeeded`` (deploy's last act); a success resolves the open
    ``pipeline_run_failed`` and ``pipeline_stale`` alerts."""
    conn = db.connect(settings)
    try:
        cur = conn.cursor()
        cur.execute(
            "UPDATE water.pipeline_runs SET status = 'succeeded', finished_at = now(), "
            "error = NULL WHERE run_id = %s RETURNING finished_at", (run_id,))
        finished = cur.fetchone()[0]
        for event in (alerts.PIPELINE_RUN_FAILED, alerts.PIPELINE_STALE):
            alerts.resolve(conn, event, None, finished)
        conn.commit()
    finally:
        conn.close()


def read_run(settings: Settings, run_id: str) -> dict[str, Any] | None:
    """The run's row as a dict, or None."""
    conn = db.connect(settings)
    try:
        cur = conn.cursor()
        cur.execute("SELECT * FROM water.pipeline_runs WHERE run_id = %s", (run_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return {d[0]: v for d, v in zip(cur.description, row)}
    finally:
        conn.close()


def restore_alias(settings: Settings, details: Mapping[str, Any], client: Any = None) -> bool:
    """Put ``champion`` back on the version it had before this run; True if it was moved.

    Args:
        settings: MLflow tracking URI and model name.
        details: the run's details (``alias_moved``, ``previous_champion_version``).
        client: an ``MlflowClient`` (tests pass one; default: for the settings' URI).
    """
    if not details.get("alias_moved"):
        return False
    if client is None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    previous = details.get("previous_champion_version")
    if previous:
        client.set_registered_model_alias(settings.model_name, CHAMPION_ALIAS, str(previous))
    else:
        client.delete_registered_model_alias(settings.model_name, CHAMPION_ALIAS)
    return True


def mark_failed(settings: Settings, run_id: str, error: str) -> None:
    """Record the run as ``failed`` with ``error``; undo an alias move made by this run;
    raise the ``pipeline_run_failed`` alert (once per run, however many steps report it).

    Args:
        settings: database, MLflow tracking URI and model name.
        run_id: the pipeline job name.
        error: what failed (step and message), kept short.
    """
    conn = db.connect(settings)
    try:
        cur = conn.cursor()
        cur.execute(
            "INSERT INTO water.pipeline_runs (run_id, status, error, finished_at) "
            "VALUES (%s, 'failed', %s, now()) ON CONFLICT (run_id) DO UPDATE SET "
            "status = 'failed', error = EXCLUDED.error, finished_at = now() "
            "RETURNING details",
            (run_id, error[:2000]),
        )
        details = cur.fetchone()[0] or {}
        cur.execute(
            "SELECT champion_version FROM water.pipeline_runs WHERE status = 'succeeded' "
            "AND champion_version IS NOT NULL ORDER BY finished_at DESC NULLS LAST LIMIT 1")
        row = cur.fetchone()
        alert = alerts.pipeline_failed(run_id, error, row[0] if row else None)
        when = datetime.now(timezone.utc)
        raised = [alert] if alerts.insert(conn, alert, when) else []
        conn.commit()
    finally:
        conn.close()
    alerts.publish(settings, raised, when)
    if isinstance(details, str):
        details = json.loads(details)
    if restore_alias(settings, details):
        log.warning("run %s failed after moving the champion alias; alias restored", run_id)


@contextlib.contextmanager
def failure_recorded(settings: Settings, run_id: str, step: str) -> Iterator[None]:
    """Run a step; on any error mark the run failed (best effort) and re-raise."""
    try:
        yield
    except BaseException as exc:
        try:
            mark_failed(settings, run_id, f"{step}: {type(exc).__name__}: {exc}")
        except Exception:  # noqa: BLE001 - the original error matters more
            log.exception("could not record the failure of run %s", run_id)
        raise
