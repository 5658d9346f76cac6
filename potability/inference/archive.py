"""The long-term archive of the inference log: one Parquet file per UTC day, write-once.

Where it lives (``INFERENCE_ARCHIVE_URI``): ``gs://BUCKET/PREFIX`` on Google Cloud (the
archive bucket, Terraform's ``inference_archive_prefix``), a local folder otherwise (default
``<home>/inference-archive``). A day's file is ``day=YYYY-MM-DD/water_inferences.parquet``
(Hive-style, so pandas/pyarrow/BigQuery read the whole archive as one partitioned data set).

Every file carries its row count and a SHA-256 of its rows (:func:`row_digest`: each row as a
canonical JSON line, in ``id`` order) in the Parquet key-value metadata; :func:`verify` reads
the file back and recomputes both, and :func:`read_day` refuses a file whose content does not
match them. The maintenance step (:mod:`potability.inference.log`) drops a partition only when
the file read back from the store matches the rows in the database.

Stores are thin adapters with three calls (exists / put / fetch): :class:`LocalStore`
(``os.replace`` of a finished temp file: a killed writer leaves no partial file) and
:class:`GcsStore` (google-cloud-storage; an upload is atomic - an object exists whole or not at
all - and ``if_generation_match=0`` makes it create-only: the job's service account can create
objects but not replace or delete them, so a bug cannot overwrite a regulator's record).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from potability.config import Settings

FILE_NAME = "water_inferences.parquet"
META_ROWS = b"potability.rows"
META_SHA256 = b"potability.sha256"
META_DAY = b"potability.day"

PG_TYPES: dict[str, pa.DataType] = {
    "bigint": pa.int64(),
    "integer": pa.int32(),
    "smallint": pa.int16(),
    "double precision": pa.float64(),
    "real": pa.float32(),
    "boolean": pa.bool_(),
    "text": pa.string(),
    "character varying": pa.string(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
}
"""PostgreSQL column type -> Parquet (Arrow) type; timestamps keep PostgreSQL's microseconds."""


_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("id", pa.int64()),
    ("request_id", pa.string()),
    ("reading_index", pa.int32()),
    ("sensor_id", pa.string()),
    ("ph", pa.float64()),
    ("hardness", pa.float64()),
    ("solids", pa.float64()),
    ("chloramines", pa.float64()),
    ("sulfate", pa.float64()),
    ("conductivity", pa.float64()),
    ("organic_carbon", pa.float64()),
    ("trihalomethanes", pa.float64()),
    ("turbidity", pa.float64()),
    ("predicted_class", pa.int16()),
    ("probability", pa.float64()),
    ("model_name", pa.string()),
    ("model_version", pa.string()),
    ("endpoint", pa.string()),
    ("inferred_at", pa.timestamp("us", tz="UTC")),
    ("latency_ms", pa.float64()),
    ("caller", pa.string()),
    ("measured_at", pa.timestamp("us", tz="UTC")),
]
SCHEMA = pa.schema(_COLUMNS)
"""The archive's Parquet schema, stable: every file has exactly these columns in this order
(docs/archive.md documents each one). Readers depend on it - ``potability archive query``
(DuckDB) and the BigQuery external table (terraform/archive.tf) - so it is pinned here rather
than taken from whatever the log's columns are on the day a file is written: a migration that
changes ``water.water_inferences`` makes :func:`log_schema` refuse to archive (the days stay in
the database, ``maintenance_failed`` is raised) until this schema and the document say how the
change is carried. The rule: columns are only ever appended, nullable; readers take the union
by name, so an older file reads the new column as NULL."""


class ArchiveMismatch(RuntimeError):
    """An archive file does not hold the rows it should (nothing is dropped on it)."""


class SchemaChanged(ArchiveMismatch):
    """The log's columns are no longer the archive's :data:`SCHEMA` (nothing is archived)."""


def object_name(day: date) -> str:
    return f"day={day.isoformat()}/{FILE_NAME}"


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


class RowDigest:
    """Row count and SHA-256 over rows fed in order (the same whether they come from the
    database or from a Parquet file read back)."""

    def __init__(self) -> None:
        self.rows = 0
        self._hash = hashlib.sha256()

    def update(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            line = json.dumps([_canonical(v) for v in row], separators=(",", ":"))
            self._hash.update(line.encode())
            self._hash.update(b"\n")
            self.rows += 1

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def row_digest(rows: Iterable[Sequence[Any]]) -> RowDigest:
    digest = RowDigest()
    digest.update(rows)
    return digest


def arrow_schema(columns: Sequence[tuple[str, str]]) -> pa.Schema:
    """The Parquet schema of the log's columns (name, PostgreSQL type); unknown types as text."""
    return pa.schema([(name, PG_TYPES.get(pg_type, pa.string())) for name, pg_type in columns])


def log_schema(columns: Sequence[tuple[str, str]]) -> pa.Schema:
    """The archive's :data:`SCHEMA`, if the log's columns (name, PostgreSQL type, in order)
    are exactly it; else :class:`SchemaChanged` naming the difference."""
    found = arrow_schema(columns)
    if found.equals(SCHEMA):
        return SCHEMA
    have = {f.name: f.type for f in found}
    want = {f.name: f.type for f in SCHEMA}
    differences = [f"new column {n} ({t})" for n, t in have.items() if n not in want]
    differences += [f"column {n} is gone" for n in want if n not in have]
    differences += [
        f"column {n} is {have[n]}, the archive has {want[n]}"
        for n in want
        if n in have and have[n] != want[n]
    ]
    if not differences:
        differences = [f"column order {found.names} differs from {SCHEMA.names}"]
    raise SchemaChanged(
        "water.water_inferences no longer matches the archive's schema "
        f"(potability.inference.archive.SCHEMA, docs/archive.md): {'; '.join(differences)}. "
        "Nothing archived or dropped: extend SCHEMA (append, nullable) and the document first"
    )


@dataclass(frozen=True)
class Written:
    path: Path
    rows: int
    sha256: str


def write_file(
    path: Path, schema: pa.Schema, batches: Iterable[Sequence[Sequence[Any]]], day: date
) -> Written:
    """Write row batches to a Parquet file at ``path``; its metadata gets count and digest.

    Parquet's footer is written last, so the digest of the rows goes into its key-value
    metadata after they are streamed: memory holds one batch, whatever the day's size."""
    digest = RowDigest()
    names = schema.names
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in batches:
            digest.update(batch)
            columns = list(zip(*batch, strict=False))
            writer.write_table(
                pa.table(
                    {
                        n: pa.array(list(c), type=schema.field(n).type)
                        for n, c in zip(names, columns, strict=False)
                    },
                    schema=schema,
                )
            )
        metadata = {
            META_ROWS: str(digest.rows).encode(),
            META_SHA256: digest.sha256.encode(),
            META_DAY: day.isoformat().encode(),
        }
        # pyarrow takes bytes keys and values as well as text; pyarrow-stubs declares text only
        writer.add_key_value_metadata(metadata)  # type: ignore[arg-type]
    return Written(path, digest.rows, digest.sha256)


def file_digest(path: Path) -> tuple[RowDigest, dict[bytes, bytes]]:
    """Recompute count and digest from a Parquet file's rows; also its metadata."""
    parquet = pq.ParquetFile(path)
    digest = RowDigest()
    names = parquet.schema_arrow.names
    for batch in parquet.iter_batches(batch_size=50_000):
        columns = [batch.column(n).to_pylist() for n in names]
        digest.update(zip(*columns, strict=False))
    return digest, dict(parquet.metadata.metadata or {})


def verify(path: Path, rows: int | None = None, sha256: str | None = None) -> RowDigest:
    """Read a file back: its rows must match its own metadata (and ``rows``/``sha256`` if given)."""
    digest, meta = file_digest(path)
    claimed = (int(meta.get(META_ROWS, b"-1")), meta.get(META_SHA256, b"").decode())
    if (digest.rows, digest.sha256) != claimed:
        raise ArchiveMismatch(
            f"{path}: rows/sha256 {digest.rows}/{digest.sha256} do not match "
            f"its metadata {claimed[0]}/{claimed[1]}"
        )
    if rows is not None and digest.rows != rows or sha256 is not None and digest.sha256 != sha256:
        raise ArchiveMismatch(
            f"{path}: rows/sha256 {digest.rows}/{digest.sha256}, expected {rows}/{sha256}"
        )
    return digest


# --- stores ------------------------------------------------------------------------------


class Store(Protocol):
    uri: str

    def exists(self, name: str) -> bool: ...
    def put(self, name: str, source: Path) -> None: ...
    def fetch(self, name: str, target: Path) -> None: ...
    def names(self) -> list[str]: ...


class LocalStore:
    """A folder; a file appears complete or not at all (written aside, then renamed)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def put(self, name: str, source: Path) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)

    def fetch(self, name: str, target: Path) -> None:
        shutil.copyfile(self.root / name, target)

    def names(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.glob(f"day=*/{FILE_NAME}"))


class GcsStore:
    """``gs://bucket/prefix`` through google-cloud-storage (Blob.upload_from_filename with
    ``if_generation_match=0``: create the object only if none exists - the create-only
    precondition, https://cloud.google.com/storage/docs/request-preconditions)."""

    def __init__(self, uri: str, client: Any = None) -> None:
        if not uri.startswith("gs://"):
            raise ValueError(f"not a gs:// URI: {uri!r}")
        bucket, _, prefix = uri[len("gs://") :].partition("/")
        self.uri = uri
        self.prefix = prefix.strip("/")
        if client is None:
            from google.cloud import storage  # only on GCP

            client = storage.Client()
        self.bucket = client.bucket(bucket)
        self._client = client

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def exists(self, name: str) -> bool:
        return bool(self.bucket.blob(self._key(name)).exists())

    def put(self, name: str, source: Path) -> None:
        self.bucket.blob(self._key(name)).upload_from_filename(
            str(source), content_type="application/vnd.apache.parquet", if_generation_match=0
        )

    def fetch(self, name: str, target: Path) -> None:
        self.bucket.blob(self._key(name)).download_to_filename(str(target))

    def names(self) -> list[str]:
        start = len(self.prefix) + 1 if self.prefix else 0
        return sorted(
            b.name[start:]
            for b in self._client.list_blobs(self.bucket, prefix=self._key("day="))
            if b.name.endswith(FILE_NAME)
        )


def archive_uri(settings: Settings) -> str:
    return settings.inference_archive_uri or str(settings.home / "inference-archive")


def open_store(settings: Settings) -> Store:
    uri = archive_uri(settings)
    return GcsStore(uri) if uri.startswith("gs://") else LocalStore(Path(uri))


def fetch_verified(store: Store, day: date, workdir: Path) -> tuple[Path, RowDigest]:
    """A day's file, downloaded to ``workdir`` and verified against its own metadata."""
    local = workdir / f"{day.isoformat()}.parquet"
    store.fetch(object_name(day), local)
    return local, verify(local)


def read_day(settings: Settings, day: date, store: Store | None = None) -> pa.Table:
    """One archived day as an Arrow table (``.to_pandas()`` for a DataFrame), verified: a file
    whose rows do not match its recorded count and SHA-256 raises :class:`ArchiveMismatch`."""
    store = store or open_store(settings)
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = fetch_verified(store, day, Path(tmp))
        return pq.read_table(path)


def archived_days(settings: Settings, store: Store | None = None) -> list[date]:
    store = store or open_store(settings)
    return [date.fromisoformat(n.split("/")[0].removeprefix("day=")) for n in store.names()]


def batches_of(rows: Iterator[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
