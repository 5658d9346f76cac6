"""A year of archive, the documented questions (docs/archive.md): time and peak memory.

Generates a year of the inference log's archive - 200 sensors, one reading a minute each
(288 000 readings a day, 105 M a year), one Parquet file per UTC day with the archive's schema,
compression and row groups (potability.inference.archive.SCHEMA, zstd, 20 000-row groups as the
maintenance job writes them) - then runs every query of docs/archive.md's questions with
``potability archive query`` as its own process, several times, and prints the wall time and
that process's peak resident memory (``wait4``'s ``ru_maxrss``: the kernel's high-water mark,
not a sample).

The files are generated vectorised, not through the archive's writer: that writer hashes every
row in Python for its integrity metadata (seconds per day; the query never reads the metadata)
and the figure here is the query's, not the writer's.

    .venv/bin/python bench/archive_query_bench.py [--days 365] [--sensors 200] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from potability.inference import archive as inference_archive  # noqa: E402
from potability.inference.log import FETCH_ROWS  # noqa: E402

FIRST_DAY = date(2026, 1, 1)
FEATURES = {  # name: (mean, sd, low, high, decimals) - plausible plant readings
    "ph": (7.1, 0.6, 0, 14, 2),
    "hardness": (196, 33, 0, 2000, 1),
    "solids": (22000, 8700, 0, 100000, 0),
    "chloramines": (7.1, 1.6, 0, 50, 2),
    "sulfate": (333, 41, 0, 2000, 1),
    "conductivity": (426, 81, 0, 5000, 1),
    "organic_carbon": (14.3, 3.3, 0, 100, 2),
    "trihalomethanes": (66, 16, 0, 1000, 1),
    "turbidity": (3.97, 0.78, 0, 100, 2),
}


def day_table(day: date, index: int, sensors: int, first_id: int, rng: np.random.Generator):
    """One day: every sensor once a minute (a few seconds of jitter), in time order."""
    minutes = 24 * 60
    n = minutes * sensors
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    minute = np.repeat(np.arange(minutes, dtype=np.int64), sensors)
    sensor = np.tile(np.arange(sensors), minutes)
    micros = (minute * 60 + rng.integers(0, 50, n)) * 1_000_000 + rng.integers(0, 999_999, n)
    at = np.datetime64(start.replace(tzinfo=None), "us") + micros.astype("timedelta64[us]")
    sensor_names = pa.array([f"sensor-{s:03d}" for s in range(sensors)]).take(pa.array(sensor))
    columns: dict[str, pa.Array] = {
        "id": pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
        "request_id": pc.binary_join_element_wise(
            sensor_names, pa.array(minute.astype(str)), f"-{day:%Y%m%d}-"
        ),
        "reading_index": pa.array(np.zeros(n, dtype=np.int32)),
        "sensor_id": sensor_names,
    }
    for name, (mean, sd, low, high, decimals) in FEATURES.items():
        values = np.round(np.clip(rng.normal(mean, sd, n), low, high), decimals)
        missing = rng.random(n) < (0.05 if name in ("ph", "sulfate") else 0.002)
        columns[name] = pa.array(values, mask=missing)
    probability = 1 / (1 + np.exp(-rng.normal(-0.4, 1.2, n)))
    columns["predicted_class"] = pa.array((probability >= 0.5).astype(np.int16))
    columns["probability"] = pa.array(np.round(probability, 6))
    columns["model_name"] = pa.array(["water-potability"] * n)
    columns["model_version"] = pa.array([str(1 + index // 30)] * n)
    columns["endpoint"] = pa.array(["projects/p/locations/europe-west1/endpoints/1"] * n)
    columns["inferred_at"] = pa.array(at, type=pa.timestamp("us", tz="UTC"))
    columns["latency_ms"] = pa.array(np.round(rng.gamma(4, 1.5, n), 3))
    columns["caller"] = pa.array(["sensors@plant.iam.gserviceaccount.com"] * n)
    measured = at - np.timedelta64(20, "s")
    columns["measured_at"] = pa.array(
        measured, type=pa.timestamp("us", tz="UTC"), mask=rng.random(n) < 0.5
    )
    return pa.table(columns, schema=inference_archive.SCHEMA)


def generate(root: Path, days: int, sensors: int) -> tuple[int, int]:
    """The archive under ``root``; (readings, bytes on disk)."""
    rng = np.random.default_rng(33)
    readings = 0
    for index in range(days):
        day = FIRST_DAY + timedelta(days=index)
        path = root / inference_archive.object_name(day)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = day_table(day, index, sensors, readings + 1, rng)
        with pq.ParquetWriter(path, inference_archive.SCHEMA, compression="zstd") as writer:
            for batch in table.to_batches(max_chunksize=FETCH_ROWS):
                writer.write_table(pa.Table.from_batches([batch]))  # a row group per fetch
        readings += table.num_rows
        if index % 30 == 0:
            print(f"  generated {day} ({readings:,} readings so far)", flush=True)
    size = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    return readings, size


def documented_queries() -> dict[str, str]:
    text = (ROOT / "docs" / "archive.md").read_text()
    blocks = re.findall(r"^```sql\n(.*?)^```$", text, re.S | re.M)
    return {re.match(r"-- ([a-z-]+): ", b)[1]: b for b in blocks}  # type: ignore[index]


def run_query(sql: str, root: Path, out: Path) -> tuple[float, int]:
    """One ``potability archive query`` process: (seconds, peak resident bytes)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "potability.cli", "archive", "query", sql]
        + ["--archive", str(root), "--out", str(out)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "failed")
    return seconds, usage.ru_maxrss * 1024  # Linux: kilobytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--sensors", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="reuse/keep the archive here")
    parser.add_argument("--keep", action="store_true", help="keep the generated archive")
    args = parser.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="archive-bench-"))
    try:
        if not any(root.glob("day=*")):
            started = time.perf_counter()
            readings, size = generate(root, args.days, args.sensors)
            print(
                f"generated {args.days} days, {readings:,} readings, {size / 2**30:.2f} GiB "
                f"({size / readings:.1f} bytes a reading) in {time.perf_counter() - started:.0f} s"
            )
        files = sorted(root.glob(f"day=*/{inference_archive.FILE_NAME}"))
        print(f"archive: {len(files)} files under {root}; load {os.getloadavg()}")
        print("| query | rows out | wall (median of runs) | peak RSS (max of runs) |")
        print("|---|---|---|---|")
        baseline = "SELECT 1 AS one"
        for name, sql in {"(start-up: SELECT 1)": baseline, **documented_queries()}.items():
            out = root.parent / f"{root.name}-{name.strip('()').split(':')[0]}.csv"
            results = [run_query(sql, root, out) for _ in range(args.runs)]
            rows = len(out.read_text().splitlines()) - 1
            out.unlink()
            wall = statistics.median(s for s, _ in results)
            peak = max(m for _, m in results)
            print(f"| {name} | {rows:,} | {wall:.2f} s | {peak / 2**20:.0f} MiB |", flush=True)
        print(f"load after: {os.getloadavg()}")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
