"""Seed ``water.water_potability`` from the public data set, idempotently.

The CSV is verified against its published checksum first: training on a silently different
file would make every reported number meaningless.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pandas as pd

from potability.db import Connection
from potability.features import FEATURE_COLUMNS, FEATURE_NAMES, TARGET
from potability.package_data import shipped_dir

DATA_CSV = shipped_dir("data") / "water_potability.csv"
DATA_SHA256 = "a76bd6b19b547e31d5b43feb0c79412d7b08a654429f7d16e8d2f0572768b55c"
SEED_SAMPLED_AT = "2021-01-01T00:00:00+00:00"
SEED_SUBMITTER = "kaggle:adityakadiwal/water-potability"
_CHUNK = 500


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_dataset(path: Path = DATA_CSV, expected_sha256: str | None = DATA_SHA256) -> pd.DataFrame:
    """The data set as a frame with our column names (features as in FEATURE_NAMES,
    ``potability``)."""
    if expected_sha256 is not None and sha256_of(path) != expected_sha256:
        raise ValueError(f"{path} does not match the published sha256 {expected_sha256}")
    frame = pd.read_csv(path)
    frame = frame.rename(columns={"Potability": TARGET})
    missing = set(FEATURE_NAMES) - set(frame.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}")
    return frame[[*FEATURE_NAMES, TARGET]]


def _value(v: float | None) -> float | None:
    """A cell of the data set: None for a missing value (pandas' NaN)."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def seed_sample_id(index: int) -> str:
    """The ``sample_id`` of the data set's row ``index`` (0-based) in the training table."""
    return f"seed-{index + 1:04d}"


def load_training_rows() -> pd.DataFrame:
    """The data set as the pipeline's export sees it after seeding: ``sample_id`` first.

    For code that trains without a database (benchmarks, tests): the split is keyed on it.
    """
    frame = load_dataset()
    frame.insert(0, "sample_id", [seed_sample_id(i) for i in range(len(frame))])
    return frame


def seed(conn: Connection, frame: pd.DataFrame | None = None, as_role: str = "") -> int:
    """Insert the data set rows that are not there yet; return how many were inserted.

    Args:
        as_role: a role to ``SET ROLE`` to for the insert (the migration job writes as
            ``water_owner``, which it is a member of); reset afterwards.
    """
    frame = load_dataset() if frame is None else frame
    columns = ["sample_id", *FEATURE_COLUMNS, "potability", "sampled_at", "submitted_by", "source"]
    rows = [
        (
            seed_sample_id(i),
            *(_value(r[n]) for n in FEATURE_NAMES),
            int(r[TARGET]),
            SEED_SAMPLED_AT,
            SEED_SUBMITTER,
            "seed",
        )
        for i, r in enumerate(frame.to_dict("records"))
    ]
    cur = conn.cursor()
    if as_role:
        cur.execute(f'SET ROLE "{as_role}"')
    inserted = 0
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        cur.execute(
            f"INSERT INTO water.water_potability ({', '.join(columns)}) VALUES "
            + ", ".join([placeholder] * len(chunk))
            + " ON CONFLICT (sample_id) DO NOTHING",
            [v for row in chunk for v in row],
        )
        inserted += max(cur.rowcount, 0)
    conn.commit()
    if as_role:
        cur.execute("RESET ROLE")
        conn.commit()
    return inserted
