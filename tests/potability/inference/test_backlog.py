"""A backlog in the DEFAULT partition drains in bounded batches across runs (issue 29).

A few hundred thousand readings of five days with no partition (an outage of the maintenance
schedule, a restore, a bulk import) land in DEFAULT. A real maintenance process is SIGKILLed
in the middle of the drain; the next run finishes it. Per day, the count and a checksum of the
rows (every column, in id order) are the same before and after, no id appears twice, and the
DEFAULT partition is empty."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from potability import db
from potability.config import Settings
from potability.inference import log as inference_log

ROOT = Path(__file__).resolve().parents[3]
DAYS = 5
PER_DAY = 60_000
BATCH = 25_000


@pytest.fixture
def log_conn(runs_db: Settings) -> Iterator[db.Connection]:
    conn = db.connect(runs_db)
    yield conn
    conn.rollback()
    conn.close()


def _fill_default(conn: db.Connection, first: date) -> None:
    """PER_DAY readings on each of DAYS days from ``first`` (no partition: all in DEFAULT)."""
    cur = conn.cursor()
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    cur.execute(
        "INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, ph, solids, "
        "predicted_class, probability, model_name, model_version, endpoint, inferred_at, "
        "latency_ms) SELECT 'bulk-' || d || '-' || n, 0, 's' || (n %% 50), (n %% 140) / 10.0, "
        "CASE WHEN n %% 1000 = 0 THEN 5e-324 ELSE n %% 100000 END, n %% 2, 0.5, 'm', '7', 'e', "
        "%s::timestamptz + d * interval '1 day' "
        "+ (n * 86399.0 / %s::float8) * interval '1 second', 1.0 "
        "FROM generate_series(0, %s) d, generate_series(0, %s) n",
        (start, PER_DAY, DAYS - 1, PER_DAY - 1),
    )
    conn.commit()


def _per_day(conn: db.Connection) -> dict[date, tuple[int, str]]:
    """(count, md5 of every row's text in id order) per UTC day, over the whole log."""
    cur = conn.cursor()
    cur.execute(
        "SELECT (inferred_at AT TIME ZONE 'UTC')::date, count(*), "
        "md5(string_agg(w::text, '|' ORDER BY id)) FROM water.water_inferences w GROUP BY 1"
    )
    found = {r[0]: (int(r[1]), r[2]) for r in cur.fetchall()}
    conn.commit()
    return found


def _one(conn: db.Connection, sql: str) -> int:
    cur = conn.cursor()
    cur.execute(sql)
    value = int(cur.fetchone()[0])
    conn.commit()
    return value


def test_a_default_backlog_drains_across_two_runs_with_a_kill_between(
    runs_db: Settings, log_conn: db.Connection, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    first = now.date() - timedelta(days=30)  # inside retention (90 days), no partition yet
    _fill_default(log_conn, first)
    before = _per_day(log_conn)
    days = [first + timedelta(days=k) for k in range(DAYS)]
    assert sorted(before) == days and all(n == PER_DAY for n, _ in before.values())
    assert _one(log_conn, "SELECT count(*) FROM water.water_inferences_default") == DAYS * PER_DAY

    # The first run dies after its 4th batch: day 1 (3 batches) attached, day 2 half moved.
    worker = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("maintenance_worker.py")),
            f"batch:4:{BATCH}",
        ],
        env={
            **os.environ,
            "DATABASE_URL": runs_db.database_url,
            "POTABILITY_HOME": str(tmp_path),
            "INFERENCE_ARCHIVE_URI": str(tmp_path / "archive"),
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == -9, worker.stdout + worker.stderr
    assert "dying after batch 4" in worker.stdout
    # Progress was committed: day 1 is a partition, day 2's first batch is in its table (kept,
    # not attached yet), the rest is still in DEFAULT; nothing is lost.
    assert days[0] in inference_log.partitions(log_conn)
    assert inference_log.unattached_days(log_conn) == [days[1]]
    left = _one(log_conn, "SELECT count(*) FROM water.water_inferences_default")
    table = inference_log.partition_name(days[1])
    aside = _one(log_conn, f"SELECT count(*) FROM water.{table}")
    assert aside == BATCH and left == (DAYS - 1) * PER_DAY - BATCH
    assert _one(
        log_conn, f"SELECT count(*) FROM water.{inference_log.partition_name(days[0])}"
    ) == (PER_DAY)

    report = inference_log.run_maintenance(runs_db, now=now, batch_rows=BATCH)
    assert set(days[1:]) <= set(report.created)
    assert report.moved_from_default == (DAYS - 1) * PER_DAY - BATCH  # the rest, once
    assert _one(log_conn, "SELECT count(*) FROM water.water_inferences_default") == 0
    assert inference_log.unattached_days(log_conn) == []
    assert _per_day(log_conn) == before  # counts and checksums, per day
    assert _one(log_conn, "SELECT count(*) - count(DISTINCT id) FROM water.water_inferences") == 0
    # the subnormal Solids among them rolled up too: the job recorded its success
    cur = log_conn.cursor()
    cur.execute("SELECT last_succeeded_at IS NOT NULL, failures_in_a_row FROM water.job_status")
    assert [list(r) for r in cur.fetchall()] == [[True, 0]]
