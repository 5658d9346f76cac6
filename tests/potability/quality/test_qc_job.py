"""Quality control's drift in bounded memory: the window's readings are binned by the database
(width_bucket on the reference's edges, NULL into the missing bin) and the result equals the
row-based PSI of :mod:`potability.quality.drift` on the same rows - edges, ties, NULLs and values
outside the reference's range included."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from potability import db

from potability.quality import drift, qc_job
from potability.features import FEATURE_COLUMNS, FEATURE_NAMES

UTC = timezone.utc
END = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
START = END - timedelta(days=7)


def _insert_recent(conn: db.Connection, rows: list[list[float | None]],
                   when: datetime) -> None:
    cur = conn.cursor()
    cols = ", ".join(FEATURE_COLUMNS)
    marks = ", ".join(["%s"] * len(FEATURE_COLUMNS))
    prefix = f"qc-{uuid.uuid4().hex[:8]}-"
    for k, row in enumerate(rows):
        cur.execute(
            f"INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, {cols}, "
            "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
            f"latency_ms) VALUES (%s, 0, 'qc-1', {marks}, 1, 0.5, 'm', '3', 'local', %s, 1)",
            (prefix + str(k), *row, when),
        )
    conn.commit()


def _value(rng: random.Random, choices: list[float]) -> float | None:
    roll = rng.random()
    if roll < 0.15:
        return None
    if roll < 0.6:
        return rng.choice(choices)  # exactly on a reference value: edges and ties
    return round(rng.uniform(min(choices) * 0.5, min(max(choices) * 1.5, 14.0)), 3)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_drift_from_sql_histograms_equals_the_row_based_psi(clean_db: db.Connection,
                                                            seed: int) -> None:
    rng = random.Random(seed)
    grids = {name: sorted({round(rng.uniform(1, 12), 2) for _ in range(8)})
             for name in FEATURE_NAMES}
    grids[FEATURE_NAMES[1]] = [5.0]  # a constant feature: no interior edges at all
    reference = {name: [_value(rng, grid) for _ in range(400)] for name, grid in grids.items()}
    recent_rows = [[_value(rng, grids[name]) for name in FEATURE_NAMES] for _ in range(300)]
    _insert_recent(clean_db, recent_rows, END - timedelta(hours=3))
    _insert_recent(clean_db, recent_rows[:40], START - timedelta(seconds=1))  # outside: ignored
    recent = {name: [r[k] for r in recent_rows] for k, name in enumerate(FEATURE_NAMES)}

    from_sql = qc_job.drift_report(clean_db, reference, START, END)
    from_rows = drift.drift_report(reference, recent)
    clean_db.rollback()

    assert [d.feature for d in from_sql] == list(FEATURE_NAMES)
    for sql_row, row in zip(from_sql, from_rows):
        assert sql_row.psi == pytest.approx(row.psi, rel=1e-12, abs=1e-15)
        assert (sql_row.status, sql_row.recent_rows, sql_row.reference_rows) == (
            row.status, row.recent_rows, row.reference_rows)
        assert sql_row.recent_null_share == pytest.approx(row.recent_null_share)
        assert sql_row.reference_null_share == row.reference_null_share


def test_an_empty_window_has_no_psi(clean_db: db.Connection) -> None:
    reference = {name: [1.0, 2.0, 3.0, None] for name in FEATURE_NAMES}
    result = qc_job.drift_report(clean_db, reference, START, END)
    clean_db.rollback()
    assert {(d.psi, d.status, d.recent_rows) for d in result} == {
        (None, drift.INSUFFICIENT, 0)}


def test_the_drift_reference_is_the_champions_training_rows(runs_db) -> None:
    """Not its held-out rows (sql/016); a champion trained before the split was recorded falls
    back to the rows created before its run, and no champion to all rows."""
    from potability.governance import run_record

    conn = db.connect(runs_db)
    try:
        cur = conn.cursor()
        ids = []
        for k in range(10):
            when = END - timedelta(days=30 - k)
            cur.execute("INSERT INTO water.water_potability (sample_id, ph, potability, source, submitted_by, "
                        "created_at, sampled_at) VALUES (%s, %s, %s, 'seed', 'test', %s, %s) "
                        "RETURNING sample_id", (f"ref-{k}", float(k), k % 2, when, when))
            ids.append(cur.fetchone()[0])
        conn.commit()
        assert qc_job.load_reference(conn, None)[0] == qc_job.REFERENCE_ALL_ROWS

        run_record.start_run(runs_db, "ref-1", "ab" * 32, 8)
        run_record.record_decision(runs_db, "ref-1", {"decision": "first_champion",
                                                      "champion_version": "1"}, {})
        run_record.finish_run(runs_db, "ref-1")
        cur.execute("UPDATE water.pipeline_runs SET started_at = %s WHERE run_id = 'ref-1'",
                    (END - timedelta(days=30 - 7, hours=-1),))  # after rows 0-7 were created
        conn.commit()
        champion = run_record.current_champion(conn)
        kind, rows = qc_job.load_reference(conn, champion)  # no split recorded: before 016
        assert kind == qc_job.REFERENCE_ROWS_BEFORE_TRAINING and rows["ph"] == [float(k) for k in range(8)]

        run_record.record_split(runs_db, "ref-1", 42, 0.25, ids[:6], ids[6:8])
        kind, rows = qc_job.load_reference(conn, champion)
        assert kind == qc_job.REFERENCE_TRAINING_ROWS
        assert sorted(rows["ph"]) == [float(k) for k in range(6)]  # held-out 6, 7 left out
    finally:
        conn.close()
