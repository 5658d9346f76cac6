"""The one home of ``water.pipeline_runs``: each pipeline run's row, and every question asked of
the table. Nothing else in the system writes SQL on it (tests set up rows directly).

Writers (the pipeline's steps): :func:`start_run` (export opens the row), :func:`record_decision`
(promote), :func:`finish_run` (deploy's last act), :func:`mark_failed` (whichever step fails,
or the local runner when a step could not).

Readers, each returning typed rows (:class:`PipelineRun`):

* :func:`read_run` - one run by id (the local run's summary, tests);
* :func:`last_run` - the latest run started (status page, ``potability status``);
* :func:`current_champion` - "the current champion": the model the latest succeeded run left
  served, with when it was trained (status page, quality control, alerts);
* :func:`last_promotion_look` - the date of the last run that tested the champion (promote's
  spacing of its looks, :func:`training.decision.is_look`);
* :func:`check_stale` - no success for ``ALERT_STALE_HOURS`` (export, :func:`mark_failed`,
  ``potability alerts check``, the local scheduler between runs).

Nothing here imports MLflow: the deployed status function loads this module. The registered
model's ``champion`` alias is promote's (:mod:`training.promotion`); a failing step's alias
restore is :func:`components.runtime.record_failure`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any

from potability import alerts, db
from potability.config import Settings
from potability.governance import model_changes

log = logging.getLogger(__name__)

_DECISION_COLUMNS = (
    "decision",
    "model_name",
    "champion_version",
    "champion_family",
    "champion_precision",
    "champion_recall",
    "champion_threshold",
    "challenger_family",
    "challenger_precision",
    "challenger_recall",
    "recall_floor",
    "training_rows",
    "mlflow_run_id",
    # sql/006_promotion_evidence.sql
    "champion_precision_low",
    "champion_precision_high",
    "promotion_confidence",
    "precision_difference",
    "precision_difference_low",
    "precision_difference_high",
    "probability_challenger_better",
)


@dataclass(frozen=True)
class PipelineRun:
    """One row of ``water.pipeline_runs`` (sql/002_pipeline_runs.sql, 006_promotion_evidence)."""

    run_id: str
    status: str
    """``running`` | ``succeeded`` | ``failed``."""
    started_at: datetime
    finished_at: datetime | None = None
    decision: str | None = None
    model_name: str | None = None
    champion_version: str | None = None
    champion_family: str | None = None
    champion_precision: float | None = None
    champion_recall: float | None = None
    champion_threshold: float | None = None
    challenger_family: str | None = None
    challenger_precision: float | None = None
    challenger_recall: float | None = None
    recall_floor: float | None = None
    training_rows: int | None = None
    data_sha256: str | None = None
    mlflow_run_id: str | None = None
    error: str | None = None
    details: Mapping[str, Any] | None = None
    champion_precision_low: float | None = None
    champion_precision_high: float | None = None
    promotion_confidence: float | None = None
    precision_difference: float | None = None
    precision_difference_low: float | None = None
    precision_difference_high: float | None = None
    probability_challenger_better: float | None = None


_COLUMNS = tuple(f.name for f in fields(PipelineRun))


def _select(alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + c for c in _COLUMNS)


def _pipeline_run(row: Any) -> PipelineRun:
    values = dict(zip(_COLUMNS, row, strict=False))
    if isinstance(values["details"], str):  # jsonb arrives parsed or as text, per driver
        values["details"] = json.loads(values["details"])
    values["details"] = values["details"] or {}
    return PipelineRun(**values)


@dataclass(frozen=True)
class ChampionRecord:
    """The champion as the pipeline recorded it: the latest succeeded run's champion."""

    run: PipelineRun
    """The run that last confirmed it (its decision, scores and finish time)."""
    trained_at: datetime | None
    """Start of the run that promoted this version, which bounds its training data (None if
    that run is not in the table)."""

    @property
    def version(self) -> str:
        return str(self.run.champion_version)


# --- readers ---------------------------------------------------------------------------------


def find_run(conn: db.Connection, run_id: str) -> PipelineRun | None:
    """The run ``run_id``, or None."""
    cur = conn.cursor()
    cur.execute(f"SELECT {_select()} FROM water.pipeline_runs WHERE run_id = %s", (run_id,))
    row = cur.fetchone()
    return None if row is None else _pipeline_run(row)


def read_run(settings: Settings, run_id: str) -> PipelineRun | None:
    """:func:`find_run` on a connection of its own."""
    with closing(db.connect(settings)) as conn:
        return find_run(conn, run_id)


def last_run(conn: db.Connection) -> PipelineRun | None:
    """The run started last (whatever its status), or None before the first run."""
    cur = conn.cursor()
    cur.execute(f"SELECT {_select()} FROM water.pipeline_runs ORDER BY started_at DESC LIMIT 1")
    row = cur.fetchone()
    return None if row is None else _pipeline_run(row)


def current_champion(conn: db.Connection) -> ChampionRecord | None:
    """The champion of the latest succeeded run (None before the first success) - unless an
    operator changed the served version since (``potability model rollback`` / ``approve``,
    :mod:`potability.governance.model_changes`): then that version, with the evidence it came
    in with.

    "Latest" is by finish time, then start time: a run that kept the champion confirms it too,
    and a failed run never changes the answer (it moves the alias back)."""
    cur = conn.cursor()
    cur.execute(
        f"SELECT {_select('r')}, (SELECT min(p.started_at) FROM water.pipeline_runs p "
        " WHERE p.status = 'succeeded' AND p.champion_version = r.champion_version"
        " AND p.decision IN ('first_champion', 'challenger_wins')) "
        "FROM water.pipeline_runs r WHERE r.status = 'succeeded' "
        "AND r.champion_version IS NOT NULL "
        "ORDER BY r.finished_at DESC NULLS LAST, r.started_at DESC LIMIT 1"
    )
    row = cur.fetchone()
    latest = None if row is None else ChampionRecord(_pipeline_run(row[:-1]), row[-1])
    change = model_changes.latest_serving(conn)
    if change is None or change.actor == model_changes.AUTOMATIC or change.changed_at is None:
        return latest
    if (
        latest is not None
        and latest.run.finished_at is not None
        and latest.run.finished_at >= change.changed_at
    ):
        return latest  # a later run compared against (and kept or replaced) that version
    trained = find_run(conn, change.run_id) if change.run_id else None
    return ChampionRecord(
        PipelineRun(
            run_id=change.run_id or "",
            status="succeeded",
            started_at=change.started_at,
            finished_at=change.changed_at,
            decision=change.action,
            model_name=change.model_name,
            champion_version=change.version,
            champion_family=change.family,
            champion_precision=change.held_out_precision,
            champion_precision_low=change.held_out_precision_low,
            champion_precision_high=change.held_out_precision_high,
            champion_recall=change.held_out_recall,
            champion_threshold=change.threshold,
            probability_challenger_better=change.probability_better,
            training_rows=change.training_rows,
            details={},
        ),
        trained.started_at if trained else None,
    )


def last_promotion_look(conn: db.Connection, model_name: str) -> date | None:
    """The date of the last look - a run whose promote tested the champion of ``model_name``
    (``details.promotion_look_on``) - whatever became of the run: a look counts against the
    quarter's false-promotion rate once its test is made, even if a later step failed. None
    before the first."""
    cur = conn.cursor()
    cur.execute(
        "SELECT max((details->>'promotion_look_on')::date) FROM water.pipeline_runs "
        "WHERE model_name = %s AND details ? 'promotion_look_on'",
        (model_name,),
    )
    row = cur.fetchone()
    return None if row is None else row[0]


def training_sample_ids(conn: db.Connection, version: str) -> list[str] | None:
    """The lab-sample ids the run that registered ``version`` trained on (sql/016), or None
    when unknown (a version trained before 016, or by a run whose split was not recorded).

    The registering run is the earliest that installed it (``first_champion`` /
    ``challenger_wins``) or registered it as a candidate an operator approved later."""
    cur = conn.cursor()
    cur.execute(
        "SELECT s.training_sample_ids FROM water.pipeline_run_samples s "
        "JOIN water.pipeline_runs r USING (run_id) "
        "WHERE (r.champion_version = %s AND r.decision IN ('first_champion', 'challenger_wins'))"
        " OR r.details->>'candidate_version' = %s "
        "ORDER BY r.started_at LIMIT 1",
        (version, version),
    )
    row = cur.fetchone()
    return None if row is None else [str(i) for i in row[0]]


def check_stale(conn: db.Connection, settings: Settings, now: datetime) -> list[alerts.Alert]:
    """Raise ``pipeline_stale`` if no run succeeded for ``ALERT_STALE_HOURS`` (or resolve it);
    commits. Returns the newly raised alerts (publish them: :func:`alerts.publish`)."""
    cur = conn.cursor()
    cur.execute(
        "SELECT max(finished_at) FILTER (WHERE status = 'succeeded'), min(started_at) "
        "FROM water.pipeline_runs"
    )
    last_success, first_run = cur.fetchone()
    champion = current_champion(conn)
    alert = alerts.stale(
        last_success,
        first_run,
        now,
        settings.alert_stale_hours,
        champion.version if champion else None,
    )
    try:
        raised = alerts.sync(conn, alerts.PIPELINE_STALE, [alert] if alert else [], now)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return raised


# --- writers ---------------------------------------------------------------------------------


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
    with closing(db.connect(settings)) as conn:
        try:
            alerts.publish(settings, check_stale(conn, settings, datetime.now(UTC)))
        except Exception:  # a check must not stop the run it precedes
            log.exception("stale-run check failed")
        conn.cursor().execute(
            "INSERT INTO water.pipeline_runs (run_id, status, data_sha256, training_rows) "
            "VALUES (%s, 'running', %s, %s) ON CONFLICT (run_id) DO UPDATE SET "
            "status = 'running', data_sha256 = EXCLUDED.data_sha256, "
            "training_rows = EXCLUDED.training_rows, error = NULL, finished_at = NULL",
            (run_id, data_sha256, rows),
        )
        conn.commit()


def record_decision(
    settings: Settings, run_id: str, values: Mapping[str, Any], details: Mapping[str, Any]
) -> None:
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
    with closing(db.connect(settings)) as conn:
        cur = conn.cursor()
        cur.execute(
            "INSERT INTO water.pipeline_runs (run_id, status) VALUES (%s, 'running') "
            "ON CONFLICT (run_id) DO NOTHING",
            (run_id,),
        )
        cur.execute(
            f"UPDATE water.pipeline_runs SET {assignments}, details = %s::jsonb WHERE run_id = %s",
            [values[n] for n in names] + [json.dumps(dict(details)), run_id],
        )
        conn.commit()


def record_tested_samples(settings: Settings, sample_ids: Iterable[str], at: datetime) -> None:
    """Record that a promotion test used these lab samples (sql/017): quality control leaves
    them out of the champion's fresh-sample precision, which must rest on rows no test saw."""
    ids = sorted({str(i) for i in sample_ids})
    if not ids:
        return
    with closing(db.connect(settings)) as conn:
        conn.cursor().execute(
            "INSERT INTO water.promotion_tested_samples (sample_id, first_tested_at, "
            "last_tested_at, tests) SELECT unnest(%s::text[]), %s, %s, 1 "
            "ON CONFLICT (sample_id) DO UPDATE SET tests = promotion_tested_samples.tests + 1, "
            "last_tested_at = greatest(promotion_tested_samples.last_tested_at, "
            "EXCLUDED.last_tested_at)",
            (ids, at, at),
        )
        conn.commit()


def record_split(
    settings: Settings,
    run_id: str,
    seed: int,
    test_fraction: float,
    training_ids: Iterable[str],
    held_out_ids: Iterable[str],
) -> None:
    """Record which lab samples the run trained on and held out (train step; sql/016); a
    retried train step replaces its own record."""
    with closing(db.connect(settings)) as conn:
        cur = conn.cursor()
        cur.execute(
            "INSERT INTO water.pipeline_run_samples (run_id, split_seed, test_fraction, "
            "training_sample_ids, held_out_sample_ids) VALUES (%s, %s, %s, %s::text[], "
            "%s::text[]) ON CONFLICT (run_id) DO UPDATE SET split_seed = EXCLUDED.split_seed, "
            "test_fraction = EXCLUDED.test_fraction, "
            "training_sample_ids = EXCLUDED.training_sample_ids, "
            "held_out_sample_ids = EXCLUDED.held_out_sample_ids, recorded_at = now()",
            (
                run_id,
                int(seed),
                float(test_fraction),
                [str(i) for i in training_ids],
                [str(i) for i in held_out_ids],
            ),
        )
        conn.commit()


def finish_run(settings: Settings, run_id: str) -> None:
    """Mark the run ``succeeded`` (deploy's last act); a success resolves the open
    ``pipeline_run_failed`` and ``pipeline_stale`` alerts, and what it changed - a promotion,
    a candidate, a challenger a hold blocked - goes into the model-change record in the same
    transaction (:func:`potability.governance.model_changes.record_run_outcome`)."""
    with closing(db.connect(settings)) as conn:
        cur = conn.cursor()
        cur.execute(
            "UPDATE water.pipeline_runs SET status = 'succeeded', finished_at = now(), "
            "error = NULL WHERE run_id = %s RETURNING finished_at",
            (run_id,),
        )
        finished = cur.fetchone()[0]
        for event in (alerts.PIPELINE_RUN_FAILED, alerts.PIPELINE_STALE):
            alerts.resolve(conn, event, None, finished)
        run = find_run(conn, run_id)
        raised = model_changes.record_run_outcome(conn, run, finished) if run else []
        conn.commit()
    alerts.publish(settings, raised, finished)


def mark_failed(settings: Settings, run_id: str, error: str) -> Mapping[str, Any]:
    """Record the run as ``failed`` with ``error`` and raise the ``pipeline_run_failed`` alert
    (once per run, however many steps report it). Returns the run's details, with which the
    caller undoes an alias move made by this run (:func:`components.runtime.record_failure`).

    Also asks whether runs have gone stale (:func:`check_stale`, from the last success): a run
    that fails every day must become ``pipeline_stale`` too, and the export - the other place
    that asks - is not reached when an earlier failure stops the run.

    When the database itself is what failed, the alert is still delivered (its log line is
    what Cloud Monitoring alerts on; the webhook too), just not recorded; the database's
    error is re-raised so the step still fails.

    Args:
        settings: where the database is (and the alert settings).
        run_id: the pipeline job name.
        error: what failed (step and message), kept short.
    """
    try:
        return _mark_failed(settings, run_id, error)
    except db.DatabaseUnavailable as exc:
        when = datetime.now(UTC)
        alert = alerts.pipeline_failed(
            run_id, f"{error} (not recorded: the database is unavailable: {exc})", None
        )
        alerts.publish(settings, [alert], when)
        raise


def _mark_failed(settings: Settings, run_id: str, error: str) -> Mapping[str, Any]:
    with closing(db.connect(settings)) as conn:
        cur = conn.cursor()
        cur.execute(
            "INSERT INTO water.pipeline_runs (run_id, status, error, finished_at) "
            "VALUES (%s, 'failed', %s, now()) ON CONFLICT (run_id) DO UPDATE SET "
            "status = 'failed', error = EXCLUDED.error, finished_at = now() "
            "RETURNING details",
            (run_id, error[:2000]),
        )
        details = cur.fetchone()[0] or {}
        champion = current_champion(conn)
        alert = alerts.pipeline_failed(run_id, error, champion.version if champion else None)
        when = datetime.now(UTC)
        raised = [alert] if alerts.insert(conn, alert, when) else []
        conn.commit()
        try:
            raised += check_stale(conn, settings, when)
        except Exception:  # the failure itself is recorded; this is extra
            log.exception("stale-run check failed")
    alerts.publish(settings, raised, when)
    return json.loads(details) if isinstance(details, str) else details
