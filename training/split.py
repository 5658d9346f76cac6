"""The split: which exported rows are held out - stratified by class, duplicates kept together,
and as stable as rows arriving allow.

The rule (:data:`RULE`):

1. **Duplicates are one group.** Rows with the same measurements (rounded to 9 significant
   digits; missing is a value) are one group (:func:`group_keys`) - a lab sample submitted twice
   can never sit on both sides, where the model would be scored on a row it learned.
2. **Each group has a coin**: a uniform number fixed by (seed, group key) (:func:`group_draws`).
3. **Stratified**: each group belongs to the class most of its rows have (ties: potable, the
   class precision is measured on). Within each class the groups with the smallest coins are
   held out until the class's held-out rows reach ``round(test_fraction x its rows)`` - so the
   held-out share of each class is the test fraction, to the row (to a group's size with
   duplicates).

Stability: a row's coin never changes, so when lab samples arrive only rows whose coin lies
near a class's cut move (measured in tests/training/test_split.py: appending 10% more rows
moves 17 of 2,980 old ones, 0.6%); an exactly stratified reshuffle would move ~1/3. Promote
guards the rest: each registered version records its split's cut per class (the largest
held-out coin, :func:`held_out_cutoffs`), and the champion is compared only on held-out rows
whose coin is at or below its own cut - rows it can never have trained on
(:func:`held_out_under`).
"""

import hashlib
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from potability.features import FEATURE_NAMES, TARGET
from training.dataset import SAMPLE_ID

RULE = "stratified-groups-v1"
"""The rule's name, tagged on registered versions (``split_rule``) next to seed and fraction."""
SIGNIFICANT_DIGITS = 9


class Split(NamedTuple):
    train: pd.DataFrame
    test: pd.DataFrame


def _uniform(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def _canonical(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "nan"
    return f"{float(value):.{SIGNIFICANT_DIGITS - 1}e}"


def group_keys(frame: pd.DataFrame) -> np.ndarray:
    """One key per row; rows with the same measurements share it."""
    values = frame[list(FEATURE_NAMES)].to_numpy(dtype=object)
    return np.array(["|".join(_canonical(v) for v in row) for row in values], dtype=object)


def group_draws(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per row, fixed by (seed, the row's group key): its coin."""
    keys = group_keys(frame)
    draws = {key: _uniform(f"{seed}:{key}") for key in set(keys)}
    return np.array([draws[k] for k in keys], dtype=np.float64)


def strata(frame: pd.DataFrame) -> np.ndarray:
    """Each row's stratum: the class most rows of its group have (ties: 1, potable)."""
    keys = group_keys(frame)
    labels = frame[TARGET].astype(int).to_numpy()
    share = pd.Series(labels).groupby(keys).mean()
    return (share.reindex(keys).to_numpy() >= 0.5).astype(int)


def is_held_out(frame: pd.DataFrame, test_fraction: float, seed: int) -> np.ndarray:
    """Which rows of ``frame`` the split (``test_fraction``, ``seed``) holds out (the rule in
    the module docstring)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    keys, coins, layer = group_keys(frame), group_draws(frame, seed), strata(frame)
    mask = np.zeros(len(frame), dtype=bool)
    for stratum in (0, 1):
        rows = np.flatnonzero(layer == stratum)
        target = round(test_fraction * len(rows))
        groups = pd.DataFrame({"key": keys[rows], "coin": coins[rows], "row": rows})
        taken = 0
        for _, members in groups.groupby(["coin", "key"], sort=True):
            if taken >= target:
                break
            mask[members["row"].to_numpy()] = True
            taken += len(members)
    return mask


def held_out_cutoffs(test: pd.DataFrame, seed: int) -> dict[int, float]:
    """The split's cut per class: the largest coin among its held-out rows (from the held-out
    rows alone - a group is wholly on one side, so its stratum is the same there). Every row
    with a coin at or below it was held out."""
    coins, layer = group_draws(test, seed), strata(test)
    return {s: float(coins[layer == s].max()) if (layer == s).any() else -1.0 for s in (0, 1)}


def held_out_under(test: pd.DataFrame, seed: int, cutoffs: Mapping[int, float]) -> np.ndarray:
    """Which of today's held-out rows an earlier split with ``cutoffs`` held out too."""
    coins, layer = group_draws(test, seed), strata(test)
    limit = np.where(layer == 1, cutoffs[1], cutoffs[0])
    return coins <= limit


def legacy_held_out(frame: pd.DataFrame, test_fraction: float, seed: int) -> np.ndarray:
    """The rule before :data:`RULE` (a coin per sample id below the fraction): versions
    registered without ``split_rule`` were trained with it."""
    draws = np.array([_uniform(f"{seed}:{sid}") for sid in frame[SAMPLE_ID]], dtype=np.float64)
    return draws < test_fraction


def split(frame: pd.DataFrame, test_fraction: float, seed: int) -> Split:
    """Train/test split: stratified, duplicate-safe, stable as rows are added (the module).

    Args:
        frame: the exported data (sample id, features, target).
        test_fraction: share of each class held out (0 < f < 1).
        seed: the split's seed.
    """
    mask = is_held_out(frame, test_fraction, seed)
    if mask.all() or not mask.any():
        raise ValueError(f"{len(frame)} rows: the split left one part empty")
    return Split(frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True))
