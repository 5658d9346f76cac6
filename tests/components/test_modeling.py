"""The metric the families are tuned for, and the named grids."""

import numpy as np
import pytest

from components import modeling


def test_precision_counts_only_when_recall_reaches_the_floor() -> None:
    y_true = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    # 2 of 5 positives found (recall 0.4), one false alarm: precision 2/3.
    y_pred = [1, 1, 0, 0, 0, 1, 0, 0, 0, 0]
    assert modeling.precision_at_recall(y_true, y_pred, 0.4) == pytest.approx(2 / 3)
    assert modeling.precision_at_recall(y_true, y_pred, 0.41) == 0.0
    assert modeling.precision_at_recall(y_true, [0] * 10, 0.0) == 0.0


def test_best_precision_at_recall_scans_thresholds() -> None:
    y = np.array([1, 1, 0, 1, 0, 0])
    proba = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    # Top-2: precision 1.0 at recall 2/3; to reach recall 1 we need the top 4 (3/4).
    assert modeling.best_precision_at_recall(y, proba, 0.6) == 1.0
    assert modeling.best_precision_at_recall(y, proba, 0.9) == pytest.approx(0.75)


def test_every_named_grid_covers_the_four_families_with_valid_parameters() -> None:
    for name, grid in modeling.GRIDS.items():
        assert set(grid) == set(modeling.FAMILIES), name
        for family, params in grid.items():
            pipeline = modeling.make_pipeline(family, seed=0)
            valid = pipeline.get_params()
            assert set(params) <= set(valid), (name, family, set(params) - set(valid))


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown grid 'nope'"):
        modeling.grid("nope")
    with pytest.raises(ValueError, match="unknown family"):
        modeling.make_pipeline("knn", seed=0)


def test_threshold_is_tuned_on_training_data_and_applied_by_predict() -> None:
    from potability.features import FEATURE_NAMES, TARGET
    from potability.seed import load_dataset

    frame = load_dataset().sample(900, random_state=1)
    x, y = frame[list(FEATURE_NAMES)], frame[TARGET]
    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1)
    fitted = modeling.fit_family("logistic_regression", modeling.grid("quick")["logistic_regression"],
                                 x, y, config)
    proba = fitted.model.predict_proba(x)[:, 1]
    assert fitted.threshold == fitted.model.best_threshold_
    np.testing.assert_array_equal(fitted.model.predict(x), (proba >= fitted.threshold).astype(int))
