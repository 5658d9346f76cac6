"""Scale benchmark: the status page, predict and quality control as the inference log grows.

    python bench/scale_bench.py                         # 0.1 M then 1 M readings (quick)
    python bench/scale_bench.py --sizes 1000000 20000000  # issue 18's sizes
    python bench/scale_bench.py --stack .potability --sizes ...  # a running stack (adds rows!)
    python bench/scale_bench.py backlog --rows 2000000 --days 10  # issue 29: drain DEFAULT
    python bench/scale_bench.py trends [--sensors 200 --days 90]  # issue 33: the 90-day trends

For each size (ascending, one stack: the log is topped up from one size to the next) it fills
``water.water_inferences`` with synthetic readings spread over the last 7 days - 200 sensors,
plausible values, 2% missing pH - by ``generate_series`` in the database (1 M rows per
statement), then measures:

* the hourly rollups' catch-up (``inference_rollup.catch_up``: what ``potability qc`` and the
  status refreshes do incrementally; after a fill every hour of the week is new);
* the maintenance step's time, when the stack has one (a ``potability`` subcommand whose name
  starts with ``mainten``: the storage developer's; reported as "n/a" otherwise);
* status JSON latency: **cold** = a fresh instance's first refresh, in this process (a new
  :class:`functions.status.StatusSource`: what a new function instance does on its first
  request - rollup check + reads, no HTTP; median of 5); **warm** = the running status
  function over HTTP (median and p99 of 200 sequential requests, served from its cache);
* predict alone (single readings, ``--concurrency`` clients, ``bench/functions_bench.py``'s
  client process and checks: lost / extra rows) and the same with ``--readers`` concurrent
  status readers (a separate process, each thread reading the page in a loop);
* ``potability qc``: wall time and peak resident memory of its process (polled every 20 ms);
* storage per retained reading: the inference log's relations (partitions, indexes, TOAST)
  over its row count, and the rollups' size.

It prints one table with a column per size and the ratio of the last size to the first, and
the targets of issue 18 as MET / MISSED. Loopback only; the machine's load average is printed
(other work on the machine inflates every latency).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import functions_bench  # noqa: E402 - bench/, beside this script
from process_tree import tree_rss  # noqa: E402

CHUNK = 1_000_000
SENSORS = 200

FILL = f"""
INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, ph, hardness, solids,
    chloramines, sulfate, conductivity, organic_carbon, trihalomethanes, turbidity,
    predicted_class, probability, model_name, model_version, endpoint, inferred_at, latency_ms)
SELECT 'fill-' || %s || '-' || g, 0, 'sensor-' || lpad((g %% {SENSORS})::text, 3, '0'),
    CASE WHEN random() < 0.02 THEN NULL ELSE 4 + random() * 6 END,
    100 + random() * 200, 5000 + random() * 40000, 2 + random() * 10, 200 + random() * 250,
    200 + random() * 500, 5 + random() * 20, 20 + random() * 90, 1 + random() * 5,
    (random() < 0.4)::int, random(), 'water-potability', 'fill', 'local',
    now() - random() * interval '7 days', 1.0
FROM generate_series(1, %s) g
"""


# --- the status readers' process -----------------------------------------------------------


def _readers(url: str, threads: int, seconds: float, out: Path) -> None:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(k: int) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    response.read()
                latencies[k].append(time.perf_counter() - t0)
            except OSError:
                errors[k] += 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    flat = sorted(x for xs in latencies for x in xs)
    out.write_text(
        json.dumps(
            {
                "requests": len(flat),
                "errors": sum(errors),
                "p50_ms": functions_bench._percentile(flat, 50) * 1000,
                "p99_ms": functions_bench._percentile(flat, 99) * 1000,
            }
        )
    )


# --- measurements --------------------------------------------------------------------------


def _connect(database_url: str) -> Any:
    from potability import db
    from potability.config import Settings

    conn = db.connect(Settings(database_url=database_url), timeout=3600)  # 1 M-row statements
    conn.autocommit = True
    return conn


def _rows(database_url: str) -> int:
    conn = _connect(database_url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM water.water_inferences")
        return int(cur.fetchone()[0])
    finally:
        conn.close()


def fill(database_url: str, target: int) -> dict[str, Any]:
    """Top the log up to ``target`` rows; seconds taken."""
    conn = _connect(database_url)
    started = time.perf_counter()
    try:
        # the window's day partitions exist, as on a stack whose maintenance ran every day
        # (a fresh stack has today's onwards; older rows would land in the DEFAULT partition)
        from potability.inference import log as inference_log

        today = datetime.now(UTC).date()
        for back in range(8):
            inference_log.ensure_partition(conn, today - timedelta(days=back))
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM water.water_inferences")
        have = int(cur.fetchone()[0])
        tag = str(int(time.time()))
        chunk = 0
        while have < target:
            n = min(CHUNK, target - have)
            cur.execute(FILL, (f"{tag}-{chunk}", n))
            have += n
            chunk += 1
            print(f"  filled {have:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
        cur.execute("ANALYZE water.water_inferences")
        # a backfill: the rows landed in hours the rollups may already hold (the smaller
        # size's); those hours are re-opened so they are counted again
        from potability.inference import rollup as inference_rollup

        now = datetime.now(UTC)
        inference_rollup.forget(conn, now - timedelta(days=8), now + timedelta(hours=1))
    finally:
        conn.close()
    return {"rows": have, "fill_s": round(time.perf_counter() - started, 1)}


def rollup_catch_up(database_url: str) -> float:
    from potability import db
    from potability.config import Settings
    from potability.inference import rollup as inference_rollup

    conn = db.connect(Settings(database_url=database_url), timeout=3600)
    started = time.perf_counter()
    try:
        inference_rollup.catch_up(conn, datetime.now(UTC))
    finally:
        conn.close()
    return round(time.perf_counter() - started, 2)


def _potability(home: Path, *args: str, **kwargs: Any) -> subprocess.Popen:
    env = dict(os.environ, POTABILITY_HOME=str(home))
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; from potability.cli import main; sys.exit(main({list(args)!r}))",
        ],
        cwd=ROOT,
        env=env,
        **kwargs,
    )


def maintenance(home: Path) -> float | None:
    """Seconds of the stack's maintenance step, or ``None`` when there is none (yet)."""
    help_text = subprocess.run(
        [sys.executable, "-c", "import sys; from potability.cli import main; main(['--help'])"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, POTABILITY_HOME=str(home)),
    ).stdout
    names = [w.strip("{},") for line in help_text.splitlines() for w in line.split()]
    command = next((n for n in names if n.startswith("mainten")), None)
    if command is None:
        return None
    started = time.perf_counter()
    proc = _potability(home, command, stdout=subprocess.DEVNULL)
    if proc.wait() != 0:
        print(f"  potability {command} failed (exit {proc.returncode})", flush=True)
    return round(time.perf_counter() - started, 2)


def quality_control(home: Path) -> dict[str, Any]:
    """Wall time and peak RSS of ``potability qc`` (its own process, polled)."""
    started = time.perf_counter()
    proc = _potability(home, "qc", stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    if proc.returncode != 0:
        print(f"  potability qc FAILED (exit {proc.returncode})", flush=True)
        return {
            "qc_s": f"failed after {time.perf_counter() - started:.1f}",
            "qc_peak_mb": round(peak / 2**20),
        }
    return {"qc_s": round(time.perf_counter() - started, 2), "qc_peak_mb": round(peak / 2**20)}


def status_cold(database_url: str, repeats: int = 5) -> float:
    """Median ms of a fresh instance's first status refresh (no HTTP)."""
    from functions.status import StatusSource
    from potability.config import Settings

    times = []
    for _ in range(repeats):
        source = StatusSource(Settings(database_url=database_url))
        started = time.perf_counter()
        source.get()
        times.append((time.perf_counter() - started) * 1000)
        source.close()
    return round(statistics.median(times), 1)


def status_warm(url: str, requests: int = 200) -> dict[str, float]:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        urllib.request.urlopen(url, timeout=30).read()
        times.append(time.perf_counter() - started)
    times.sort()
    return {
        "warm_p50_ms": round(functions_bench._percentile(times, 50) * 1000, 2),
        "warm_p99_ms": round(functions_bench._percentile(times, 99) * 1000, 2),
    }


def predict_with_readers(
    env: dict[str, str], home: Path, seconds: float, concurrency: int, readers: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "readers.json"
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "readers",
                env["STATUS_URL"] + "?format=json",
                str(readers),
                str(seconds + 2),
                str(out),
            ]
        )
        time.sleep(1.0)
        result = functions_bench.run_scenario(
            env["PREDICT_URL"], env["DATABASE_URL"], 1, seconds, concurrency, home
        )
        proc.wait()
        result["readers"] = json.loads(out.read_text())
    return result


def storage(database_url: str) -> dict[str, Any]:
    conn = _connect(database_url)
    try:
        cur = conn.cursor()
        # the partitions' relations when the log is partitioned, else the table's own
        cur.execute(
            "SELECT coalesce(nullif((SELECT sum(pg_total_relation_size(relid)) "
            "FROM pg_partition_tree('water.water_inferences')), 0), "
            "pg_total_relation_size('water.water_inferences'))"
        )
        log_bytes = int(cur.fetchone()[0])
        cur.execute(
            "SELECT pg_total_relation_size('water.inference_hourly') + "
            "pg_total_relation_size('water.inference_rolled_hours') + coalesce("
            "pg_total_relation_size(to_regclass('water.inference_hourly_cells')), 0)"
        )
        rollup_bytes = int(cur.fetchone()[0])
        cur.execute("SELECT count(*) FROM water.water_inferences")
        rows = int(cur.fetchone()[0])
    finally:
        conn.close()
    return {
        "log_mb": round(log_bytes / 2**20),
        "bytes_per_reading": round(log_bytes / max(rows, 1)),
        "rollups_mb": round(rollup_bytes / 2**20, 1),
    }


def measure(size: int, env: dict[str, str], home: Path, args: argparse.Namespace) -> dict[str, Any]:
    url = env["DATABASE_URL"]
    print(f"\n== {size:,} readings", flush=True)
    row: dict[str, Any] = fill(url, size)
    row["rollup_catch_up_s"] = rollup_catch_up(url)
    print(f"  rollup catch-up {row['rollup_catch_up_s']} s", flush=True)
    row["maintenance_s"] = maintenance(home)
    row["status_cold_ms"] = status_cold(url)
    status_url = env["STATUS_URL"] + "?format=json"
    row.update(status_warm(status_url))
    print(
        f"  status cold {row['status_cold_ms']} ms, warm p50 {row['warm_p50_ms']} ms "
        f"p99 {row['warm_p99_ms']} ms",
        flush=True,
    )
    alone = functions_bench.run_scenario(
        env["PREDICT_URL"], url, 1, args.seconds, args.concurrency, home
    )
    loaded = predict_with_readers(env, home, args.seconds, args.concurrency, args.readers)
    row.update(
        {
            "predict_rps": alone["requests_per_s"],
            "predict_p99_ms": alone["p99_ms"],
            "predict_rps_readers": loaded["requests_per_s"],
            "predict_p99_ms_readers": loaded["p99_ms"],
            "reader_requests": loaded["readers"]["requests"],
            "reader_errors": loaded["readers"]["errors"],
            "reader_p99_ms": round(loaded["readers"]["p99_ms"], 1),
            "predict_errors": alone["errors"] + loaded["errors"],
            "lost_rows": alone["lost_rows"] + loaded["lost_rows"],
            "extra_rows": alone["extra_rows"] + loaded["extra_rows"],
        }
    )
    print(
        f"  predict alone {alone['requests_per_s']} req/s p99 {alone['p99_ms']} ms; with "
        f"{args.readers} status readers {loaded['requests_per_s']} req/s p99 "
        f"{loaded['p99_ms']} ms ({loaded['readers']['requests']} page views, "
        f"{loaded['readers']['errors']} errors)",
        flush=True,
    )
    row.update(quality_control(home))
    print(f"  qc {row['qc_s']} s, peak {row['qc_peak_mb']} MB", flush=True)
    row.update(storage(url))
    row["load_average"] = [round(x, 1) for x in os.getloadavg()]
    return row


ROWS = [
    ("rows", "readings in the log"),
    ("fill_s", "fill, s"),
    ("rollup_catch_up_s", "rollup catch-up (whole week), s"),
    ("maintenance_s", "maintenance step, s"),
    ("status_cold_ms", "status JSON cold (fresh instance), ms"),
    ("warm_p50_ms", "status JSON warm p50, ms"),
    ("warm_p99_ms", "status JSON warm p99, ms"),
    ("predict_rps", "predict req/s (alone)"),
    ("predict_p99_ms", "predict p99 ms (alone)"),
    ("predict_rps_readers", "predict req/s (with status readers)"),
    ("predict_p99_ms_readers", "predict p99 ms (with status readers)"),
    ("reader_requests", "status page views served meanwhile"),
    ("reader_errors", "status reader errors"),
    ("predict_errors", "predict errors"),
    ("lost_rows", "lost rows"),
    ("extra_rows", "extra rows"),
    ("qc_s", "potability qc, s"),
    ("qc_peak_mb", "potability qc peak RSS, MB"),
    ("log_mb", "inference log on disk, MB"),
    ("bytes_per_reading", "bytes per retained reading"),
    ("rollups_mb", "rollups on disk, MB"),
    ("load_average", "load average after"),
]


def table(rows: list[dict[str, Any]]) -> str:
    first, last = rows[0], rows[-1]
    head = (
        "| | "
        + " | ".join(f"{r['rows'] / 1e6:g} M" for r in rows)
        + f" | ratio {last['rows'] / 1e6:g} M / {first['rows'] / 1e6:g} M |"
    )
    lines = [head, "|---" * (len(rows) + 2) + "|"]
    for key, label in ROWS:
        values = [r.get(key) for r in rows]
        ratio = ""
        if all(isinstance(v, (int, float)) for v in (first.get(key), last.get(key))) and first.get(
            key
        ):
            ratio = f"{last[key] / first[key]:.2f}"
        lines.append(
            f"| {label} | "
            + " | ".join("n/a" if v is None else str(v) for v in values)
            + f" | {ratio} |"
        )
    return "\n".join(lines)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    small, big = rows[0], rows[-1]
    out = []

    def check(name: str, ok: bool, figures: str) -> None:
        out.append(f"{'MET   ' if ok else 'MISSED'} {name}: {figures}")

    check("status warm <= 50 ms", big["warm_p50_ms"] <= 50, f"p50 {big['warm_p50_ms']} ms")
    check("status cold <= 500 ms", big["status_cold_ms"] <= 500, f"{big['status_cold_ms']} ms")
    ratio = big["status_cold_ms"] / small["status_cold_ms"]
    check("status cold ratio <= 1.5", ratio <= 1.5, f"{ratio:.2f}")
    rps = big["predict_rps_readers"] / big["predict_rps"]
    check("predict with readers >= 90% throughput", rps >= 0.9, f"{rps:.2f}")
    p99 = big["predict_p99_ms_readers"] / big["predict_p99_ms"]
    check("predict with readers p99 <= 1.25x", p99 <= 1.25, f"{p99:.2f}x")
    grow = big["predict_rps"] / small["predict_rps"]
    check("predict at the big size >= 90% of the small", grow >= 0.9, f"{grow:.2f}")
    check("qc peak <= 300 MB", big["qc_peak_mb"] <= 300, f"{big['qc_peak_mb']} MB")
    qc_ok = isinstance(big["qc_s"], float) and big["qc_s"] <= 10
    check("qc <= 10 s", qc_ok, f"{big['qc_s']} s")
    return out


# --- the "backlog" scenario (issue 29) ---------------------------------------------------------

BACKLOG_FILL = FILL.replace(
    "now() - random() * interval '7 days'", "%s::timestamptz + random() * %s * interval '1 day'"
)


def fill_default(database_url: str, rows: int, days: int) -> dict[str, Any]:
    """``rows`` readings spread over the ``days`` whole UTC days before today, none of which has
    a partition on a fresh stack: all of them land in the DEFAULT partition (what an outage of
    the maintenance schedule, a restore or a bulk import leaves). The last 7 days of them are
    also a backfill for the status page (hours with readings, not rolled up)."""
    conn = _connect(database_url)
    started = time.perf_counter()
    try:
        today = datetime.now(UTC).date()
        first = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=days)
        cur = conn.cursor()
        tag = f"backlog-{int(time.time())}"
        done, chunk = 0, 0
        while done < rows:
            n = min(CHUNK, rows - done)
            cur.execute(BACKLOG_FILL, (f"{tag}-{chunk}", first, days, n))
            done += n
            chunk += 1
            print(f"  {done:,} readings in DEFAULT ({time.perf_counter() - started:.0f} s)")
        cur.execute("ANALYZE water.water_inferences_default")
    finally:
        conn.close()
    return {"rows": rows, "days": days, "fill_s": round(time.perf_counter() - started, 1)}


def _scalar(database_url: str, sql: str) -> Any:
    conn = _connect(database_url)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return cur.fetchone()[0]
    finally:
        conn.close()


def backlog(args: argparse.Namespace) -> int:
    """Drain ``--rows`` readings of ``--days`` past days out of DEFAULT with ``potability
    maintenance`` while predict runs; print drain time, the job's peak memory, predict's
    throughput alone and during the drain, and the status page's cold refresh before and after
    (the backlog's last week is un-rolled hours: the page must answer, naming them pending)."""
    from potability import config
    from potability.local import stack as local_stack

    temp = tempfile.TemporaryDirectory(prefix="backlogbench-")
    home = Path(temp.name)
    env = functions_bench._own_stack(home, "logistic", args.threads, 1)
    url = env["DATABASE_URL"]
    try:
        config.update_env(home, INFERENCE_RETENTION_DAYS=str(max(90, args.days + 30)))
        for _ in range(20):
            req = urllib.request.Request(
                env["PREDICT_URL"],
                data=json.dumps({"sensor_id": "warm", "reading": functions_bench.READING}).encode(),
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(req, timeout=30).read()
        print(f"\n== backlog: {args.rows:,} readings over {args.days} days in DEFAULT", flush=True)
        row = fill_default(url, args.rows, args.days)
        total_before = _rows(url)
        row["status_cold_backlog_ms"] = status_cold(url, repeats=3)
        pending = _scalar(
            url,
            "SELECT count(*) FROM generate_series(date_trunc('hour', now()) - interval '167 hours',"
            " date_trunc('hour', now()) - interval '2 hours', interval '1 hour') h WHERE NOT "
            "EXISTS (SELECT 1 FROM water.inference_rolled_hours r WHERE r.hour = h)",
        )
        print(f"  status cold with the backlog {row['status_cold_backlog_ms']} ms", flush=True)
        alone = functions_bench.run_scenario(
            env["PREDICT_URL"], url, 1, args.seconds, args.concurrency, home
        )
        print(f"  predict alone {alone['requests_per_s']} req/s", flush=True)

        started = time.perf_counter()
        proc = _potability(home, "maintenance", stdout=subprocess.PIPE, text=True)
        peak = [0]

        def poll() -> None:
            while proc.poll() is None:
                peak[0] = max(peak[0], tree_rss(proc.pid))
                time.sleep(0.02)

        poller = threading.Thread(target=poll)
        poller.start()
        during = functions_bench.run_scenario(
            env["PREDICT_URL"], url, 1, args.seconds, args.concurrency, home
        )
        predict_done = time.perf_counter() - started
        out, _ = proc.communicate()
        poller.join()
        drain_s = time.perf_counter() - started
        print(out, end="")
        row.update(
            {
                "maintenance_exit": proc.returncode,
                "drain_s": round(drain_s, 1),
                "drain_readings_per_s": round(args.rows / drain_s),
                "maintenance_peak_mb": round(peak[0] / 2**20),
                "predict_rps_alone": alone["requests_per_s"],
                "predict_rps_during_drain": during["requests_per_s"],
                "predict_p99_ms_alone": alone["p99_ms"],
                "predict_p99_ms_during_drain": during["p99_ms"],
                "predict_window_inside_drain": predict_done <= drain_s,
                "predict_errors": alone["errors"] + during["errors"],
                "lost_rows": alone["lost_rows"] + during["lost_rows"],
                "extra_rows": alone["extra_rows"] + during["extra_rows"],
                "unrolled_hours_before": int(pending),
                "default_after": int(
                    _scalar(url, "SELECT count(*) FROM water.water_inferences_default")
                ),
                "log_rows_before_drain": total_before,
                "log_rows_after_drain": _rows(url),
                "status_cold_after_ms": status_cold(url, repeats=3),
            }
        )
        row["load_average"] = [round(x, 1) for x in os.getloadavg()]
        print(
            f"\nbacklog bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
            f"predict x{args.concurrency} single readings {args.seconds:g} s, loopback"
        )
        for key, value in row.items():
            print(f"  {key}: {value}")
        ratio = row["predict_rps_during_drain"] / max(row["predict_rps_alone"], 1e-9)
        # each predict request logs one reading: the log must hold exactly those more rows
        expected_after = total_before + sum(r["requests"] - r["errors"] for r in (alone, during))
        checks = [
            ("maintenance exits 0", row["maintenance_exit"] == 0, row["maintenance_exit"]),
            ("DEFAULT drained", row["default_after"] == 0, row["default_after"]),
            ("predict during the drain >= 80%", ratio >= 0.8, f"{ratio:.2f}"),
            (
                "status cold <= 1000 ms with the backlog",
                row["status_cold_backlog_ms"] <= 1000,
                f"{row['status_cold_backlog_ms']} ms",
            ),
            (
                "no predict errors / lost / extra rows",
                not (row["predict_errors"] or row["lost_rows"] or row["extra_rows"]),
                f"{row['predict_errors']}/{row['lost_rows']}/{row['extra_rows']}",
            ),
        ]
        checks.append(
            (
                "no reading lost or duplicated by the drain",
                row["log_rows_after_drain"] == expected_after,
                f"{row['log_rows_after_drain']} rows, expected {expected_after}",
            )
        )
        for name, ok, figure in checks:
            print(f"{'MET   ' if ok else 'MISSED'} {name}: {figure}")
        print(json.dumps(row))
        return 0
    finally:
        local_stack.down(home)
        temp.cleanup()


# --- the "trends" scenario (issue 33) ----------------------------------------------------------

TRENDS_FILL = """
INSERT INTO water.water_inferences (request_id, reading_index, sensor_id, ph, hardness, solids,
    chloramines, sulfate, conductivity, organic_carbon, trihalomethanes, turbidity,
    predicted_class, probability, model_name, model_version, endpoint, inferred_at, latency_ms)
SELECT 'trend-' || g, 0, 'sensor-' || lpad((g %% %s)::text, 3, '0'),
    4 + random() * 6, 100 + random() * 200, 5000 + random() * 40000, 2 + random() * 10,
    200 + random() * 250, 200 + random() * 500, 5 + random() * 20, 20 + random() * 90,
    1 + random() * 5, (random() < 0.4)::int, random(), 'water-potability',
    (5 + (g / %s) * %s / (24 * %s))::text, 'local',
    %s::timestamptz + (g / %s) * interval '1 hour' + random() * interval '59 minutes', 1.0
FROM generate_series(0, %s - 1) g
"""
"""One reading per sensor per hour over the days: the rollup rows (hours x sensors) the trends
read are those of any traffic (one reading an hour or sixty); model versions in turn."""


def _median_ms(work: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def trends(args: argparse.Namespace) -> int:
    """The status page with its 90-day trends at a year-scale history: ``--sensors`` sensors
    reporting every hour for ``--days`` days (hourly rollups rolled by the same catch-up as the
    maintenance), a quality-control run per day (``--qc-per-day``, through the QC tables'
    writer), three model versions. Prints the trend reads alone, a fresh instance's first
    refresh (cold) with and without the trends, the render, and warm HTTP page views."""
    import functions.status as status
    import functions.status_page as status_page
    from potability import db
    from potability.config import Settings
    from potability.features import FEATURE_NAMES
    from potability.governance import model_changes as mc
    from potability.inference import rollup as inference_rollup
    from potability.local import stack as local_stack
    from potability.quality import record as qc_record
    from potability.quality.drift import FeatureDrift
    from potability.quality.live_precision import LiveMetric, iso_week

    temp = tempfile.TemporaryDirectory(prefix="trendsbench-")
    home = Path(temp.name)
    env = functions_bench._own_stack(home, "logistic", args.threads, 1)
    url = env["DATABASE_URL"]
    row: dict[str, Any] = {"sensors": args.sensors, "days": args.days}
    try:
        now = datetime.now(UTC)
        first = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=args.days - 1)
        hours = int((now - first) / timedelta(hours=1))
        readings = hours * args.sensors
        conn = _connect(url)
        started = time.perf_counter()
        conn.cursor().execute(
            TRENDS_FILL,
            (args.sensors, args.sensors, 3, args.days, first, args.sensors, readings),
        )
        conn.cursor().execute("ANALYZE water.water_inferences")
        conn.close()
        row["readings"] = readings
        row["fill_s"] = round(time.perf_counter() - started, 1)
        print(f"  {readings:,} readings over {args.days} days ({row['fill_s']} s)", flush=True)
        conn = db.connect(Settings(database_url=url), timeout=3600)
        started = time.perf_counter()
        inference_rollup.catch_up(conn, now, days=args.days + 1)
        row["rollup_catch_up_s"] = round(time.perf_counter() - started, 1)
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM water.inference_hourly")
        row["rollup_rows"] = int(cur.fetchone()[0])
        print(f"  rolled up: {row['rollup_rows']:,} hourly rows", flush=True)

        settings = qc_record.QcSettings(30.0, 0.6, 20)
        runs = 0
        for k in range(args.days * args.qc_per_day):
            at = first + timedelta(hours=3) + k * timedelta(days=1) / args.qc_per_day
            if at > now:
                break
            drift = [
                FeatureDrift(f, 0.02 + (k % 7) / 100, "ok", 3276, 14000, 0.0, 0.0)
                for f in FEATURE_NAMES
            ]
            live = []
            if at + timedelta(days=1) / args.qc_per_day > now:  # the latest run: every week
                for week in range(0, args.days, 7):
                    day = first + timedelta(days=week)
                    period, monday = iso_week(day)
                    for version in ("5", "6", "7"):
                        live.append(
                            LiveMetric(
                                version,
                                period,
                                monday,
                                40,
                                20,
                                8,
                                4,
                                8,
                                20 / 28,
                                20 / 24,
                                False,
                                0.51,
                                0.86,
                            )
                        )
            qc_record.store_run(
                conn, settings, at, at - timedelta(days=7), 100, 90, live, drift, "7"
            )
            runs += 1
        for k, version in enumerate(("5", "6", "7")):
            mc.record(
                conn,
                model_name="water-potability",
                action=mc.PROMOTED,
                actor=mc.AUTOMATIC,
                when=first + timedelta(days=k * args.days / 3),
                version=version,
            )
        conn.commit()
        row["qc_runs"] = runs
        print(f"  {runs} QC runs stored", flush=True)

        def read_trends() -> dict[str, Any]:
            with closing_tx(conn) as c:
                run = qc_record.latest_run(c)
                history = status.model_history(c, now)
                return status._trends(c, now, run, history)

        read_trends()  # warm the caches, as a refreshing instance's are
        row["trends_read_ms"] = _median_ms(read_trends, args.repeats)
        last = now.date()
        row["daily_counts_ms"] = _median_ms(
            lambda: inference_rollup.daily(conn, last - timedelta(days=89), last), args.repeats
        )
        conn.rollback()
        row["drift_by_day_ms"] = _median_ms(
            lambda: qc_record.drift_by_day(conn, now - timedelta(days=90), now), args.repeats
        )
        conn.rollback()
        row["status_cold_ms"] = status_cold(url, repeats=args.repeats)
        original = status._trends
        status._trends = lambda *a: {}  # type: ignore[assignment,misc]
        try:
            row["status_cold_without_trends_ms"] = status_cold(url, repeats=args.repeats)
        finally:
            status._trends = original  # type: ignore[assignment]
        source = status.StatusSource(Settings(database_url=url))
        data = source.get()
        source.close()
        row["render_ms"] = _median_ms(lambda: status_page.render_html(data), args.repeats)
        page = status_page.render_html(data)
        row["page_kib"] = round(len(page.encode()) / 1024, 1)
        row["json_kib"] = round(len(json.dumps(data).encode()) / 1024, 1)
        without = {k: v for k, v in data.items() if k != "trends"}
        row["page_without_trends_kib"] = round(
            len(status_page.render_html(without).encode()) / 1024, 1
        )
        for fmt in ("html", "json"):
            warm = status_warm(env["STATUS_URL"] + f"?format={fmt}")
            row[f"warm_{fmt}_p50_ms"] = warm["warm_p50_ms"]
            row[f"warm_{fmt}_p99_ms"] = warm["warm_p99_ms"]
        conn.close()
        row["load_average"] = [round(x, 1) for x in os.getloadavg()]
        print(f"\ntrends bench {now:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, loopback")
        for key, value in row.items():
            print(f"  {key}: {value}")
        print(json.dumps(row))
        return 0
    finally:
        local_stack.down(home)
        temp.cleanup()


@contextlib.contextmanager
def closing_tx(conn: Any) -> Iterator[Any]:
    """A read-only transaction on an open connection, rolled back after (as the refresh's)."""
    conn.cursor().execute("START TRANSACTION READ ONLY")
    try:
        yield conn
    finally:
        conn.rollback()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "readers":
        url, threads, seconds, out = sys.argv[2:6]
        _readers(url, int(threads), float(seconds), Path(out))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "trends":
        parser = argparse.ArgumentParser(prog="scale_bench.py trends", description=trends.__doc__)
        parser.add_argument("--sensors", type=int, default=SENSORS)
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--qc-per-day", type=int, default=1, help="QC runs a day (history)")
        parser.add_argument("--repeats", type=int, default=10)
        parser.add_argument("--threads", type=int, default=8, help="function serving threads")
        return trends(parser.parse_args(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "backlog":
        parser = argparse.ArgumentParser(prog="scale_bench.py backlog", description=backlog.__doc__)
        parser.add_argument("--rows", type=int, default=1_000_000)
        parser.add_argument("--days", type=int, default=10)
        parser.add_argument("--seconds", type=float, default=10.0, help="predict, per scenario")
        parser.add_argument("--concurrency", type=int, default=8, help="predict clients")
        parser.add_argument("--threads", type=int, default=8, help="function serving threads")
        return backlog(parser.parse_args(sys.argv[2:]))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--stack", type=Path, help="use this running stack home (adds rows!)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per predict scenario")
    parser.add_argument("--concurrency", type=int, default=8, help="predict clients")
    parser.add_argument("--readers", type=int, default=50, help="concurrent status readers")
    parser.add_argument("--threads", type=int, default=8, help="function serving threads")
    args = parser.parse_args()

    from potability import config
    from potability.local import stack as local_stack

    temp: tempfile.TemporaryDirectory[str] | None = None
    if args.stack:
        home = args.stack.absolute()
        env = config.read_env(home)
    else:
        temp = tempfile.TemporaryDirectory(prefix="scalebench-")
        home = Path(temp.name)
        env = functions_bench._own_stack(home, "logistic", args.threads, 1)
    try:
        for _ in range(20):  # warm up predict: connections, imports, prepared statements
            req = urllib.request.Request(
                env["PREDICT_URL"],
                data=json.dumps({"sensor_id": "warm", "reading": functions_bench.READING}).encode(),
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(req, timeout=30).read()
        started = datetime.now(UTC)
        rows = [measure(size, env, home, args) for size in sorted(args.sizes)]
        print(
            f"\nscale bench {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
            f"predict x{args.concurrency} single readings {args.seconds:g} s per scenario, "
            f"{args.readers} status readers, loopback; load average now {os.getloadavg()}"
        )
        print(table(rows))
        print("\n".join(verdicts(rows)))
        print(json.dumps(rows))
        return 0
    finally:
        if temp is not None:
            local_stack.down(home)
            temp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
