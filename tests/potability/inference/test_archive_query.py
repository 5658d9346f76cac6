"""The archive as a table (docs/archive.md): the documented queries, parsed out of the page,
run by ``potability archive query``'s code on a generated archive (written by the archive's own
writer, one file per day) and checked against the readings that were written; the documented
columns against the pinned Parquet schema; the command's edges (no day archived yet, a bucket
instead of a folder, a mistake in the SQL); the DuckDB limits it sets."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from potability import cli
from potability.config import Settings
from potability.inference import archive as inference_archive
from potability.inference import archive_query

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "archive.md"

SENSORS = ("sensor-005", "sensor-006", "sensor-007", "sensor-008")
FIRST_DAY, LAST_DAY = date(2025, 12, 29), date(2026, 3, 20)
INCIDENT = (datetime(2026, 3, 14, 17, tzinfo=UTC), datetime(2026, 3, 15, 5, tzinfo=UTC))


def documented_queries() -> dict[str, str]:
    """Every ```sql block of the page, by the name its first line gives it."""
    queries = {}
    for block in re.findall(r"^```sql\n(.*?)^```$", DOC.read_text(), re.S | re.M):
        name = re.match(r"-- ([a-z-]+): ", block)
        assert name, f"a documented query must start with '-- name: what it answers':\n{block}"
        queries[name[1]] = block
    return queries


def _reading(rng: random.Random, ident: int, sensor: str, at: datetime) -> tuple[Any, ...]:
    low = sensor == "sensor-007" and at >= datetime(2026, 3, 1, tzinfo=UTC)
    probability = rng.uniform(0.05, 0.6) if low else rng.uniform(0.2, 0.95)
    values = {f.name: None for f in inference_archive.SCHEMA}
    values.update(
        id=ident,
        request_id=f"{sensor}-{at:%Y%m%d%H%M%S}",
        reading_index=0,
        sensor_id=sensor,
        ph=None if rng.random() < 0.05 else round(rng.uniform(6.0, 9.0), 2),
        hardness=round(rng.uniform(100, 300), 1),
        solids=round(rng.uniform(5000, 40000), 0),
        chloramines=round(rng.uniform(4, 10), 2),
        sulfate=round(rng.uniform(250, 450), 1),
        conductivity=round(rng.uniform(300, 600), 1),
        organic_carbon=round(rng.uniform(8, 20), 2),
        trihalomethanes=round(rng.uniform(40, 100), 1),
        turbidity=round(rng.uniform(2.5, 5.5), 2),
        predicted_class=int(probability >= 0.5),
        probability=probability,
        model_name="water-potability",
        model_version="3" if at < datetime(2026, 2, 10, tzinfo=UTC) else "4",
        endpoint="http://127.0.0.1:8081",
        inferred_at=at,
        latency_ms=rng.uniform(2, 9),
        caller="",
        measured_at=None if rng.random() < 0.5 else at - timedelta(seconds=30),
    )
    return tuple(values[f.name] for f in inference_archive.SCHEMA)


def generate(root: Path, tmp: Path) -> list[tuple[Any, ...]]:
    """An archive of four sensors, a reading every 90 minutes (every 10 minutes for sensor-007
    around the incident), written and stored as the maintenance job does; its rows."""
    rng = random.Random(33)
    store = inference_archive.LocalStore(root)
    rows: list[tuple[Any, ...]] = []
    day = FIRST_DAY
    while day <= LAST_DAY:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        stamps = [
            (s, start + timedelta(minutes=m, seconds=rng.randrange(60)))
            for m in range(0, 24 * 60, 90)
            for s in SENSORS
        ]
        stamps += [
            ("sensor-007", start + timedelta(minutes=m, seconds=7))
            for m in range(0, 24 * 60, 10)
            if INCIDENT[0] - timedelta(hours=2) <= start + timedelta(minutes=m) < INCIDENT[1]
        ]
        stamps.sort(key=lambda x: x[1])
        day_rows = [_reading(rng, len(rows) + i + 1, s, at) for i, (s, at) in enumerate(stamps)]
        written = inference_archive.write_file(
            tmp / "day.parquet", inference_archive.SCHEMA, [day_rows], day
        )
        store.put(inference_archive.object_name(day), written.path)
        rows += day_rows
        day += timedelta(days=1)
    return rows


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[Any, ...]]]:
    root = tmp_path_factory.mktemp("archive")
    return root, generate(root, tmp_path_factory.mktemp("work"))


def _column(name: str) -> int:
    return inference_archive.SCHEMA.names.index(name)


def _run(sql: str, root: Path, settings: Settings | None = None) -> list[dict[str, Any]]:
    table = archive_query.query_table(settings or Settings(), sql, str(root))
    return table.to_pylist()


def test_the_page_documents_the_two_questions() -> None:
    assert set(documented_queries()) == {"monthly-share", "sensor-incident"}


def test_monthly_share_answers_readings_and_potable_share_per_sensor_per_month(
    archive: tuple[Path, Sequence[tuple[Any, ...]]],
) -> None:
    root, rows = archive
    expected: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    for r in rows:
        at = r[_column("inferred_at")]
        if at.year == 2026:
            expected[(r[_column("sensor_id")], at.year, at.month)].append(
                r[_column("predicted_class")]
            )
    assert any(r[_column("inferred_at")].year == 2025 for r in rows)  # left out by the query

    got = _run(documented_queries()["monthly-share"], root)

    assert [(g["sensor_id"], g["year"], g["month"]) for g in got] == sorted(expected)
    for g in got:
        classes = expected[(g["sensor_id"], g["year"], g["month"])]
        assert g["readings"] == len(classes)
        assert g["potable_share"] == pytest.approx(sum(classes) / len(classes), abs=1e-12)
    # the drifting sensor shows: its March share is below everyone else's
    march = {g["sensor_id"]: g["potable_share"] for g in got if g["month"] == 3}
    assert march["sensor-007"] < min(v for k, v in march.items() if k != "sensor-007")


def test_sensor_incident_returns_the_sensors_readings_in_the_window_in_order(
    archive: tuple[Path, Sequence[tuple[Any, ...]]],
) -> None:
    root, rows = archive
    expected = sorted(
        (
            r
            for r in rows
            if r[_column("sensor_id")] == "sensor-007"
            and INCIDENT[0] <= r[_column("inferred_at")] < INCIDENT[1]
        ),
        key=lambda r: (r[_column("inferred_at")], r[_column("id")]),
    )
    assert {r[_column("inferred_at")].date() for r in expected} == {
        date(2026, 3, 14),
        date(2026, 3, 15),
    }

    got = _run(documented_queries()["sensor-incident"], root)

    assert [g["id"] for g in got] == [r[_column("id")] for r in expected]
    for g, r in zip(got, expected, strict=True):
        for name in g:
            assert g[name] == r[_column(name)], name


def test_the_documented_columns_are_the_archive_schema() -> None:
    section = DOC.read_text().split("## Columns", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \| ([^|]+?) \| (\w+) \|", section, re.M)
    # Parquet -> BigQuery: cloud.google.com/bigquery/docs/loading-data-cloud-storage-parquet
    bigquery = {
        "int64": "INT64",
        "int32": "INT64",
        "int16": "INT64",
        "double": "FLOAT64",
        "string": "STRING",
        "timestamp[us, tz=UTC]": "TIMESTAMP",
    }
    assert [(n, t) for n, t, _ in documented] == [
        (f.name, str(f.type)) for f in inference_archive.SCHEMA
    ]
    assert all(bq == bigquery[t] for _, t, bq in documented)


def test_the_table_is_the_schema_and_its_day(
    archive: tuple[Path, Sequence[tuple[Any, ...]]], tmp_path: Path
) -> None:
    root, _ = archive
    sql = f"SELECT * FROM {archive_query.TABLE} WHERE day = DATE '2026-01-02' LIMIT 1"
    table = archive_query.query_table(Settings(), sql, str(root))
    assert table.column_names == [*inference_archive.SCHEMA.names, "day"]
    assert table.schema.field("day").type == pa.date32()
    assert table.column("day").to_pylist() == [date(2026, 1, 2)]
    # No day archived yet: the same table, empty - a question gets zero, not an error.
    (tmp_path / "empty").mkdir()
    empty = archive_query.query_table(Settings(), sql, str(tmp_path / "empty"))
    assert empty.column_names == table.column_names and empty.num_rows == 0
    assert _run(f"SELECT COUNT(*) AS n FROM {archive_query.TABLE}", tmp_path / "empty") == [
        {"n": 0}
    ]


def test_the_limits_are_the_settings(archive: tuple[Path, Sequence[tuple[Any, ...]]]) -> None:
    root, _ = archive
    settings = Settings(archive_query_memory_limit="1GiB", archive_query_threads=1)
    got = _run(
        "SELECT current_setting('memory_limit') AS memory, current_setting('threads') AS threads,"
        " current_setting('TimeZone') AS tz",
        root,
        settings,
    )
    assert got == [{"memory": "1.0 GiB", "threads": 1, "tz": "UTC"}]


def test_the_command_writes_csv_and_names_mistakes(
    archive: tuple[Path, Sequence[tuple[Any, ...]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, rows = archive
    count = f"SELECT COUNT(*) AS readings FROM {archive_query.TABLE}"
    assert cli.main(["archive", "query", count, "--archive", str(root)]) == 0
    assert capsys.readouterr().out.splitlines() == ['"readings"', str(len(rows))]

    out = tmp_path / "monthly.csv"
    sql = documented_queries()["monthly-share"]
    assert cli.main(["archive", "query", sql, "--archive", str(root), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == '"sensor_id","year","month","readings","potable_share"'
    assert len(lines) == 1 + len(SENSORS) * 3  # January to March 2026
    assert "rows written to" in capsys.readouterr().err

    bad = f"SELECT no_such_column FROM {archive_query.TABLE}"
    assert cli.main(["archive", "query", bad, "--archive", str(root)]) == 2
    assert "no_such_column" in capsys.readouterr().err

    assert cli.main(["archive", "query", count, "--archive", "gs://b/inference-log"]) == 2
    assert "BigQuery table water_archive.water_inferences" in capsys.readouterr().err


def test_a_log_whose_columns_changed_is_not_archived() -> None:
    pg = {
        "int64": "bigint",
        "int32": "integer",
        "int16": "smallint",
        "double": "double precision",
        "string": "text",
        "timestamp[us, tz=UTC]": "timestamp with time zone",
    }
    columns = [(f.name, pg[str(f.type)]) for f in inference_archive.SCHEMA]
    assert inference_archive.log_schema(columns) is inference_archive.SCHEMA
    with pytest.raises(inference_archive.SchemaChanged, match="new column site_id"):
        inference_archive.log_schema([*columns, ("site_id", "text")])
    with pytest.raises(inference_archive.SchemaChanged, match="column turbidity is gone"):
        inference_archive.log_schema([c for c in columns if c[0] != "turbidity"])
    with pytest.raises(inference_archive.SchemaChanged, match="latency_ms is float"):
        inference_archive.log_schema([(n, "real" if n == "latency_ms" else t) for n, t in columns])
    assert issubclass(inference_archive.SchemaChanged, inference_archive.ArchiveMismatch)
