"""Component 1, export: ``water.water_potability`` -> a CSV Dataset with row count and hash.

The rows are read through :func:`potability.db.connect` (local DSN, or the Cloud SQL
connector on GCP), ordered by ``sample_id`` so the same table content always gives the same
bytes and therefore the same ``sha256`` - which is what makes "unchanged data" checkable.
"""

import hashlib
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from potability import db, migrations
from potability.config import Settings
from potability.features import FEATURE_COLUMNS, FEATURE_NAMES, SMOKE_SENSOR_LIKE, TARGET

SAMPLE_ID = "sample_id"


class ExportResult(NamedTuple):
    rows: int
    sha256: str


def read_training_rows(conn: db.Connection) -> pd.DataFrame:
    """All labelled rows: ``sample_id`` (what the split is keyed on), the features named as the
    model expects (``FEATURE_NAMES``) and the target.

    Args:
        conn: an open database connection.
    """
    cur = conn.cursor()
    cur.execute(
        f"SELECT sample_id, {', '.join(FEATURE_COLUMNS)}, potability FROM water.water_potability "
        "WHERE sensor_id IS NULL OR sensor_id NOT LIKE %s "  # never the deploy smoke test's
        "ORDER BY sample_id",
        (SMOKE_SENSOR_LIKE,),
    )
    records = cur.fetchall()
    frame = pd.DataFrame(records, columns=[SAMPLE_ID, *FEATURE_NAMES, TARGET])
    for name in FEATURE_NAMES:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    frame[TARGET] = frame[TARGET].astype(int)
    return frame


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """A canonical CSV: fixed column order, round-trip float precision, empty for NaN."""
    return frame.to_csv(index=False, na_rep="").encode()


def write_dataset(frame: pd.DataFrame, path: Path) -> ExportResult:
    """Write ``frame`` as canonical CSV to ``path``; return its row count and sha256."""
    data = to_csv_bytes(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return ExportResult(rows=len(frame), sha256=hashlib.sha256(data).hexdigest())


def read_dataset(path: str | Path) -> pd.DataFrame:
    """Read an exported Dataset back with the right dtypes."""
    frame = pd.read_csv(path, dtype={SAMPLE_ID: str})
    for name in FEATURE_NAMES:
        frame[name] = frame[name].astype(float)
    frame[TARGET] = frame[TARGET].astype(int)
    return frame


def export(settings: Settings, path: Path) -> ExportResult:
    """Read the training table and write it to ``path``.

    Args:
        settings: which database (``database_url`` or ``cloud_sql_instance``).
        path: where the CSV goes (the Dataset artifact's local path).

    Raises:
        migrations.SchemaNotReady: the schema lacks migrations (the message says what to run).
    """
    conn = db.connect(settings)
    try:
        migrations.require_current(conn)  # an unmigrated database: say what to run, not a SQL error
        frame = read_training_rows(conn)
    finally:
        conn.close()
    if frame.empty:
        raise ValueError("water.water_potability has no rows: nothing to train on")
    if frame[TARGET].nunique() < 2:
        raise ValueError("the training data holds one class only")
    return write_dataset(frame, path)
