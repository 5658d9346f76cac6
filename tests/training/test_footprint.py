"""A candidate's size and scoring time (training/footprint.py), and the default grid's budget."""

from __future__ import annotations

import itertools

import pytest
import skops.io
from sklearn.base import clone
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
    """Every point of the lean grid with the family's smallest leaves (the largest trees)."""
    grid = dict(modeling.grid("lean")[family])
    if "clf__min_samples_leaf" in grid:
        grid["clf__min_samples_leaf"] = [min(grid["clf__min_samples_leaf"])]
    keys = sorted(grid)
    points = itertools.product(*(grid[key] for key in keys))
    return [dict(zip(keys, values, strict=True)) for values in points]


@pytest.mark.integration  # ~20 s of forest fits: kept out of `make check`
def test_the_lean_grid_meets_the_size_budget() -> None:
    """Issue 34: every forest the lean grid can produce, fitted on a daily run's training
    rows, and the soft vote of the heaviest ones (as served: without its second copy of the
    members, unchanged predictions) are under the per-candidate budget, and a run's candidates
    together under the per-run budget."""
    train = split(load_training_rows(), 0.2, 42).train
    x, y = features_and_target(train)
    heaviest = {}
    for family in ("random_forest", "extra_trees"):
        fitted = [
            modeling.make_pipeline(family, 0).set_params(**point).fit(x, y)
            for point in _heaviest_points(family)
        ]
        heaviest[family] = max(fitted, key=footprint.model_bytes)
    boosting = modeling.make_pipeline("hist_gradient_boosting", 0).fit(x, y)
    members = [*heaviest.items(), ("hist_gradient_boosting", boosting)]
    # as training builds it: unfitted members (FittedCandidate.pipeline), fitted by the vote
    vote = modeling.soft_vote([(name, clone(model)) for name, model in members]).fit(x, y)
    before = vote.predict_proba(x)
    doubled = footprint.model_bytes(vote)
    footprint.drop_duplicates(vote)
    assert (vote.predict_proba(x) == before).all()
    sizes = {family: footprint.model_bytes(model) for family, model in heaviest.items()}
    sizes["soft_voting"] = footprint.model_bytes(vote)
    assert sizes["soft_voting"] < 0.6 * doubled  # the copy was about half of it
    assert max(sizes.values()) <= footprint.MAX_MODEL_BYTES, sizes
    # the run: both forests, the vote, the boosting and the small families (< 1 MB each)
    small = footprint.model_bytes(boosting) + 3e6
    assert sum(sizes.values()) + small <= footprint.MAX_RUN_BYTES, sizes
    # the default grid's unbounded extra trees are over the budget: why the lean grid exists
    unbounded = modeling.make_pipeline("extra_trees", 0).fit(x, y)
    assert footprint.model_bytes(unbounded) > footprint.MAX_MODEL_BYTES
