"""The quality-control job: read samples, inferences and training rows; compute; store one run.

``potability qc`` runs it (locally, or as a scheduled job on GCP). It recomputes everything
from scratch each time - lab samples arrive late and in batches, and recomputing is cheap -
and stores one run (:func:`potability.quality.record.store_run`: a ``water.qc_runs`` row with its
live-metric and drift rows) in one transaction, so the status page never sees half a run.

Memory and time stay bounded whatever the log's size: drift reads the window's per-hour
histograms on a fixed grid (sql/015, kept by the hourly rollup) and the raw rows of at most
the hours not rolled up yet (:func:`recent_bin_counts`); only the training rows (the
reference) and the inferences some lab sample can confirm are loaded.

The logic lives in :mod:`potability.quality.live_precision` (matching, live precision) and
:mod:`potability.quality.drift` (PSI); this module is only the database edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from potability import alerts
from potability.config import Settings
from potability.db import Connection
from potability.features import FEATURE_COLUMNS, FEATURE_NAMES, SMOKE_SENSOR_LIKE
from potability.governance import run_record
from potability.inference import rollup as inference_rollup
from potability.quality import drift, live_precision
from potability.quality import record as qc_record

SOCKET_TIMEOUT_SECONDS = 900.0
"""The job's connection waits this long for an answer (``db.connect``'s default is 10 s): the
rollup catch-up after a long pause (or a deploy on a full log) sends nothing until a batch of
hours is counted."""
STATEMENT_TIMEOUT_MS = 600_000
"""The longest one statement of the job may run: below the socket timeout, so the server
cancels it with a clear ``57014`` (alerted as ``qc_failed``) before the client's socket gives
up; every statement is bounded by design (a few hours of rollups, ~170 hours of cells)."""


@dataclass(frozen=True)
class QcResult:
    run_id: int
    computed_at: datetime
    lab_samples: int
    metrics: list[live_precision.LiveMetric]
    matches: list[live_precision.Match]
    drift: list[drift.FeatureDrift]
    champion_version: str | None
    alerts_raised: list[alerts.Alert]
    """Flagged precision rows and drifting features that were not already open alerts."""
    fresh: live_precision.FreshPrecision | None = None
    """The champion's precision on lab samples no promotion test used (None: no champion)."""
    drift_reference: str = ""
    """What drift was measured against (:func:`load_reference`): the champion's training
    rows, or a stand-in for a champion trained before they were recorded."""


def load_lab_samples(conn: Connection) -> tuple[int, list[live_precision.LabSample]]:
    """(number of lab samples, those with a sensor - the only ones that can be matched)."""
    cur = conn.cursor()
    cur.execute(
        "SELECT id, sensor_id, sampled_at, potability FROM water.water_potability "
        "WHERE source = 'lab' AND (sensor_id IS NULL OR sensor_id NOT LIKE %s) "
        "ORDER BY sampled_at, id",
        (SMOKE_SENSOR_LIKE,),  # the deploy smoke test's samples confirm nothing
    )
    rows = cur.fetchall()
    samples = [live_precision.LabSample(int(i), s, t, int(p)) for i, s, t, p in rows if s]
    return len(rows), samples


def fresh_lab_samples(conn: Connection, since: datetime) -> set[int]:
    """Ids of the lab samples received after ``since`` that no promotion test has used
    (sql/017): what the champion's fresh precision may count."""
    cur = conn.cursor()
    cur.execute(
        "SELECT p.id FROM water.water_potability p WHERE p.source = 'lab' "
        "AND (p.sensor_id IS NULL OR p.sensor_id NOT LIKE %s) "
        "AND p.created_at > %s AND NOT EXISTS (SELECT 1 FROM water.promotion_tested_samples t "
        "WHERE t.sample_id = p.sample_id)",
        (SMOKE_SENSOR_LIKE, since),
    )
    return {int(r[0]) for r in cur.fetchall()}


def load_candidate_inferences(
    conn: Connection, window: timedelta
) -> list[live_precision.Inference]:
    """Only the inferences the one-to-one matching can use, by indexed lookups.

    A sample can lose its nearer inferences only to other samples of its sensor that share
    them (within two windows of it); with ``k`` such samples (itself included), its ``k``
    nearest readings before and its ``k`` nearest after its ``sampled_at`` contain every
    inference it can end up with. Each is a short range scan of
    ``water_inferences_sensor_measured_idx`` (sql/013), so time and memory follow the number
    of lab samples, not the size of the inference log (a sensor reporting every second has
    3,600 readings in an hour's window; this reads at most ``2k`` of them)."""
    seconds = window.total_seconds()
    cur = conn.cursor()
    cur.execute(
        "WITH s AS ("
        " SELECT a.sensor_id, a.sampled_at, (SELECT count(*) FROM water.water_potability b"
        "  WHERE b.source = 'lab' AND b.sensor_id = a.sensor_id"
        "  AND b.sampled_at BETWEEN a.sampled_at - 2 * %s::double precision * interval '1 second'"
        "  AND a.sampled_at + 2 * %s::double precision * interval '1 second') AS k"
        " FROM water.water_potability a WHERE a.source = 'lab' AND a.sensor_id IS NOT NULL"
        "  AND a.sensor_id NOT LIKE %s), "
        "c AS ("
        " SELECT n.* FROM s CROSS JOIN LATERAL ("
        "  SELECT i.id FROM water.water_inferences i WHERE i.sensor_id = s.sensor_id"
        "  AND coalesce(i.measured_at, i.inferred_at) BETWEEN"
        "   s.sampled_at - %s::double precision * interval '1 second' AND s.sampled_at"
        "  ORDER BY coalesce(i.measured_at, i.inferred_at) DESC LIMIT s.k) n"
        " UNION"
        " SELECT n.* FROM s CROSS JOIN LATERAL ("
        "  SELECT i.id FROM water.water_inferences i WHERE i.sensor_id = s.sensor_id"
        "  AND coalesce(i.measured_at, i.inferred_at) BETWEEN"
        "   s.sampled_at AND s.sampled_at + %s::double precision * interval '1 second'"
        "  ORDER BY coalesce(i.measured_at, i.inferred_at) LIMIT s.k) n) "
        "SELECT i.id, i.sensor_id, i.inferred_at, i.predicted_class, i.model_version,"
        " i.measured_at FROM water.water_inferences i WHERE i.id IN (SELECT id FROM c)",
        (seconds, seconds, SMOKE_SENSOR_LIKE, seconds, seconds),
    )
    return [
        live_precision.Inference(int(i), s, t, int(c), str(v), m)
        for i, s, t, c, v, m in cur.fetchall()
    ]


def _columns(rows: Sequence[Sequence[float | None]]) -> dict[str, list[float | None]]:
    return {name: [r[k] for r in rows] for k, name in enumerate(FEATURE_NAMES)}


REFERENCE_TRAINING_ROWS = "champion_training_rows"
REFERENCE_ROWS_BEFORE_TRAINING = "rows_before_champion_training"
REFERENCE_ALL_ROWS = "all_rows"


def load_reference(
    conn: Connection, record: run_record.ChampionRecord | None
) -> tuple[str, dict[str, list[float | None]]]:
    """(what it is, the rows) of the drift reference: the rows the champion was trained on
    (sql/016: its run's training sample ids - not its held-out rows). For a champion trained
    before 016, every row created before its run started (held-out rows included); with no
    champion, or none predating it (a re-seeded local stack), all rows."""
    cur = conn.cursor()
    cols = ", ".join(FEATURE_COLUMNS)
    ids = run_record.training_sample_ids(conn, record.version) if record else None
    if ids:
        cur.execute(
            f"SELECT {cols} FROM water.water_potability WHERE sample_id = ANY(%s::text[])", (ids,)
        )
        rows = cur.fetchall()
        if rows:
            return REFERENCE_TRAINING_ROWS, _columns(rows)
    if record is not None and record.trained_at is not None:
        cur.execute(
            f"SELECT {cols} FROM water.water_potability WHERE created_at <= %s",
            (record.trained_at,),
        )
        rows = cur.fetchall()
        if rows:
            return REFERENCE_ROWS_BEFORE_TRAINING, _columns(rows)
    cur.execute(f"SELECT {cols} FROM water.water_potability")
    return REFERENCE_ALL_ROWS, _columns(cur.fetchall())


def recent_bin_counts(
    conn: Connection, start: datetime, end: datetime, edges: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Per feature, the inferences of ``(start, end]`` counted into the reference's bins
    (:func:`potability.quality.drift.cell_edges`): the hourly drift cells the rollup keeps,
    plus the raw rows of the hours it has not rolled up
    (:func:`potability.inference.rollup.drift_cells`). Python holds at most
    ``9 x 2001`` cell counts, never the readings; the database reads ~170 hours of cells."""
    cells = inference_rollup.drift_cells(conn, start, end)
    return {
        name: drift.counts_from_cells(cells[FEATURE_NAMES.index(name)], edges[name])
        for name in edges
    }


def drift_report(
    conn: Connection,
    reference: Mapping[str, Sequence[float | None]],
    start: datetime,
    end: datetime,
) -> list[drift.FeatureDrift]:
    """Drift of every reference feature: the reference (training rows, a few thousand) binned
    here on the drift grid, the window's inferences from the hourly cells
    (:func:`recent_bin_counts`), the decision from the counts
    (:func:`potability.quality.drift.drift_from_counts`)."""
    edges = {name: drift.cell_edges(name, values) for name, values in reference.items()}
    recent = recent_bin_counts(conn, start, end, edges)
    window = [
        drift.drift_from_counts(
            name, drift.cell_bin_counts(drift.cells_of(name, values), edges[name]), recent[name]
        )
        for name, values in reference.items()
    ]
    days = day_cells(conn, end, drift.BASELINE_DAYS + drift.RECENT_DAYS)
    out = []
    for result, (name, values) in zip(window, reference.items(), strict=True):
        measured = np.array([v for v in values if v is not None], dtype=float)
        scale = float(measured.std()) if measured.size > 1 else 0.0
        if not scale > 0:  # no spread to measure a shift in: the window's verdict stands
            out.append(result)
            continue
        index = FEATURE_NAMES.index(name)
        summaries = [
            drift.day_values(name, day[index], float(measured.mean()), scale) for day in days
        ]
        change = drift.change_test(
            summaries[: drift.BASELINE_DAYS], summaries[drift.BASELINE_DAYS :]
        )
        out.append(drift.with_change(result, change))
    return out


DAY = timedelta(days=1)


def day_cells(conn: Connection, end: datetime, days: int) -> list[dict[int, dict[int, int]]]:
    """The drift cells (:func:`potability.inference.rollup.drift_cells`) of each of the
    ``days`` 24-hour periods ending at ``end``, oldest first: what the change test counts
    per day. Each reads 24 hours of cells plus the raw rows of hours not rolled up yet - for
    30 days ~720 hours of cells, bounded whatever the traffic."""
    return [
        inference_rollup.drift_cells(conn, end - (k + 1) * DAY, end - k * DAY)
        for k in reversed(range(days))
    ]


def run(conn: Connection, settings: Settings, now: datetime) -> QcResult:
    """Compute live metrics and drift as of ``now`` and store them; commits on success.

    In the same transaction the open ``live_precision_flagged`` and ``feature_drift`` alerts
    are made to match this run: new ones are raised (then logged and sent after the commit),
    cleared ones resolved, and a re-run on the same state raises nothing.

    Recorded as a run of the ``qc`` job (:func:`potability.jobs.recorded`): a failure raises
    ``qc_failed`` with its step and error class, and the status page shows the last success.
    Every statement is bounded by :data:`STATEMENT_TIMEOUT_MS`, shorter than the socket's
    :data:`SOCKET_TIMEOUT_SECONDS`, so a slow one fails as a clear, alerted error."""
    from potability import jobs

    # the clock's time, not the run's ``now``
    with jobs.recorded(settings, jobs.QC, quarantine=inference_rollup.quarantined) as job_run:
        conn.cursor().execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        conn.commit()
        return _run(conn, settings, now, job_run)


def _run(conn: Connection, settings: Settings, now: datetime, job_run: Any) -> QcResult:
    window = timedelta(minutes=settings.qc_match_window_minutes)
    # keep the status page's hourly rollups complete for a week even when nobody looked at
    # the page (each hour its own short transaction: see inference_rollup.catch_up)
    with job_run.step("rollups"):
        inference_rollup.catch_up(conn, now, job="qc")
    job_run.current = "compute"
    try:
        lab_count, samples = load_lab_samples(conn)
        matches = live_precision.match_samples(
            samples, load_candidate_inferences(conn, window), window
        )
        metrics = live_precision.live_metrics(
            matches,
            settings.qc_precision_floor,
            settings.qc_precision_expected,
            settings.qc_alarm_limit,
        )
        record = run_record.current_champion(conn)
        champion = record.version if record else None
        fresh = None
        if record is not None and record.trained_at is not None:
            fresh = live_precision.fresh_precision(
                matches,
                record.version,
                record.trained_at,
                fresh_lab_samples(conn, record.trained_at),
                settings.qc_min_matches,
            )
        start = now - timedelta(days=settings.qc_drift_window_days)
        reference_kind, reference = load_reference(conn, record)
        drifts = (
            drift_report(conn, reference, start, now)
            if reference[FEATURE_NAMES[0]]
            else []  # nothing to compare with yet
        )
        run_id = qc_record.store_run(
            conn,
            qc_record.QcSettings(
                settings.qc_match_window_minutes,
                settings.qc_precision_floor,
                settings.qc_min_matches,
            ),
            now,
            start,
            lab_count,
            len(matches),
            metrics,
            drifts,
            champion,
            fresh,
        )
        raised = alerts.sync(
            conn,
            alerts.LIVE_PRECISION_FLAGGED,
            alerts.flagged_precision(metrics, settings.qc_precision_floor),
            now,
        )
        raised += alerts.sync(
            conn, alerts.FEATURE_DRIFT, alerts.drifting_features(drifts, champion), now
        )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    alerts.publish(settings, raised, now)
    return QcResult(
        run_id,
        now,
        lab_count,
        metrics,
        matches,
        drifts,
        champion,
        raised,
        fresh=fresh,
        drift_reference=reference_kind,
    )
