"""A candidate's size and scoring time (training/footprint.py), and the default grid's budget."""

from __future__ import annotations

import itertools

import pytest
import skops.io
from sklearn.tree import DecisionTreeClassifier

from potability.seed import load_dataset, load_training_rows
from training import footprint, modeling
from training.candidates import features_and_target
from training.split import split


def test_footprint_is_the_skops_size_and_positive_scoring_times() -> None:
    frame = load_dataset()
    x, y = features_and_target(frame.dropna())
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y)
    cost = footprint.footprint(model, x)
    assert cost["model_bytes"] == len(skops.io.dumps(model))
    assert cost["scoring_ms_1"] > 0 and cost["scoring_ms_100"] > 0
    # a deeper tree is larger: the metric sees what the grid changes
    deeper = DecisionTreeClassifier(random_state=0).fit(x, y)
    assert footprint.model_bytes(deeper) > cost["model_bytes"]


def _heaviest_points(family: str) -> list[dict]:
    """Every point of the default grid with the family's smallest leaves (the largest trees)."""
    grid = dict(modeling.grid("default")[family])
    if "clf__min_samples_leaf" in grid:
        grid["clf__min_samples_leaf"] = [min(grid["clf__min_samples_leaf"])]
    keys = sorted(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


@pytest.mark.integration  # ~10 s of forest fits: kept out of `make check`
def test_the_default_grid_meets_the_size_budget() -> None:
    """Issue 34: every forest the default grid can produce, fitted on a daily run's training
    rows, is under the per-candidate budget even inside the soft vote (which holds a copy of
    each member), and a run's candidates together stay under the per-run budget."""
    train = split(load_training_rows(), 0.2, 42).train
    x, y = features_and_target(train)
    largest = {}
    for family in ("random_forest", "extra_trees"):
        sizes = []
        for point in _heaviest_points(family):
            pipeline = modeling.make_pipeline(family, 0).set_params(**point).fit(x, y)
            sizes.append(footprint.model_bytes(pipeline))
        largest[family] = max(sizes)
    boosting = modeling.make_pipeline("hist_gradient_boosting", 0).fit(x, y)
    vote = largest["random_forest"] + largest["extra_trees"] + footprint.model_bytes(boosting)
    assert vote <= footprint.MAX_MODEL_BYTES, (largest, vote)
    # the run: both forests, the vote, and the small families (well under 1 MB each)
    assert largest["random_forest"] + largest["extra_trees"] + vote + 4e6 <= (
        footprint.MAX_RUN_BYTES
    )
