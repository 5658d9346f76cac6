"""The split (training/split.py): stratified to the row, duplicates on one side, fixed by the
seed, and stable as lab samples arrive - on the shipped data set."""

import pandas as pd
import pytest

from potability.features import TARGET
from potability.seed import load_training_rows
from training.dataset import SAMPLE_ID
from training.split import group_keys, held_out_cutoffs, held_out_under, is_held_out, split

FRACTION, SEED = 0.2, 42


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return load_training_rows()


def test_each_class_is_held_out_at_the_test_fraction_to_the_row(frame: pd.DataFrame) -> None:
    for fraction in (0.2, 0.25, 0.33):
        parts = split(frame, fraction, SEED)
        for label in (0, 1):
            rows = int((frame[TARGET] == label).sum())
            assert int((parts.test[TARGET] == label).sum()) == round(fraction * rows)
        assert len(parts.train) + len(parts.test) == len(frame)
        assert not set(parts.train[SAMPLE_ID]) & set(parts.test[SAMPLE_ID])


def test_a_resubmitted_sample_lands_on_the_side_of_its_twin(frame: pd.DataFrame) -> None:
    twins = frame.sample(300, random_state=1).copy()
    twins[SAMPLE_ID] = twins[SAMPLE_ID].astype(str) + "-again"
    twins.iloc[:5, twins.columns.get_loc("Sulfate")] = None  # a twin with a missing value is
    doubled = pd.concat([frame, twins], ignore_index=True)  # another sample: its own group
    mask = is_held_out(doubled, FRACTION, SEED)
    keys = group_keys(doubled)
    sides = pd.Series(mask).groupby(keys).nunique()
    assert (sides == 1).all()  # no group straddles the split
    assert (pd.Series(keys).value_counts() == 2).sum() >= 295  # the twins did form groups


def test_the_seed_fixes_the_split(frame: pd.DataFrame) -> None:
    first, again = (
        split(frame, FRACTION, SEED),
        split(frame.sample(frac=1, random_state=3), FRACTION, SEED),
    )
    assert set(first.test[SAMPLE_ID]) == set(again.test[SAMPLE_ID])  # row order does not matter
    other = split(frame, FRACTION, SEED + 1)
    assert len(set(first.test[SAMPLE_ID]) & set(other.test[SAMPLE_ID])) < 0.4 * len(first.test)


def test_arriving_samples_move_few_old_rows_and_the_cut_says_which(frame: pd.DataFrame) -> None:
    """10% more rows move well under 1% of the old ones (an exactly stratified reshuffle would
    move ~1/3); the old split's cut, read from its held-out rows, names its held-out rows."""
    old = frame.iloc[:2980]
    before, after = split(old, FRACTION, SEED), split(frame, FRACTION, SEED)
    moved = (set(before.test[SAMPLE_ID]) ^ set(after.test[SAMPLE_ID])) & set(old[SAMPLE_ID])
    assert len(moved) <= 0.01 * len(old)
    cut = held_out_cutoffs(before.test, SEED)
    assert held_out_under(before.test, SEED, cut).all()
    assert not held_out_under(before.train, SEED, cut).any()
