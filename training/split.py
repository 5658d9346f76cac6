"""The split: which exported rows are held out, keyed on each row's ``sample_id``.

A row is held out when a hash of (seed,
sample id) falls below the test fraction, a coin flip per row that never changes. So when lab
samples arrive, every earlier row keeps its side and the champion, trained on yesterday's
training part, has never seen a row of today's held-out part - the comparison in promote is
on data new to both models. (An exactly stratified split reshuffles all rows whenever one is
added: the champion would then be "evaluated" on rows it was trained on, ~80% of them, and a
memorising forest could never be replaced.) The classes are stratified in expectation; the
realised shares are logged.
"""

import hashlib
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from training.dataset import SAMPLE_ID


class Split(NamedTuple):
    train: pd.DataFrame
    test: pd.DataFrame


def held_out_draw(sample_ids: Any, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per sample id, fixed by (seed, id): the row's coin.

    Args:
        sample_ids: the rows' sample ids.
        seed: the split seed (recorded in the MLflow parent run and on registered versions).
    """
    draws = [int.from_bytes(hashlib.sha256(f"{seed}:{sid}".encode()).digest()[:8], "big")
             for sid in sample_ids]
    return np.asarray(draws, dtype=np.float64) / 2.0**64


def is_held_out(frame: pd.DataFrame, test_fraction: float, seed: int) -> np.ndarray:
    """Which rows of ``frame`` the split (``test_fraction``, ``seed``) holds out."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    return held_out_draw(frame[SAMPLE_ID], seed) < test_fraction


def split(frame: pd.DataFrame, test_fraction: float, seed: int) -> Split:
    """Train/test split keyed on ``sample_id``, stable as rows are added (see the module).

    Args:
        frame: the exported data (sample id, features, target).
        test_fraction: share of rows held out (0 < f < 1), in expectation.
        seed: the split's seed.
    """
    mask = is_held_out(frame, test_fraction, seed)
    if mask.all() or not mask.any():
        raise ValueError(f"{len(frame)} rows: the split left one part empty")
    return Split(frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True))
