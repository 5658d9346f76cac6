"""Lifecycle of the inference log (``water.water_inferences``, daily partitions, sql/008).

:func:`run_maintenance` is the whole step (``potability maintenance``; on Google Cloud the
``<name_prefix>-maintenance`` Cloud Run job started by Cloud Scheduler every hour; locally the
scheduler service before each pipeline firing; ``potability migrate`` runs its partition part):

1. readings that landed in the DEFAULT partition (their day had no partition) are moved into
   a partition of their own day in batches of :data:`BATCH_ROWS`, each committed, then the
   day's table is attached (:func:`drain_day`, sql/018: a backlog of millions is drained over
   as many runs as it takes, never by one unbounded statement);
2. partitions for today and the next :data:`DAYS_AHEAD` days are created;
3. request keys older than the idempotency window (``INFERENCE_REQUEST_KEY_DAYS``) are pruned;
4. every day older than ``INFERENCE_RETENTION_DAYS`` is exported to Parquet
   (:mod:`potability.inference.archive`), the file is read back from the store and must match
   the database's rows (count and SHA-256), and only then is its partition dropped - in a short
   transaction that re-counts the rows under an exclusive lock first (with the day's drift
   cells);
5. the last week's complete hours are rolled up - counts and drift cells
   (:func:`potability.inference.rollup.catch_up`) - so `potability qc` finds at most
   the latest hour or two to count from raw rows. Hourly, this is ~3 s at 120 k readings an
   hour; the first run after sql/015 fills the whole week.

Every run is recorded (:mod:`potability.jobs`): ``water.job_status`` says when it last
succeeded, a failure raises ``maintenance_failed`` naming the step and the error class. Its
connection sets :data:`STATEMENT_TIMEOUT_MS` below its :data:`SOCKET_TIMEOUT_SECONDS`, and
the heavy loops pace themselves (:data:`PAUSE_RATIO`) so predict keeps its share of the machine.

Each step is idempotent, and a step killed midway leaves the database as it was, or with the
batches it committed: partition creation is one transaction, a drain keeps its moved batches
(in the day's table, attached by the next run), an archive file appears whole or not at
all, and the drop comes last. Running it again completes the work (an archive left by a
killed run is verified and reused; one that does not match the database stops the run,
loudly, dropping nothing).

DDL runs as ``water_owner`` (the role that owns the log, sql/005), as migrations do: the
partitions it creates belong to that role, and the access roles reach them through the parent
table's grants (queries and inserts go through ``water.water_inferences``).
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from potability import db
from potability.config import Settings
from potability.inference import archive as inference_archive
from potability.inference import rollup as inference_rollup
from potability.migrations import OWNER_ROLE

DAYS_AHEAD = 7
"""Partitions exist for today and this many days ahead: a week of missed maintenance runs
before a reading lands in the DEFAULT partition (where it is still stored)."""
LOCK_TIMEOUT_MS = 2000
"""Longest wait for a lock by one DDL statement: creating a partition locks the DEFAULT
partition, dropping one locks the log for a moment - a wait behind a long query must not queue
predict's inserts behind it for long. A step that times out is retried (:data:`ATTEMPTS`)."""
ATTEMPTS = 5
FETCH_ROWS = 20_000
"""Rows per fetch while archiving: memory holds one batch, whatever the day's size."""
PARTITION_PREFIX = "water_inferences_p"
LOCK_NAME = "potability inference-log maintenance"
MIN_RETENTION_DAYS = 14
"""As Terraform's validation of ``inference_retention_days``: the windows that read the log
(7 days) and the request keys' window (7 days) stay inside what the database keeps."""


@dataclass
class MaintenanceReport:
    created: list[date] = field(default_factory=list)
    """Partitions created (ahead, or for readings found in the DEFAULT partition)."""
    moved_from_default: int = 0
    keys_pruned: int = 0
    archived: list[tuple[date, int]] = field(default_factory=list)
    """(day, rows) exported, verified and dropped."""
    hours_rolled_up: int = 0
    """Hours of the last week whose counts were rolled up (their drift cells filled too)."""
    seconds: float = 0.0

    def lines(self) -> list[str]:
        days = ", ".join(d.isoformat() for d in self.created) or "none"
        archived = ", ".join(f"{d.isoformat()} ({n} rows)" for d, n in self.archived) or "none"
        return [
            f"partitions created: {days}",
            f"readings moved out of the default partition: {self.moved_from_default}",
            f"request keys pruned (older than the idempotency window): {self.keys_pruned}",
            f"days archived and dropped: {archived}",
            f"hours rolled up (counts and drift cells): {self.hours_rolled_up}",
            f"took {self.seconds:.2f} s",
        ]


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def partition_name(day: date) -> str:
    return f"{PARTITION_PREFIX}{day:%Y%m%d}"


def partitions(conn: db.Connection) -> list[date]:
    """The days that have a partition, oldest first."""
    cur = conn.cursor()
    cur.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'water.water_inferences'::regclass"
    )
    names = [r[0] for r in cur.fetchall()]
    conn.rollback()
    return sorted(
        datetime.strptime(n[len(PARTITION_PREFIX) :], "%Y%m%d").date()
        for n in names
        if n.startswith(PARTITION_PREFIX)
    )


def _as_owner(cur: Any) -> None:
    cur.execute(f"SET LOCAL ROLE {OWNER_ROLE}")  # both end with the transaction
    cur.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")


def _retrying(conn: db.Connection, work: Any) -> Any:
    """Run ``work(cur)`` in a transaction, again after a lock timeout (55P03)."""
    for attempt in range(ATTEMPTS):
        cur = conn.cursor()
        try:
            _as_owner(cur)
            result = work(cur)
            conn.commit()
            return result
        except Exception as exc:
            conn.rollback()
            if db.sqlstate(exc) != "55P03" or attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def ensure_partition(conn: db.Connection, day: date) -> bool:
    """The partition of ``day`` (created if missing, its readings moved out of DEFAULT)."""

    def work(cur: Any) -> bool:
        cur.execute("SELECT water.ensure_inference_partition(%s)", (day,))
        return bool(cur.fetchone()[0])

    return _retrying(conn, work)


def default_days(conn: db.Connection) -> list[date]:
    """Days with readings in the DEFAULT partition, oldest first.

    Not a ``GROUP BY`` over DEFAULT (that scanned millions of rows in one statement and outlived
    the socket timeout, issue 29): one probe of its ``inferred_at`` index per day found - the
    first reading at or after the end of the previous day found."""
    cur = conn.cursor()
    days: list[date] = []
    after: datetime | None = None
    while True:
        if after is None:
            cur.execute("SELECT min(inferred_at) FROM water.water_inferences_default")
        else:
            cur.execute(
                "SELECT min(inferred_at) FROM water.water_inferences_default "
                "WHERE inferred_at >= %s",
                (after,),
            )
        first = cur.fetchone()[0]
        if first is None:
            break
        day = utc_day(first)
        days.append(day)
        after = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    conn.rollback()
    return days


def unattached_days(conn: db.Connection) -> list[date]:
    """Day tables built beside the log but not attached: a drain a killed run left midway
    (its rows are kept there; :func:`drain_day` attaches them)."""
    cur = conn.cursor()
    cur.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'water' AND c.relkind = 'r' AND c.relname LIKE %s "
        "AND NOT c.relispartition",
        (PARTITION_PREFIX + "%",),
    )
    names = [r[0] for r in cur.fetchall()]
    conn.rollback()
    return sorted(
        datetime.strptime(n[len(PARTITION_PREFIX) :], "%Y%m%d").date()
        for n in names
        if re.fullmatch(PARTITION_PREFIX + r"\d{8}", n)  # only ours: any other table is left
    )


BATCH_ROWS = 50_000
"""Readings moved out of DEFAULT per transaction (~0.5-1 s each): bounded work per statement,
progress committed per batch, and the DEFAULT partition's lock (taken by ``DISABLE TRIGGER``)
held only that long, so predict's readings of days without a partition wait at most that."""


PAUSE_RATIO = 1.5
"""After each batch (a move out of DEFAULT, a day's attach, a few hours of rollups) the
maintenance sleeps this many times as long as the batch took: at most 40% of one core for a
backlog's drain, so predict keeps its throughput while a backlog drains (bench/scale_bench.py
backlog, docs/scale.md: on the benchmark's 2 shared cores an unpaced drain left predict 68% of
its throughput, a ratio of 1.0 77-88%). It lengthens the drain - progress is committed per
batch, so a drain longer than a run is continued by the next."""


def pace(worked_seconds: float) -> None:
    """Sleep :data:`PAUSE_RATIO` times ``worked_seconds`` (the batch's time)."""
    if PAUSE_RATIO > 0:
        time.sleep(worked_seconds * PAUSE_RATIO)


def move_batch(conn: db.Connection, day: date, rows: int = BATCH_ROWS) -> int:
    """Move at most ``rows`` readings of ``day`` out of DEFAULT into the day's table (one
    committed transaction); how many it moved."""

    def work(cur: Any) -> int:
        cur.execute("SELECT water.move_default_batch(%s, %s)", (day, rows))
        return int(cur.fetchone()[0])

    return int(_retrying(conn, work))


def drain_day(
    conn: db.Connection,
    day: date,
    rows: int | None = None,
    on_batch: Callable[[date, int], None] | None = None,
) -> tuple[int, bool]:
    """Step 1 for one day: its readings out of DEFAULT in batches of ``rows`` (each committed:
    a run killed or timed out here has made progress, the next continues), then the rest
    (what predict wrote meanwhile) moved under the lock and the day's table attached.
    Meanwhile the day's moved readings are out of the log's reads: at most the few seconds of
    one day's drain, or until the next run after a kill. Returns (rows moved, attached)."""
    rows = rows or BATCH_ROWS
    moved = 0
    while True:
        started = time.perf_counter()
        n = move_batch(conn, day, rows)
        pace(time.perf_counter() - started)
        moved += n
        if on_batch is not None:
            on_batch(day, n)
        if n < rows:
            break

    def finish(cur: Any) -> tuple[int, bool]:
        cur.execute(
            "SELECT count(*) FROM water.water_inferences_default "
            "WHERE inferred_at >= %s AND inferred_at < %s",
            (day, day + timedelta(days=1)),
        )
        rest = int(cur.fetchone()[0])
        cur.execute("SELECT water.ensure_inference_partition(%s)", (day,))
        return rest, bool(cur.fetchone()[0])

    started = time.perf_counter()
    rest, attached = _retrying(conn, finish)
    pace(time.perf_counter() - started)  # the attach reads what is left of DEFAULT
    return moved + rest, attached


def ensure_partitions(
    conn: db.Connection,
    today: date,
    report: MaintenanceReport | None = None,
    on_batch: Callable[[date, int], None] | None = None,
    batch_rows: int | None = None,
) -> MaintenanceReport:
    """Steps 1 and 2: readings out of DEFAULT into their days, in bounded batches
    (:func:`drain_day`); today + :data:`DAYS_AHEAD`."""
    report = report or MaintenanceReport()
    for day in sorted(set(unattached_days(conn)) | set(default_days(conn))):
        moved, attached = drain_day(conn, day, batch_rows, on_batch)
        if attached:
            report.created.append(day)
        report.moved_from_default += moved
    for offset in range(DAYS_AHEAD + 1):
        day = today + timedelta(days=offset)
        if ensure_partition(conn, day):
            report.created.append(day)
    return report


def prune_request_keys(conn: db.Connection, now: datetime, window_days: float) -> int:
    """Step 3: forget request keys older than the idempotency window, :data:`BATCH_ROWS` per
    committed, paced transaction (after an outage of the schedule there are days of them)."""
    cur = conn.cursor()
    pruned = 0
    while True:
        started = time.perf_counter()
        cur.execute(
            "DELETE FROM water.inference_requests WHERE ctid = ANY (ARRAY("
            "SELECT ctid FROM water.inference_requests WHERE inferred_at < %s LIMIT %s))",
            (now - timedelta(days=window_days), BATCH_ROWS),
        )
        done = max(cur.rowcount, 0)
        conn.commit()
        pruned += done
        if done < BATCH_ROWS:
            return pruned
        pace(time.perf_counter() - started)


def expired_days(conn: db.Connection, today: date, retention_days: int) -> list[date]:
    """Days whose partition is past retention: older than ``today - retention_days``."""
    cutoff = today - timedelta(days=retention_days)
    return [d for d in partitions(conn) if d < cutoff]


def _columns(conn: db.Connection) -> list[tuple[str, str]]:
    cur = conn.cursor()
    cur.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
        "WHERE attrelid = 'water.water_inferences'::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum"
    )
    return [(r[0], r[1]) for r in cur.fetchall()]


def _partition_rows(
    conn: db.Connection, day: date, names: list[str]
) -> Iterator[list[tuple[Any, ...]]]:
    """The partition's rows in id order, in batches, from one snapshot (a cursor in a
    REPEATABLE READ transaction the caller ends)."""
    conn.rollback()
    cur = conn.cursor()
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
    cur.execute(
        f"DECLARE archive_rows NO SCROLL CURSOR FOR SELECT {', '.join(names)} "
        f"FROM water.{partition_name(day)} ORDER BY id"
    )
    while True:
        cur.execute(f"FETCH {FETCH_ROWS} FROM archive_rows")
        batch = [tuple(r) for r in cur.fetchall()]
        if not batch:
            return
        yield batch


def archive_day(
    conn: db.Connection, store: inference_archive.Store, day: date, workdir: Path
) -> int:
    """Step 4 for one day: export, verify the stored file against the database, drop.

    Returns the rows archived. Raises :class:`inference_archive.ArchiveMismatch` (nothing
    dropped) when a file already in the store differs from the database's rows."""
    columns = _columns(conn)
    inference_archive.log_schema(columns)  # before anything is written or compared
    names = [n for n, _ in columns]
    name = inference_archive.object_name(day)
    try:
        if store.exists(name):
            # A run before this one got as far as the upload: check it, never overwrite it.
            digest = inference_archive.row_digest(
                row for batch in _partition_rows(conn, day, names) for row in batch
            )
            rows, sha = digest.rows, digest.sha256
        else:
            local = workdir / f"{partition_name(day)}.parquet"
            written = inference_archive.write_file(
                local,
                inference_archive.SCHEMA,
                _partition_rows(conn, day, names),
                day,
            )
            rows, sha = written.rows, written.sha256
            store.put(name, local)
            local.unlink()
    finally:
        conn.rollback()
    _, stored = inference_archive.fetch_verified(store, day, workdir)
    if (stored.rows, stored.sha256) != (rows, sha):
        raise inference_archive.ArchiveMismatch(
            f"{store.uri}/{name} holds {stored.rows} rows (sha256 {stored.sha256}) but the "
            f"partition {partition_name(day)} has {rows} (sha256 {sha}); not dropped"
        )
    (workdir / f"{day.isoformat()}.parquet").unlink(missing_ok=True)

    def drop(cur: Any) -> None:
        table = f"water.{partition_name(day)}"
        cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        cur.execute(f"SELECT count(*) FROM {table}")
        now_rows = int(cur.fetchone()[0])
        if now_rows != rows:
            raise inference_archive.ArchiveMismatch(
                f"{table} changed while it was archived ({rows} -> {now_rows} rows); "
                "not dropped, the next run archives it again"
            )
        cur.execute(f"DROP TABLE {table}")
        # the day's drift cells count the readings just dropped (sql/015): they go with them
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        inference_rollup.forget_cells(conn, start, start + timedelta(days=1))

    _retrying(conn, drop)
    return rows


def archive_expired(
    conn: db.Connection,
    settings: Settings,
    today: date,
    report: MaintenanceReport | None = None,
    store: inference_archive.Store | None = None,
) -> MaintenanceReport:
    report = report or MaintenanceReport()
    if settings.inference_retention_days < MIN_RETENTION_DAYS:
        raise ValueError(
            f"INFERENCE_RETENTION_DAYS={settings.inference_retention_days}: at least "
            f"{MIN_RETENTION_DAYS} (the status page and drift read 7 days, request "
            "keys live 7); nothing archived"
        )
    days = expired_days(conn, today, settings.inference_retention_days)
    if not days:
        return report
    store = store or inference_archive.open_store(settings)
    with tempfile.TemporaryDirectory(prefix="inference-archive-") as tmp:
        for day in days:
            report.archived.append((day, archive_day(conn, store, day, Path(tmp))))
    return report


STATEMENT_TIMEOUT_MS = 120_000
"""The longest any one statement of the maintenance may run. Every statement is bounded by
design (a batch of :data:`BATCH_ROWS` readings, a few hours of rollups, a fetch of
:data:`FETCH_ROWS`) and takes seconds; this is the backstop that turns a pathological plan into
an error the run reports (``57014``, with its step) instead of a hang."""
SOCKET_TIMEOUT_SECONDS = STATEMENT_TIMEOUT_MS / 1000 + 60
"""The connection's socket timeout: longer than :data:`STATEMENT_TIMEOUT_MS`, so the server
cancels a statement (a clear error) before the client gives up on the socket (issue 29: the
10 s default was shorter than the old ``GROUP BY`` over DEFAULT)."""


def connect(settings: Settings) -> db.Connection:
    """The maintenance's connection, with its deliberate timeouts."""
    conn = db.connect(settings, timeout=SOCKET_TIMEOUT_SECONDS)
    conn.cursor().execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    conn.commit()
    return conn


def run_maintenance(
    settings: Settings,
    now: datetime | None = None,
    store: inference_archive.Store | None = None,
    on_batch: Callable[[date, int], None] | None = None,
    batch_rows: int | None = None,
) -> MaintenanceReport:
    """The hourly step, whole (what the benchmark times): see the module docstring. Recorded
    as a run of the ``maintenance`` job (:func:`potability.jobs.recorded`): a failure raises
    ``maintenance_failed`` naming the step, a success resolves it. ``on_batch`` is called
    after every batch moved out of DEFAULT (progress for the benchmark and the kill test);
    ``batch_rows`` overrides :data:`BATCH_ROWS`."""
    from potability import jobs

    started = time.perf_counter()
    now = now or datetime.now(UTC)
    today = utc_day(now)
    with (
        jobs.recorded(settings, jobs.MAINTENANCE, quarantine=inference_rollup.quarantined) as run,
        ExitStack() as held,
    ):
        with run.step("lock"):
            # One run at a time (the job and an engineer by hand): the second waits.
            held.enter_context(db.advisory_lock(settings, LOCK_NAME))
        with run.step("connect"):
            conn = held.enter_context(closing(connect(settings)))
        with run.step("partitions"):
            report = ensure_partitions(conn, today, on_batch=on_batch, batch_rows=batch_rows)
        with run.step("request_keys"):
            report.keys_pruned = prune_request_keys(conn, now, settings.inference_request_key_days)
        with run.step("retention"):
            archive_expired(conn, settings, today, report, store)
        with run.step("rollups"):
            # the hours' counts and drift cells (sql/015), so `potability qc` finds them ready
            report.hours_rolled_up = inference_rollup.catch_up(
                conn, now, job=jobs.MAINTENANCE, pace=pace
            )
    report.seconds = time.perf_counter() - started
    return report
