"""The metric, calibration, the selection score (threshold tuned inside the folds), the
served model's shape, the ensemble and the named grids."""

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import VotingClassifier
from sklearn.model_selection import FixedThresholdClassifier, cross_val_predict

from components import modeling
from potability.features import FEATURE_NAMES, TARGET
from potability.seed import load_dataset


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


def test_tune_threshold_maximises_precision_subject_to_the_recall_target() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    proba = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.1])
    threshold, _, objective = modeling.tune_threshold(y, proba, 0.5)
    assert threshold == 0.9  # top 2: precision 1.0, recall 0.5
    threshold, _, _ = modeling.tune_threshold(y, proba, 0.75)
    assert threshold == 0.7  # top 4: 3 of 4 right, recall 0.75
    assert objective.max() == 1.0


def test_selection_score_applies_to_each_fold_a_threshold_tuned_on_the_others() -> None:
    # Fold 0 ranks well above 0.5, fold 1 is hopeless below it: a threshold tuned on fold 1
    # alone (0.1 .. 0.4) is what fold 0 must be judged at, and vice versa.
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    proba = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.4])
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    fold1_threshold, _, _ = modeling.tune_threshold(y[4:], proba[4:], 0.5)
    fold0_threshold, _, _ = modeling.tune_threshold(y[:4], proba[:4], 0.5)
    expected = np.r_[proba[:4] >= fold1_threshold, proba[4:] >= fold0_threshold].astype(int)
    selection = modeling.cv_selection(y, proba, folds, 0.5, 0.2)
    precision, recall = modeling.precision_and_recall(y, expected)
    assert (selection.precision, selection.recall) == (precision, recall)
    # In-sample tuning would have given fold 0 a perfect precision: not what is reported.
    assert selection.precision < 1.0


def test_cross_fitted_calibration_never_uses_a_fold_own_labels() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=400)
    y = (rng.random(400) < 1 / (1 + np.exp(-2 * scores))).astype(int)
    folds = np.arange(400) % 4
    for method in modeling.CALIBRATION_METHODS:
        before = modeling.cross_fitted_calibration(scores, y, folds, method)
        flipped = y.copy()
        flipped[folds == 2] = 1 - flipped[folds == 2]
        after = modeling.cross_fitted_calibration(scores, flipped, folds, method)
        np.testing.assert_array_equal(before[folds == 2], after[folds == 2])
        assert not np.array_equal(before[folds != 2], after[folds != 2])
        assert ((0 <= before) & (before <= 1)).all()


def test_every_named_grid_covers_every_family_with_valid_parameters() -> None:
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
    with pytest.raises(ValueError, match="unknown calibration"):
        modeling.fit_calibrator(np.zeros(4), np.array([0, 1, 0, 1]), "beta")


@pytest.fixture(scope="module")
def sample() -> tuple:
    frame = load_dataset().sample(900, random_state=1)
    return frame[list(FEATURE_NAMES)], frame[TARGET].astype(int)


@pytest.fixture(scope="module")
def fitted(sample: tuple) -> list[modeling.FittedCandidate]:
    x, y = sample
    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1, seed=5)
    quick = modeling.grid("quick")
    return modeling.fit_all(quick, x, y, config,
                            ("hist_gradient_boosting", "decision_tree", "logistic_regression",
                             "svm"))


def test_the_served_model_is_calibrated_and_applies_its_threshold_to_that_probability(
        fitted: list, sample: tuple) -> None:
    x, _ = sample
    for candidate in fitted:
        model = candidate.model
        assert isinstance(model, FixedThresholdClassifier), candidate.family
        calibrated = model.estimator_
        assert isinstance(calibrated, CalibratedClassifierCV)
        assert calibrated.method == candidate.calibration
        assert len(calibrated.calibrated_classifiers_) == 1  # one pipeline, one calibrator
        proba = model.predict_proba(x)[:, 1]
        np.testing.assert_array_equal(proba, calibrated.predict_proba(x)[:, 1])
        np.testing.assert_array_equal(model.predict(x), (proba >= candidate.threshold).astype(int))
        assert calibrated.n_jobs is None


def test_calibration_method_is_the_one_with_the_lower_cross_validated_brier(fitted: list) -> None:
    for candidate in fitted:
        briers = {m: candidate.cv_brier[m] for m in modeling.CALIBRATION_METHODS}
        assert candidate.calibration == min(briers, key=briers.get)
    by_family = {c.family: c for c in fitted}
    # Class weights push raw probabilities towards "potable": calibration must do better.
    for family in ("hist_gradient_boosting", "logistic_regression"):
        c = by_family[family]
        assert c.cv_brier[c.calibration] < c.cv_brier["uncalibrated"], family
    assert "uncalibrated" not in by_family["svm"].cv_brier  # an SVC has no probabilities


def test_the_vote_oof_scores_are_exactly_the_vote_refitted_on_the_same_folds(
        fitted: list, sample: tuple) -> None:
    x, y = sample
    vote = fitted[-1]
    assert vote.family == modeling.ENSEMBLE
    voting = vote.model.estimator_.calibrated_classifiers_[0].estimator
    assert isinstance(voting, VotingClassifier) and voting.voting == "soft"
    members = vote.best_params["members"].split(",")
    assert "svm" not in members and len(members) == modeling.ENSEMBLE_SIZE
    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1, seed=5)
    direct = cross_val_predict(vote.pipeline, x, y, cv=config.folds(), method="predict_proba")
    np.testing.assert_allclose(vote.oof_raw, direct[:, 1], atol=1e-9)
