"""The partitioned inference log (sql/008) and its maintenance (potability/inference/log.py), on
the real embedded PostgreSQL. Tests that create or drop partitions use a database of their own
(``log_db``): the session database's partitions are shared by every other test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from potability import db, migrations
from potability.config import Settings
from potability.features import FEATURE_COLUMNS
from potability.inference import (
    archive as inference_archive,
)
from potability.inference import (
    log as inference_log,
)
from potability.inference import (
    rollup as inference_rollup,
)

ROOT = Path(__file__).resolve().parents[3]
COLS = ", ".join(FEATURE_COLUMNS)
WRITE = "SELECT water.log_inferences(%s, %s, %s, 'water-potability', 'test', 1.5, %s)"


def _reading_rows(n: int, version: str = "7") -> str:
    return json.dumps(
        [
            {
                "reading_index": i,
                "ph": 7.0 + i / 10,
                "sulfate": None,
                "predicted_class": i % 2,
                "probability": 0.25 + i / 100,
                "model_version": version,
            }
            for i in range(n)
        ]
    )


@pytest.fixture
def log_db(runs_db: Settings) -> Settings:
    """A migrated database of its own (tests/conftest.py ``runs_db``): partitions are created
    and dropped here without touching the session's shared database."""
    return runs_db


@pytest.fixture
def log_conn(log_db: Settings) -> Iterator[db.Connection]:
    conn = db.connect(log_db)
    yield conn
    conn.rollback()
    conn.close()


def _all(conn: db.Connection, sql: str, *args: Any) -> list[list[Any]]:
    cur = conn.cursor()
    cur.execute(sql, args)
    rows = cur.fetchall()
    conn.commit()
    return [list(r) for r in rows]


def _insert_at(conn: db.Connection, when: datetime, request_id: str, n: int = 3) -> None:
    """Readings with an explicit inferred_at (what the writer cannot fake: its now())."""
    cur = conn.cursor()
    for i in range(n):
        cur.execute(
            "INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, ph, "
            "predicted_class, probability, model_name, model_version, endpoint, "
            "inferred_at, latency_ms) VALUES (%s, %s, 's1', %s, 1, 0.75, 'm', '7', 'e', "
            "%s, 2.5)",
            (request_id, i, 6.5 + i % 7, when + timedelta(seconds=i)),
        )
    conn.commit()


def _where(conn: db.Connection, request_id: str) -> list[str]:
    return [
        r[0]
        for r in _all(
            conn,
            "SELECT tableoid::regclass::text FROM water.water_inferences WHERE request_id = %s",
            request_id,
        )
    ]


# --- conversion --------------------------------------------------------------------------


def test_conversion_keeps_every_row_id_sequence_comment_grant_and_key(fresh_db_upto_007) -> None:
    url, sql_dir = fresh_db_upto_007
    conn = db.connect(Settings(database_url=url))
    try:
        now = datetime.now(UTC)
        cur = conn.cursor()
        # The old writer (sql/003), as predict used it, today and a retry-able key ...
        cur.execute(
            "SELECT water.log_inferences('old-1', 's1', 'water-potability', 'e', 3.0, %s)",
            (_reading_rows(4),),
        )
        conn.commit()
        # ... and readings of earlier days (inferred_at set explicitly).
        _insert_at(conn, now - timedelta(days=3), "old-2")
        _insert_at(conn, now - timedelta(days=40), "old-3", n=2)
        cur.execute("COMMENT ON COLUMN water.water_inferences.latency_ms IS 'endpoint time'")
        conn.commit()
        before = _all(
            conn,
            f"SELECT id, request_id, reading_index, {COLS}, probability, "
            "inferred_at FROM water.water_inferences ORDER BY id",
        )
        [[last_id]] = _all(conn, "SELECT last_value FROM water.water_inferences_id_seq")

        applied = migrations.migrate(conn).applied
        assert "008" in applied

        after = _all(
            conn,
            f"SELECT id, request_id, reading_index, {COLS}, probability, "
            "inferred_at FROM water.water_inferences ORDER BY id",
        )
        assert after == before and len(after) == 9
        assert _all(
            conn,
            "SELECT relkind::text FROM pg_class WHERE oid = 'water.water_inferences'::regclass",
        ) == [["p"]]
        # Every row in its day's partition, none left in DEFAULT; partitions a week ahead.
        assert _all(conn, "SELECT count(*) FROM water.water_inferences_default") == [[0]]
        days = set(inference_log.partitions(conn))
        today = now.date()
        assert {today - timedelta(days=3), today - timedelta(days=40)} <= days
        assert {today + timedelta(days=k) for k in range(8)} <= days
        assert (
            _where(conn, "old-3")
            == ["water." + inference_log.partition_name((now - timedelta(days=40)).date())] * 2
        )
        # Comments (001's and a later one) and the caller column.
        assert _all(conn, "SELECT obj_description('water.water_inferences'::regclass)")[0][
            0
        ].startswith("Every inference answered")
        assert _all(
            conn,
            "SELECT d.description FROM pg_description d JOIN pg_attribute a ON "
            "a.attrelid = d.objoid AND a.attnum = d.objsubid WHERE d.objoid = "
            "'water.water_inferences'::regclass AND a.attname = 'latency_ms'",
        ) == [["endpoint time"]]
        assert _all(conn, "SELECT DISTINCT caller FROM water.water_inferences") == [[""]]
        # Grants of sql/005 on the parent; through it, every partition (also one made later).
        for role, privilege, granted in [
            ("water_predict", "INSERT", True),
            ("water_predict", "SELECT", True),
            ("water_status", "SELECT", True),
            ("water_pipelines", "SELECT", True),
            ("water_samples", "SELECT", False),
            ("water_predict", "DELETE", False),
        ]:
            assert _all(
                conn,
                "SELECT has_table_privilege(%s, 'water.water_inferences', %s)",
                role,
                privilege,
            ) == [[granted]], (role, privilege)
        # The key of today's request came along: a retry after the upgrade is recognised.
        assert _all(
            conn, "SELECT caller, readings FROM water.inference_requests WHERE request_id = 'old-1'"
        ) == [["", 4]]
        cur = conn.cursor()
        cur.execute("SET ROLE water_predict")
        cur.execute(
            "SELECT water.log_inferences('', 'old-1', 's1', 'm', 'e', 1.0, %s)", (_reading_rows(4),)
        )
        assert list(cur.fetchall()) == []
        cur.execute("SELECT reading_index, model_version FROM water.logged_inferences('', 'old-1')")
        assert [list(r) for r in cur.fetchall()] == [[i, "7"] for i in range(4)]
        # New writes as water_predict: the id sequence continues, one statement, all rows.
        cur.execute(
            "SELECT water.log_inferences('', 'new-1', 's1', 'm', 'e', 1.0, %s)", (_reading_rows(2),)
        )
        assert sorted(r[0] for r in cur.fetchall()) == [0, 1]
        cur.execute("SELECT min(id) FROM water.water_inferences WHERE request_id = 'new-1'")
        assert cur.fetchone()[0] > last_id
        cur.execute("SELECT count(*) FROM water.water_inferences")  # status/pipelines read too
        conn.commit()
        cur.execute("RESET ROLE")
        conn.commit()
        assert migrations.migrate(conn).applied == []
    finally:
        conn.close()


@pytest.fixture
def fresh_db_upto_007(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A database migrated up to 007 (the unpartitioned log), for the conversion."""
    name = f"conv_{uuid.uuid4().hex[:10]}"
    admin = db.connect(Settings(database_url=database_url))
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    old = tmp_path / "sql"
    old.mkdir()
    for path in sorted(migrations.SQL_DIR.glob("*.sql")):
        if path.name < "008":
            shutil.copy(path, old / path.name)
    url = db.with_database(database_url, name)
    try:
        conn = db.connect(Settings(database_url=url))
        try:
            migrations.migrate(conn, sql_dir=old)
        finally:
            conn.close()
        yield url, old
    finally:
        admin.cursor().execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


# --- partitions ahead, DEFAULT, maintenance ------------------------------------------------


def test_partitions_ahead_and_a_reading_without_a_partition_is_stored_then_moved(
    log_db: Settings, log_conn: db.Connection
) -> None:
    now = datetime.now(UTC)
    today = now.date()
    days = inference_log.partitions(log_conn)
    assert {today + timedelta(days=k) for k in range(inference_log.DAYS_AHEAD + 1)} <= set(days)
    far = now + timedelta(days=30)  # no partition that day: DEFAULT stores it, nothing refused
    _insert_at(log_conn, far, "far")
    assert _where(log_conn, "far") == ["water.water_inferences_default"] * 3
    report = inference_log.run_maintenance(log_db, now=now)
    assert far.date() in report.created and report.moved_from_default == 3
    assert _where(log_conn, "far") == [f"water.{inference_log.partition_name(far.date())}"] * 3
    assert _all(log_conn, "SELECT count(*) FROM water.water_inferences_default") == [[0]]
    # The moved partition has the parent's indexes, and is owned by water_owner.
    assert _all(
        log_conn,
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'water' AND tablename = %s",
        inference_log.partition_name(far.date()),
    ) == _all(
        log_conn,
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'water' AND "
        "tablename = 'water_inferences'",
    )
    assert _all(
        log_conn,
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass",
        f"water.{inference_log.partition_name(far.date())}",
    ) == [["water_owner"]]
    # A move is not a deletion: a row trigger on the log (rollups, say) sees nothing of it.
    cur = log_conn.cursor()
    cur.execute("SET ROLE water_owner")
    cur.execute("CREATE TABLE water.t_seen (op text)")
    cur.execute(
        "CREATE FUNCTION water.t_seen() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO water.t_seen VALUES (TG_OP); RETURN NULL; END $$"
    )
    cur.execute(
        "CREATE TRIGGER t_seen AFTER INSERT OR DELETE ON water.water_inferences "
        "FOR EACH ROW EXECUTE FUNCTION water.t_seen()"
    )
    log_conn.commit()
    farther = now + timedelta(days=40)
    _insert_at(log_conn, farther, "farther", n=2)
    inference_log.run_maintenance(log_db, now=now)
    assert (
        _where(log_conn, "farther") == [f"water.{inference_log.partition_name(farther.date())}"] * 2
    )
    assert _all(log_conn, "SELECT op, count(*) FROM water.t_seen GROUP BY op") == [["INSERT", 2]]
    assert _all(
        log_conn,
        "SELECT tgenabled::text FROM pg_trigger WHERE tgname = 't_seen' AND "
        "tgrelid = 'water.water_inferences_default'::regclass",
    ) == [["O"]]
    # A week later, maintenance has made the next days (idempotent otherwise).
    later = inference_log.run_maintenance(log_db, now=now + timedelta(days=8))
    assert today + timedelta(days=15) in later.created
    again = inference_log.run_maintenance(log_db, now=now + timedelta(days=8))
    assert again.created == [] and again.archived == []


# --- idempotency ---------------------------------------------------------------------------


def test_a_retry_the_next_day_is_recognised_across_the_partition_boundary(
    log_conn: db.Connection,
) -> None:
    cur = log_conn.cursor()
    cur.execute(WRITE, ("", "boundary", "s1", _reading_rows(3)))
    assert sorted(r[0] for r in cur.fetchall()) == [0, 1, 2]
    log_conn.commit()
    # The request was logged yesterday at 23:59:59.9 (rows and key move back in time) ...
    yesterday = datetime.now(UTC).replace(
        hour=23, minute=59, second=59, microsecond=900_000
    ) - timedelta(days=1)
    inference_log.ensure_partition(log_conn, yesterday.date())
    cur.execute(
        "UPDATE water.inference_requests SET inferred_at = %s WHERE request_id = 'boundary'",
        (yesterday,),
    )
    cur.execute(
        "UPDATE water.water_inferences SET inferred_at = %s WHERE request_id = 'boundary'",
        (yesterday,),
    )
    log_conn.commit()
    assert set(_where(log_conn, "boundary")) == {
        f"water.{inference_log.partition_name(yesterday.date())}"
    }
    # ... and the retry arrives today: nothing inserted, the logged rows found.
    cur.execute(WRITE, ("", "boundary", "s1", _reading_rows(3)))
    assert list(cur.fetchall()) == []
    cur.execute("SELECT reading_index, inferred_at FROM water.logged_inferences('', 'boundary')")
    assert [list(r) for r in cur.fetchall()] == [[i, yesterday] for i in range(3)]
    log_conn.commit()
    assert _all(log_conn, "SELECT count(*) FROM water.water_inferences") == [[3]]


def test_request_keys_are_scoped_to_the_caller(log_conn: db.Connection) -> None:
    cur = log_conn.cursor()
    cur.execute(WRITE, ("plant-a", "same-id", "s1", _reading_rows(2)))
    assert len(cur.fetchall()) == 2
    cur.execute(WRITE, ("plant-b", "same-id", "s1", _reading_rows(3)))
    assert len(cur.fetchall()) == 3  # another caller's key: a request of its own
    cur.execute(WRITE, ("plant-a", "same-id", "s1", _reading_rows(2)))
    assert list(cur.fetchall()) == []
    log_conn.commit()
    assert _all(
        log_conn,
        "SELECT caller, count(*) FROM water.water_inferences GROUP BY caller ORDER BY caller",
    ) == [["plant-a", 2], ["plant-b", 3]]
    assert _all(log_conn, "SELECT count(*) FROM water.logged_inferences('plant-b', 'same-id')") == [
        [3]
    ]


def test_two_in_flight_requests_with_one_key_insert_the_first_request_only(
    log_db: Settings, log_conn: db.Connection
) -> None:
    """The second request (more readings) waits for the first's commit, then inserts nothing."""
    first = log_conn.cursor()
    first.execute(WRITE, ("", "racing", "s1", _reading_rows(2)))
    assert len(first.fetchall()) == 2  # not committed yet
    result: dict[str, Any] = {}
    other = db.connect(log_db)

    def second() -> None:
        cur = other.cursor()
        cur.execute(WRITE, ("", "racing", "s1", _reading_rows(5)))
        result["rows"] = cur.fetchall()
        other.commit()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive()  # blocked on the key the first holds
    log_conn.commit()
    thread.join(10)
    other.close()
    assert list(result["rows"]) == []
    assert _all(log_conn, "SELECT count(*), max(reading_index) FROM water.water_inferences") == [
        [2, 1]
    ]


def test_request_keys_older_than_the_window_are_pruned(
    log_db: Settings, log_conn: db.Connection
) -> None:
    cur = log_conn.cursor()
    for key in ("old", "new"):
        cur.execute(WRITE, ("", key, "s1", _reading_rows(1)))
    cur.execute(
        "UPDATE water.inference_requests SET inferred_at = now() - interval '8 days' "
        "WHERE request_id = 'old'"
    )
    log_conn.commit()
    report = inference_log.run_maintenance(log_db.with_(inference_request_key_days=7.0))
    assert report.keys_pruned == 1
    assert _all(log_conn, "SELECT request_id FROM water.inference_requests") == [["new"]]


# --- retention and archive ------------------------------------------------------------------


def _old_days(log_conn: db.Connection, now: datetime) -> tuple[list[date], list[list[Any]]]:
    """Readings 100 and 95 days old (moved into partitions of their own)."""
    days = []
    for age, n in ((100, 40), (95, 7)):
        when = now - timedelta(days=age)
        _insert_at(log_conn, when, f"age-{age}", n=n)
        days.append(when.date())
    inference_log.ensure_partitions(log_conn, now.date())
    rows = _all(
        log_conn,
        "SELECT * FROM water.water_inferences WHERE inferred_at < %s ORDER BY id",
        now - timedelta(days=90),
    )
    return days, rows


def _archived_rows(settings: Settings, days: list[date]) -> list[list[Any]]:
    rows = []
    for day in days:
        table = inference_archive.read_day(settings, day)
        rows += [list(r.values()) for r in table.to_pylist()]
    return sorted(rows, key=lambda r: r[0])


def test_retention_archives_verifies_drops_and_reads_back_equal(
    log_db: Settings, log_conn: db.Connection, tmp_path: Path
) -> None:
    settings = log_db.with_(
        inference_retention_days=90, inference_archive_uri=str(tmp_path / "archive")
    )
    now = datetime.now(UTC)
    days, rows = _old_days(log_conn, now)
    old_hours = (now - timedelta(days=101), now - timedelta(days=90))
    inference_rollup.roll_up(log_conn, *old_hours)
    inference_rollup.roll_up_cells(log_conn, *old_hours)  # their drift cells (sql/015)
    log_conn.commit()
    cells = "SELECT count(*) FROM water.inference_hourly_cells WHERE hour < %s"
    assert _all(log_conn, cells, now - timedelta(days=90))[0][0] > 0
    report = inference_log.run_maintenance(settings, now=now)
    assert report.archived == [(days[0], 40), (days[1], 7)]
    assert _all(log_conn, cells, now - timedelta(days=90)) == [[0]]  # gone with their readings
    assert not set(days) & set(inference_log.partitions(log_conn))
    assert _all(
        log_conn,
        "SELECT count(*) FROM water.water_inferences WHERE inferred_at < %s",
        now - timedelta(days=90),
    ) == [[0]]
    assert inference_archive.archived_days(settings) == days
    assert _archived_rows(settings, days) == rows  # archived rows == dropped rows, equal values
    # Files of the pinned schema (docs/archive.md), which the archive's table reads whole.
    from potability.inference import archive_query

    for day in days:
        path = tmp_path / "archive" / inference_archive.object_name(day)
        assert pq.read_schema(path).remove_metadata().equals(inference_archive.SCHEMA)
    per_day = archive_query.query_table(
        settings,
        f"SELECT day, COUNT(*) AS n FROM {archive_query.TABLE} GROUP BY day ORDER BY day",
    ).to_pylist()
    assert per_day == [{"day": days[0], "n": 40}, {"day": days[1], "n": 7}]
    # The documented command reads a day back (CSV).
    out = subprocess.run(
        [sys.executable, "-m", "potability.cli", "archive", "read", "--day", days[1].isoformat()],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": log_db.database_url,
            "POTABILITY_HOME": str(tmp_path),
            "INFERENCE_ARCHIVE_URI": str(tmp_path / "archive"),
        },
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.strip().splitlines()) == 1 + 7 and "age-95" in out.stdout
    # A tampered file is refused on read.
    path = tmp_path / "archive" / inference_archive.object_name(days[1])
    table = inference_archive.read_day(settings, days[1])
    meta = pq.ParquetFile(path).metadata.metadata
    pq.write_table(table.slice(1), path)
    with pq.ParquetWriter(path, table.schema) as writer:
        writer.write_table(table.slice(1))
        writer.add_key_value_metadata(meta)
    with pytest.raises(inference_archive.ArchiveMismatch):
        inference_archive.read_day(settings, days[1])


def test_the_archive_schema_is_the_migrated_logs_columns(log_conn: db.Connection) -> None:
    """potability.inference.archive.SCHEMA (pinned, documented) is what the migrations make of
    water.water_inferences: a migration that changes the log fails here first, before the
    maintenance job refuses to archive (SchemaChanged)."""
    columns = inference_log._columns(log_conn)
    assert inference_archive.log_schema(columns) is inference_archive.SCHEMA


@pytest.mark.parametrize("die_in", ["put", "fetch"])
def test_a_maintenance_killed_during_the_archive_loses_nothing_and_reruns(
    log_db: Settings, log_conn: db.Connection, tmp_path: Path, die_in: str
) -> None:
    """A real process SIGKILLed mid-archive (while writing the file, or after it was stored and
    before the drop); the rerun completes: every row archived once, read back equal."""
    archive = tmp_path / "archive"
    settings = log_db.with_(inference_retention_days=90, inference_archive_uri=str(archive))
    now = datetime.now(UTC)
    days, rows = _old_days(log_conn, now)
    worker = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("maintenance_worker.py")), die_in],
        env={
            **os.environ,
            "DATABASE_URL": log_db.database_url,
            "POTABILITY_HOME": str(tmp_path),
            "INFERENCE_ARCHIVE_URI": str(archive),
            "INFERENCE_RETENTION_DAYS": "90",
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == -9, worker.stderr  # SIGKILL
    assert "dying in" in worker.stdout
    # Nothing was dropped; the database still holds every row.
    assert set(days) <= set(inference_log.partitions(log_conn))
    assert _all(
        log_conn,
        "SELECT count(*) FROM water.water_inferences WHERE inferred_at < %s",
        now - timedelta(days=90),
    ) == [[len(rows)]]
    assert not list(archive.rglob("*.partial")) or die_in == "put"
    report = inference_log.run_maintenance(settings, now=now)
    assert [d for d, _ in report.archived] == days
    assert _archived_rows(settings, days) == rows
    assert not set(days) & set(inference_log.partitions(log_conn))


def test_an_archive_that_differs_from_the_database_stops_the_drop(
    log_db: Settings, log_conn: db.Connection, tmp_path: Path
) -> None:
    settings = log_db.with_(
        inference_retention_days=90, inference_archive_uri=str(tmp_path / "archive")
    )
    now = datetime.now(UTC)
    days, rows = _old_days(log_conn, now)
    store = inference_archive.LocalStore(tmp_path / "archive")
    schema = inference_archive.arrow_schema([("id", "bigint")])
    written = inference_archive.write_file(tmp_path / "x.parquet", schema, [[(1,)]], days[0])
    store.put(inference_archive.object_name(days[0]), written.path)
    with pytest.raises(inference_archive.ArchiveMismatch, match="not dropped"):
        inference_log.run_maintenance(settings, now=now)
    assert set(days) <= set(inference_log.partitions(log_conn))
    assert len(
        _all(
            log_conn,
            "SELECT id FROM water.water_inferences WHERE inferred_at < %s",
            now - timedelta(days=90),
        )
    ) == len(rows)


def test_the_local_scheduler_runs_the_maintenance_and_survives_its_failure(
    log_db: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines import local_scheduler

    when = datetime.now(UTC) + timedelta(days=20)
    report = local_scheduler.maintain(log_db.with_(home=tmp_path), when)
    assert report is not None and when.date() + timedelta(days=7) in report.created
    assert local_scheduler.read_state(tmp_path)["last_maintenance_outcome"] == "succeeded"
    dead = Settings(home=tmp_path, database_url=f"postgresql://postgres@/x?host={tmp_path}")
    assert local_scheduler.maintain(dead, when) is None
    out = capsys.readouterr().out
    assert "inference-log maintenance: partitions created" in out
    assert "inference-log maintenance failed: DatabaseUnavailable" in out
    assert (
        local_scheduler.read_state(tmp_path)["last_maintenance_outcome"]
        == "failed: DatabaseUnavailable"
    )
