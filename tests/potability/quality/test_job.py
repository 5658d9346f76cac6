"""Quality control's drift in bounded time and memory: the window's readings come from the
hourly drift cells (sql/015) where the rollup has them and from the raw rows elsewhere, and the
result equals the row-based PSI on the same grid (:func:`potability.quality.drift.
drift_report_on_grid`) on the same rows - whatever is rolled up, hours rolled before sql/015
included, with edges, ties, cell boundaries, NULLs and values outside the reference's range."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from potability import db
from potability.features import FEATURE_COLUMNS, FEATURE_NAMES, FEATURES
from potability.inference import rollup as inference_rollup
from potability.quality import drift
from potability.quality import job as qc_job

UTC = UTC
END = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
START = END - timedelta(days=7)


def _insert_recent(conn: db.Connection, rows: list[list[float | None]], when: datetime) -> None:
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


def _value(rng: random.Random, choices: list[float], k: int) -> float | None:
    roll = rng.random()
    spec = FEATURES[k]
    if roll < 0.15:
        return None
    if roll < 0.5:
        return rng.choice(choices)  # exactly on a reference value: edges and ties
    if roll < 0.65:  # exactly on a cell boundary of the grid, or a hair either side of it
        cell = rng.randrange(drift.GRID_CELLS)
        edge = spec.minimum + cell * (spec.maximum - spec.minimum) / drift.GRID_CELLS
        return min(spec.maximum, max(spec.minimum, edge * rng.choice([1.0, 1 - 1e-15, 1 + 1e-15])))
    return round(rng.uniform(min(choices) * 0.5, min(max(choices) * 1.5, 14.0)), 3)


def _roll_some(conn: db.Connection, rng: random.Random) -> None:
    """Roll up a random part of the window: some hours with cells, some with counts only (as
    the status page leaves them, or rolled before sql/015), the rest not at all."""
    hour = inference_rollup.HOUR
    cur = conn.cursor()
    for function in ("roll_up_inference_hours", "roll_up_inference_cells"):
        for _ in range(rng.randrange(1, 4)):
            lo = inference_rollup.floor_hour(START) + rng.randrange(0, 170) * hour
            cur.execute(f"SELECT water.{function}(%s, %s)", (lo, lo + rng.randrange(1, 60) * hour))
    conn.commit()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_drift_from_hourly_cells_equals_the_row_based_psi(
    clean_db: db.Connection, seed: int
) -> None:
    rng = random.Random(seed)
    grids = {
        name: sorted({round(rng.uniform(1, 12), 2) for _ in range(8)}) for name in FEATURE_NAMES
    }
    grids[FEATURE_NAMES[1]] = [5.0]  # a constant feature: no interior edges at all
    reference = {
        name: [_value(rng, grid, k) for _ in range(400)]
        for k, (name, grid) in enumerate(grids.items())
    }
    recent_rows = [
        [_value(rng, grids[name], k) for k, name in enumerate(FEATURE_NAMES)] for _ in range(300)
    ]
    # spread over the window, the boundary hours and instants included
    moments = [
        START + timedelta(seconds=rng.choice([1, 3599, 3600, rng.randrange(7 * 86400)]))
        for _ in recent_rows[:-2]
    ] + [END, END - timedelta(microseconds=1)]
    for row, when in zip(recent_rows, moments, strict=False):
        _insert_recent(clean_db, [row], when)
    _insert_recent(clean_db, recent_rows[:40], START)  # outside (start, end]: ignored
    _insert_recent(clean_db, recent_rows[:10], END + timedelta(microseconds=1))
    _roll_some(clean_db, rng)
    recent = {name: [r[k] for r in recent_rows] for k, name in enumerate(FEATURE_NAMES)}

    from_cells = qc_job.drift_report(clean_db, reference, START, END)
    from_rows = drift.drift_report_on_grid(reference, recent)
    clean_db.rollback()

    assert [d.feature for d in from_cells] == list(FEATURE_NAMES)
    for cells_row, row in zip(from_cells, from_rows, strict=False):
        assert cells_row == row  # every figure, exactly


def test_sql_and_python_put_a_value_in_the_same_cell(conn: db.Connection) -> None:
    """water.drift_cell (sql/015) and drift.cells_of agree on every feature's grid, on and
    around cell boundaries and outside the range (clamped)."""
    rng = random.Random(7)
    cur = conn.cursor()
    for spec in FEATURES:
        width = (spec.maximum - spec.minimum) / drift.GRID_CELLS
        values = [
            spec.minimum + c * width * f
            for c in rng.sample(range(drift.GRID_CELLS), 200)
            for f in (1.0, 1 - 1e-15, 1 + 1e-15)
        ]
        values += [spec.minimum, spec.maximum, spec.minimum - 1, spec.maximum + 1]
        values += [rng.uniform(spec.minimum, spec.maximum) for _ in range(300)]
        cur.execute(
            "SELECT water.drift_cell(v, %s, %s) FROM unnest(%s::float8[]) "
            "WITH ORDINALITY AS u(v, n) ORDER BY n",
            (spec.minimum, spec.maximum, values),
        )
        in_sql = [row[0] for row in cur.fetchall()]
        assert in_sql == drift.cells_of(spec.name, values).tolist(), spec.name
    cur.execute("SELECT water.drift_cell(NULL, 0, 14)")
    assert cur.fetchone()[0] == drift.MISSING_CELL


def test_an_empty_window_has_no_psi(clean_db: db.Connection) -> None:
    reference = {name: [1.0, 2.0, 3.0, None] for name in FEATURE_NAMES}
    result = qc_job.drift_report(clean_db, reference, START, END)
    clean_db.rollback()
    assert {(d.psi, d.status, d.recent_rows) for d in result} == {(None, drift.INSUFFICIENT, 0)}


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
            cur.execute(
                "INSERT INTO water.water_potability "
                "(sample_id, ph, potability, source, submitted_by, "
                "created_at, sampled_at) VALUES (%s, %s, %s, 'seed', 'test', %s, %s) "
                "RETURNING sample_id",
                (f"ref-{k}", float(k), k % 2, when, when),
            )
            ids.append(cur.fetchone()[0])
        conn.commit()
        assert qc_job.load_reference(conn, None)[0] == qc_job.REFERENCE_ALL_ROWS

        run_record.start_run(runs_db, "ref-1", "ab" * 32, 8)
        run_record.record_decision(
            runs_db, "ref-1", {"decision": "first_champion", "champion_version": "1"}, {}
        )
        run_record.finish_run(runs_db, "ref-1")
        cur.execute(
            "UPDATE water.pipeline_runs SET started_at = %s WHERE run_id = 'ref-1'",
            (END - timedelta(days=30 - 7, hours=-1),),
        )  # after rows 0-7 were created
        conn.commit()
        champion = run_record.current_champion(conn)
        kind, rows = qc_job.load_reference(conn, champion)  # no split recorded: before 016
        assert kind == qc_job.REFERENCE_ROWS_BEFORE_TRAINING and rows["ph"] == [
            float(k) for k in range(8)
        ]

        run_record.record_split(runs_db, "ref-1", 42, 0.25, ids[:6], ids[6:8])
        kind, rows = qc_job.load_reference(conn, champion)
        assert kind == qc_job.REFERENCE_TRAINING_ROWS
        assert sorted(rows["ph"]) == [float(k) for k in range(6)]  # held-out 6, 7 left out
    finally:
        conn.close()


def test_fresh_lab_samples_leave_out_older_and_tested_ones_and_the_run_keeps_the_figure(
    runs_db,
) -> None:
    """sql/017: lab samples received after the champion's run started and never used by a
    promotion test; the QC run stores the champion's fresh figure and reads it back."""
    from potability.governance import run_record
    from potability.quality import live_precision
    from potability.quality import record as qc_record

    since = END - timedelta(days=10)
    conn = db.connect(runs_db)
    try:
        cur = conn.cursor()
        ids = {}
        for name, created in (
            ("old", since - timedelta(hours=1)),
            ("new", since + timedelta(hours=1)),
            ("tested", since + timedelta(hours=2)),
            ("seed", since + timedelta(hours=3)),
        ):
            cur.execute(
                "INSERT INTO water.water_potability (sample_id, ph, potability, source, "
                "submitted_by, created_at, sampled_at) VALUES (%s, 7, 1, %s, 'lab-1', %s, %s) "
                "RETURNING id",
                (f"fresh-{name}", "seed" if name == "seed" else "lab", created, created),
            )
            ids[name] = cur.fetchone()[0]
        conn.commit()
        run_record.record_tested_samples(runs_db, ["fresh-tested"], END)
        assert qc_job.fresh_lab_samples(conn, since) == {ids["new"]}

        fresh = live_precision.FreshPrecision("4", since, 25, 20, 0.59, 0.93, True)
        run_id = qc_record.store_run(
            conn, qc_record.QcSettings(30.0, 0.6, 20), END, START, 4, 0, [], [], "4", fresh
        )
        conn.commit()
        stored = qc_record.latest_run(conn)
        assert stored.run_id == run_id and stored.fresh == fresh
    finally:
        conn.close()


def test_the_change_test_counts_days_from_the_cells_and_alerts_on_a_shift(
    clean_db: db.Connection,
) -> None:
    """Issue 31: 20 days of 150 readings a day like the training data, then two days in which
    pH moved 0.8 training sd and turbidity went mostly missing: those two are ``drift``, the
    other seven keep the window's verdict; the days come from the hourly cells (half of them
    rolled up) and the raw rows."""
    rng = random.Random(11)

    def value(spec: object, shift: float = 0.0) -> float:
        lo, hi = spec.minimum, spec.maximum  # type: ignore[attr-defined]
        return min(
            hi, max(lo, rng.gauss(lo + (hi - lo) * 0.3 + shift * (hi - lo) / 50, (hi - lo) / 50))
        )

    reference = {
        spec.name: [None if rng.random() < 0.1 else value(spec) for _ in range(600)]
        for spec in FEATURES
    }
    ph, turbidity = FEATURE_NAMES.index("ph"), FEATURE_NAMES.index("Turbidity")
    for day in range(22):
        recent = day < 2
        rows = []
        for _ in range(150):
            row: list[float | None] = [
                value(spec, 0.8 if recent and k == ph else 0.0) for k, spec in enumerate(FEATURES)
            ]
            missing = 0.9 if recent else 0.1
            row = [
                None if rng.random() < (missing if k == turbidity else 0.1) else v
                for k, v in enumerate(row)
            ]
            rows.append(row)
        _insert_recent(clean_db, rows, END - timedelta(days=day, hours=12))
    cur = clean_db.cursor()
    cur.execute(
        "SELECT water.roll_up_inference_hours(%s, %s)",
        (END - timedelta(days=22), END - timedelta(days=11)),
    )
    cur.execute(
        "SELECT water.roll_up_inference_cells(%s, %s)",
        (END - timedelta(days=22), END - timedelta(days=11)),
    )
    clean_db.commit()

    result = {d.feature: d for d in qc_job.drift_report(clean_db, reference, START, END)}
    clean_db.rollback()

    assert result["ph"].status == drift.DRIFT and result["ph"].change > 1
    assert result["Turbidity"].status == drift.DRIFT and result["Turbidity"].change > 1
    for name in set(FEATURE_NAMES) - {"ph", "Turbidity"}:
        assert result[name].status != drift.DRIFT and result[name].change < 1, name
        assert result[name].baseline_days == 20  # every baseline day with readings counted
