"""A candidate's size and scoring time (training/footprint.py), how it is stored, and the
grids' size budgets."""

from __future__ import annotations

import itertools
import zipfile
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest
import skops.io
from mlflow.models import Model
from sklearn.base import clone
from sklearn.tree import DecisionTreeClassifier

from potability.model import sklearn_save_kwargs
from potability.seed import load_dataset, load_training_rows
from training import footprint, modeling
from training.candidates import features_and_target
from training.split import split


def test_model_bytes_is_the_deflated_size_and_scoring_times_are_positive() -> None:
    frame = load_dataset()
    x, y = features_and_target(frame.dropna())
    model = DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y)
    cost = footprint.footprint(model, x)
    assert set(cost) == {"scoring_ms_1", "scoring_ms_100"}
    assert cost["scoring_ms_1"] > 0 and cost["scoring_ms_100"] > 0
    # skops names each array after its object's id: two dumps differ by a few bytes
    deflated = len(skops.io.dumps(model, compression=zipfile.ZIP_DEFLATED))
    size = footprint.model_bytes(model)
    assert size == pytest.approx(deflated, rel=0.01)
    assert size < 0.8 * len(skops.io.dumps(model))
    # a deeper tree is larger: the metric sees what the grid changes
    deeper = DecisionTreeClassifier(random_state=0).fit(x, y)
    assert footprint.model_bytes(deeper) > size


def test_a_model_is_saved_with_its_skops_archive_deflated(tmp_path: Path) -> None:
    """What log_candidate stores: MLflow's sklearn model, its skops archive deflated - a
    quarter of what mlflow.sklearn.save_model writes for a forest, the size ``model_bytes``
    reports, and the same model loaded back by mlflow.sklearn.load_model."""
    x, y = features_and_target(load_dataset())
    model = modeling.make_pipeline("random_forest", 0).set_params(clf__n_estimators=20).fit(x, y)
    kwargs = {**sklearn_save_kwargs(model), "pip_requirements": ["scikit-learn"]}
    mlflow.sklearn.save_model(model, str(tmp_path / "plain"), **kwargs)
    flavor = footprint.StoredModel()  # as log_candidate hands it to Model.log
    flavor.save_model(model, str(tmp_path / "deflated"), mlflow_model=Model(), **kwargs)
    stored = tmp_path / "deflated" / "model.skops"
    with zipfile.ZipFile(stored) as archive:
        assert {member.compress_type for member in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert flavor.archive_bytes == stored.stat().st_size  # the size model_bytes logs
    assert stored.stat().st_size == pytest.approx(footprint.model_bytes(model), rel=0.01)
    assert stored.stat().st_size < 0.4 * (tmp_path / "plain" / "model.skops").stat().st_size
    plain, deflated = (Model.load(str(tmp_path / name)) for name in ("plain", "deflated"))
    assert deflated.flavors == plain.flavors
    loaded = mlflow.sklearn.load_model(str(tmp_path / "deflated"))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


def _heaviest_points(grid_name: str, family: str) -> list[dict]:
    """Every point of the grid with the family's smallest leaves (the largest trees)."""
    grid = dict(modeling.grid(grid_name)[family])
    if "clf__min_samples_leaf" in grid:
        grid["clf__min_samples_leaf"] = [min(grid["clf__min_samples_leaf"])]
    keys = sorted(grid)
    points = itertools.product(*(grid[key] for key in keys))
    return [dict(zip(keys, values, strict=True)) for values in points]


@pytest.fixture(scope="module")
def daily_fits() -> dict:
    """A daily run's training rows, and what both grids share: the boosting (a vote member)
    and the extra trees unbounded, each fitted once for the module."""
    train = split(load_training_rows(), 0.2, 42).train
    x, y = features_and_target(train)
    unbounded = modeling.make_pipeline("extra_trees", 0).fit(x, y)
    return {
        "x": x,
        "y": y,
        "boosting": modeling.make_pipeline("hist_gradient_boosting", 0).fit(x, y),
        "unbounded": unbounded,
        "unbounded_bytes": footprint.model_bytes(unbounded),
    }


def test_the_lean_grid_grows_no_larger_trees_nor_more_of_them_than_the_default() -> None:
    """So the default grid's size budget below holds for ``lean`` as well (it was fitted too,
    ~25 s of the suite, to show what this shows)."""
    default, lean = modeling.grid("default"), modeling.grid("lean")
    for family in ("random_forest", "extra_trees"):
        trees = modeling.make_pipeline(family, 0)[-1].n_estimators
        assert max(lean[family]["clf__n_estimators"]) <= trees
        assert "clf__n_estimators" not in default[family]
        assert max(lean[family]["clf__max_leaf_nodes"]) <= min(
            default[family]["clf__max_leaf_nodes"]
        )
        for key in set(default[family]) - {"clf__max_leaf_nodes"}:
            assert lean[family][key] == default[family][key]
    for family in set(default) - {"random_forest", "extra_trees"}:
        assert lean[family] == default[family]


@pytest.mark.integration  # ~30 s of forest fits: kept out of `make check`
@pytest.mark.parametrize("grid_name", ["default"])
def test_the_grids_bound_the_trees_and_meet_the_size_budget(grid_name: str, daily_fits) -> None:
    """Issue 34: every forest the grid can produce, fitted on a daily run's training rows, has
    trees of at most the grid's leaf bound (so its size no longer grows with the rows); each,
    and the soft vote of the heaviest ones (as stored: deflated, without its second copy of the
    members, unchanged predictions), is under the per-candidate budget, and a run's candidates
    together under the per-run budget."""
    x, y, boosting = daily_fits["x"], daily_fits["y"], daily_fits["boosting"]
    heaviest, sizes = {}, {}
    for family in ("random_forest", "extra_trees"):
        fitted = [
            modeling.make_pipeline(family, 0).set_params(**point).fit(x, y)
            for point in _heaviest_points(grid_name, family)
        ]
        bound = max(modeling.grid(grid_name)[family]["clf__max_leaf_nodes"])
        for model in fitted:
            assert max(tree.get_n_leaves() for tree in model[-1].estimators_) <= bound
        sized = [(footprint.model_bytes(model), model) for model in fitted]
        sizes[family], heaviest[family] = max(sized, key=lambda pair: pair[0])
    members = [*heaviest.items(), ("hist_gradient_boosting", boosting)]
    # as training builds it: unfitted members (FittedCandidate.pipeline), fitted by the vote
    vote = modeling.soft_vote([(name, clone(model)) for name, model in members]).fit(x, y)
    before = vote.predict_proba(x)
    doubled = footprint.model_bytes(vote)
    footprint.drop_duplicates(vote)
    assert (vote.predict_proba(x) == before).all()
    sizes["soft_voting"] = footprint.model_bytes(vote)
    assert sizes["soft_voting"] < 0.6 * doubled  # the copy was about half of it
    assert max(sizes.values()) <= footprint.MAX_MODEL_BYTES, sizes
    # the run: both forests, the vote, the boosting and the small families (< 1 MB each)
    small = footprint.model_bytes(boosting) + 3e6
    assert sum(sizes.values()) + small <= footprint.MAX_RUN_BYTES, sizes
    # the same extra trees unbounded grow past the bound with the rows: what the bound stops
    unbounded = daily_fits["unbounded"]
    assert min(tree.get_n_leaves() for tree in unbounded[-1].estimators_) > 256
    assert daily_fits["unbounded_bytes"] > 2 * sizes["extra_trees"]
