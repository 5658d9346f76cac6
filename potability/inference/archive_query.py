"""SQL over the whole local archive: DuckDB reads the day files as one table.

``potability archive query "SQL"`` answers a question of a year of readings (docs/archive.md)
without our Python touching a row: DuckDB (an existing, vectorised, out-of-core engine) scans
the Parquet files, reads only the columns a query names, skips the days its ``day`` filter
excludes (Hive partition pruning on the ``day=YYYY-MM-DD`` folders) and spills to disk rather
than growing past its memory limit. On Google Cloud the same data is the BigQuery external
table of terraform/archive.tf, under the same name, and the documented queries run unchanged
in both.

The table: ``water_archive.water_inferences`` (:data:`TABLE`), the columns of
:data:`potability.inference.archive.SCHEMA` plus ``day`` (DATE, from the folder name - the UTC
day of ``inferred_at``). An archive without any day is an empty table of that shape, not an
error.

Why these DuckDB settings (DuckDB's out-of-memory guide, the three it names:
https://duckdb.org/docs/2.0/guides/performance/oom.html; its limits:
https://duckdb.org/docs/2.0/operations_manual/limits.html):
- ``memory_limit`` (``ARCHIVE_QUERY_MEMORY_LIMIT``, default 1GB): DuckDB's buffer manager
  keeps its working set under it and spills sorts, joins and large aggregations to
  ``temp_directory``. Without it DuckDB takes 80 % of the machine's RAM - beside a database,
  a model server and MLflow on a laptop. The limit binds the buffer manager only (some
  operations allocate around it), so the process's peak is measured, not assumed:
  bench/README.md, the documented queries over a year (105 M readings).
- ``threads`` (``ARCHIVE_QUERY_THREADS``, default 2): every thread scans its own row groups
  with its own buffers, so memory grows with threads (the guide's first advice against running
  out of memory); two is what the reference machine has.
- ``preserve_insertion_order = false``: a query without ORDER BY may return rows in any order,
  which lets DuckDB stream big results instead of buffering them to keep file order.
- ``TimeZone = UTC``: ``inferred_at`` is a UTC timestamp; a ``TIMESTAMP '...'`` literal in a
  query means UTC, as it does in BigQuery.
- no extension is installed or loaded from the network (``autoinstall_known_extensions``
  off): Parquet is built in.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pa_csv

from potability.config import Settings
from potability.inference import archive as inference_archive

if TYPE_CHECKING:  # imported when a query runs: the rest of the command does not need it
    import duckdb

DATASET = "water_archive"
TABLE = f"{DATASET}.water_inferences"
"""The table's name, locally (a DuckDB schema and view) and on BigQuery (dataset and table,
terraform/archive.tf): a documented query runs in both without edits."""
PARTITION = "day"

_DUCKDB_TYPES = {
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.int16(): "SMALLINT",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


class ArchiveNotLocal(ValueError):
    """The archive is a ``gs://`` bucket: query it in BigQuery (or a local copy)."""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def table_sql(root: Path) -> str:
    """The SELECT behind the view: every day file under ``root``, or none (empty, same shape)."""
    if not any(root.glob(f"{PARTITION}=*/{inference_archive.FILE_NAME}")):
        columns = ", ".join(
            f"CAST(NULL AS {_DUCKDB_TYPES[f.type]}) AS {f.name}" for f in inference_archive.SCHEMA
        )
        return f"SELECT {columns}, CAST(NULL AS DATE) AS {PARTITION} WHERE false"
    pattern = str(root / f"{PARTITION}=*" / inference_archive.FILE_NAME)
    # union_by_name: a file written before a column was appended (archive.SCHEMA's rule) reads
    # it as NULL; hive_types pins day to DATE whatever the folder names look like.
    return (
        f"SELECT * FROM read_parquet({_literal(pattern)}, hive_partitioning = true, "
        f"union_by_name = true, hive_types = {{'{PARTITION}': DATE}})"
    )


def local_root(settings: Settings, archive: str | None = None) -> Path:
    """The archive folder to query: ``archive`` if given, else the configured archive."""
    uri = archive or inference_archive.archive_uri(settings)
    if uri.startswith("gs://"):
        raise ArchiveNotLocal(
            f"the archive is {uri}: on Google Cloud query the BigQuery table {TABLE} "
            "(docs/archive.md), or copy the bucket and pass --archive DIR"
        )
    return Path(uri)


@contextmanager
def connect(settings: Settings, root: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection with the archive as :data:`TABLE`, its limits set (module doc);
    its spill folder is removed on exit."""
    import duckdb

    spill = Path(tempfile.mkdtemp(prefix="archive-query-"))
    con = duckdb.connect(
        ":memory:",
        config={
            "memory_limit": settings.archive_query_memory_limit,
            "threads": settings.archive_query_threads,
            "temp_directory": str(spill),
            "preserve_insertion_order": False,
            "autoinstall_known_extensions": False,
            "TimeZone": "UTC",
        },
    )
    try:
        con.execute(f"CREATE SCHEMA {DATASET}")
        con.execute(f"CREATE VIEW {TABLE} AS {table_sql(root)}")
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def run(
    con: duckdb.DuckDBPyConnection, sql: str, batch_rows: int = 65_536
) -> pa.RecordBatchReader | None:
    """Run ``sql``; its result as a stream of Arrow batches (``None`` for a statement that
    returns nothing). Rows are never all in memory at once."""
    relation = con.sql(sql)  # a statement that returns nothing has run, and gives None
    if relation is None:
        return None
    return relation.to_arrow_reader(batch_rows)


def query_table(settings: Settings, sql: str, archive: str | None = None) -> pa.Table:
    """The whole result of ``sql`` as an Arrow table (``.to_pandas()``): for a notebook or a
    test, where the result is small; the command streams instead (:func:`write_csv`)."""
    with connect(settings, local_root(settings, archive)) as con:
        reader = run(con, sql)
        return reader.read_all() if reader is not None else pa.table({})


def write_csv(settings: Settings, sql: str, out: IO[bytes], archive: str | None = None) -> int:
    """Stream the result of ``sql`` to ``out`` as CSV with a header; returns the row count."""
    rows = 0
    with connect(settings, local_root(settings, archive)) as con:
        reader = run(con, sql)
        if reader is None:
            return 0
        with pa_csv.CSVWriter(out, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows
