"""Lifecycle of the inference log (``water.water_inferences``, daily partitions, sql/008).

:func:`run_maintenance` is the whole step (``potability maintenance``; on Google Cloud the
``<name_prefix>-maintenance`` Cloud Run job started by Cloud Scheduler every hour; locally the
scheduler service before each pipeline firing; ``potability migrate`` runs its partition part):

1. readings that landed in the DEFAULT partition (their day had no partition) are moved into
   a partition of their own day (``water.ensure_inference_partition``);
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

Each step is idempotent, and a step killed midway leaves the database as it was: partition
creation is one transaction, an archive file appears whole or not at all, and the drop comes
last. Running it again completes the work (an archive left by a killed run is verified and
reused; one that does not match the database stops the run, loudly, dropping nothing).

DDL runs as ``water_owner`` (the role that owns the log, sql/005), as migrations do: the
partitions it creates belong to that role, and the access roles reach them through the parent
table's grants (queries and inserts go through ``water.water_inferences``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
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


def default_days(conn: db.Connection) -> dict[date, int]:
    """Days with readings in the DEFAULT partition, and how many each."""
    cur = conn.cursor()
    cur.execute(
        "SELECT (inferred_at AT TIME ZONE 'UTC')::date, count(*) "
        "FROM water.water_inferences_default GROUP BY 1 ORDER BY 1"
    )
    found = {r[0]: int(r[1]) for r in cur.fetchall()}
    conn.rollback()
    return found


def ensure_partitions(
    conn: db.Connection, today: date, report: MaintenanceReport | None = None
) -> MaintenanceReport:
    """Steps 1 and 2: readings out of DEFAULT into their days; today + :data:`DAYS_AHEAD`."""
    report = report or MaintenanceReport()
    for day, rows in default_days(conn).items():
        if ensure_partition(conn, day):
            report.created.append(day)
        report.moved_from_default += rows
    for offset in range(DAYS_AHEAD + 1):
        day = today + timedelta(days=offset)
        if ensure_partition(conn, day):
            report.created.append(day)
    return report


def prune_request_keys(conn: db.Connection, now: datetime, window_days: float) -> int:
    """Step 3: forget request keys older than the idempotency window."""
    cur = conn.cursor()
    cur.execute(
        "DELETE FROM water.inference_requests WHERE inferred_at < %s",
        (now - timedelta(days=window_days),),
    )
    pruned = cur.rowcount
    conn.commit()
    return max(pruned, 0)


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
                inference_archive.arrow_schema(columns),
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


def run_maintenance(
    settings: Settings, now: datetime | None = None, store: inference_archive.Store | None = None
) -> MaintenanceReport:
    """The daily step, whole (what the benchmark times): see the module docstring."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    today = utc_day(now)
    # One run at a time (the job and an engineer by hand): the second waits for the first.
    with db.advisory_lock(settings, LOCK_NAME), closing(db.connect(settings)) as conn:
        report = ensure_partitions(conn, today)
        report.keys_pruned = prune_request_keys(conn, now, settings.inference_request_key_days)
        archive_expired(conn, settings, today, report, store)
        # the hours' counts and drift cells (sql/015), so `potability qc` finds them ready
        report.hours_rolled_up = inference_rollup.catch_up(conn, now)
    report.seconds = time.perf_counter() - started
    return report
