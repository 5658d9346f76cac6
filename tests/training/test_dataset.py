"""Export from the real PostgreSQL: every labelled row, a stable content hash that changes with
the data, and a CSV that reads back to the same frame."""

from pathlib import Path
from typing import Any

import pandas as pd

from potability.config import Settings
from potability.features import FEATURE_NAMES, TARGET
from potability.seed import load_dataset
from training.dataset import export, read_dataset


def test_export_writes_all_rows_with_a_stable_hash(
    settings: Settings, clean_db: Any, tmp_path: Path
) -> None:
    first = export(settings, tmp_path / "a.csv")
    second = export(settings, tmp_path / "b.csv")
    assert first.rows == len(load_dataset()) == 3276
    assert first.sha256 == second.sha256
    frame = read_dataset(tmp_path / "a.csv")
    assert list(frame.columns) == ["sample_id", *FEATURE_NAMES, TARGET]
    assert frame["sample_id"].is_unique and frame["sample_id"].is_monotonic_increasing
    assert frame[TARGET].sum() == load_dataset()[TARGET].sum()
    assert frame["ph"].isna().sum() == load_dataset()["ph"].isna().sum()
    # Round trip is exact (the hash covers the values the model trains on).
    pd.testing.assert_frame_equal(
        frame.drop(columns="sample_id").sort_values(list(FEATURE_NAMES)).reset_index(drop=True),
        load_dataset()
        .astype(dict.fromkeys(FEATURE_NAMES, float))
        .sort_values(list(FEATURE_NAMES))
        .reset_index(drop=True),
        check_dtype=False,
    )


def test_a_new_lab_sample_changes_the_hash(
    settings: Settings, clean_db: Any, tmp_path: Path
) -> None:
    before = export(settings, tmp_path / "before.csv")
    cur = clean_db.cursor()
    cur.execute(
        "INSERT INTO water.water_potability (sample_id, ph, potability, sampled_at, "
        "submitted_by, source) VALUES ('export-test-1', 7.0, 1, now(), 'test', 'lab')"
    )
    clean_db.commit()
    try:
        after = export(settings, tmp_path / "after.csv")
    finally:
        cur.execute("DELETE FROM water.water_potability WHERE sample_id = 'export-test-1'")
        clean_db.commit()
    assert after.rows == before.rows + 1
    assert after.sha256 != before.sha256
