"""The metric, calibration, the selection score (threshold tuned inside the folds), the
served model's shape, the ensemble and the named grids."""

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import VotingClassifier
from sklearn.model_selection import FixedThresholdClassifier, cross_val_predict

from training import modeling
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
    from threadpoolctl import threadpool_limits

    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1, seed=5)
    with threadpool_limits(limits=1, user_api="openmp"):  # as training fits
        direct = cross_val_predict(vote.pipeline, x, y, cv=config.folds(),
                                   method="predict_proba")
    np.testing.assert_allclose(vote.oof_raw, direct[:, 1], atol=1e-9)


def test_the_grid_search_ranks_as_grid_search_cv_and_keeps_the_best_points_oof_scores(
        sample: tuple) -> None:
    """search_grid replaces GridSearchCV + cross_val_predict of the best point: same ranking,
    same scores, and the same out-of-fold scores without fitting the best point again."""
    from sklearn.model_selection import GridSearchCV

    x, y = sample
    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1, seed=5)
    points = {"poly__degree": [1, 2], "clf__C": [0.01, 1.0]}
    pipeline = modeling.make_pipeline("logistic_regression", config.fold_seed)
    found = modeling.search_grid(pipeline, points, x, y, config)

    def scorer(estimator: object, x_part: object, y_part: object) -> float:
        return modeling.best_precision_at_recall(y_part, modeling.raw_scores(estimator, x_part),
                                                 config.target_recall)

    reference = GridSearchCV(pipeline, points, scoring=scorer, cv=config.folds(),
                             refit=False).fit(x, y)
    assert found.best_params == reference.best_params_
    assert found.best_score == pytest.approx(reference.best_score_, abs=1e-12)
    assert found.cv_results["params"] == reference.cv_results_["params"]
    for key in ("mean_test_score", "std_test_score"):
        np.testing.assert_allclose(found.cv_results[key], reference.cv_results_[key], atol=1e-12)
    np.testing.assert_array_equal(found.cv_results["rank_test_score"],
                                  reference.cv_results_["rank_test_score"])
    assert len(set(found.cv_results["mean_test_score"])) > 1  # the grid really ranks something
    best = modeling.make_pipeline("logistic_regression", config.fold_seed).set_params(
        **reference.best_params_)
    assert found.raw_kind == "decision_function"
    np.testing.assert_allclose(found.oof_raw, cross_val_predict(
        best, x, y, cv=config.folds(), method="decision_function"), atol=1e-12)


def test_the_served_model_is_exactly_what_scikit_learn_fits_from_scratch(
        fitted: list, sample: tuple) -> None:
    """The served model's calibrator is fitted on the out-of-fold scores we hold rather than on
    CalibratedClassifierCV's own cross_val_predict: the result must not differ."""
    from threadpoolctl import threadpool_limits

    x, y = sample
    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1, seed=5)
    for candidate in fitted:
        with threadpool_limits(limits=1, user_api="openmp"):  # as training fits
            reference = FixedThresholdClassifier(
                CalibratedClassifierCV(candidate.pipeline, method=candidate.calibration,
                                       cv=config.folds(), ensemble=False),
                threshold=candidate.threshold, response_method="predict_proba").fit(x, y)
        ours = candidate.model
        assert ours.get_params(deep=False).keys() == reference.get_params(deep=False).keys()
        assert set(vars(ours)) == set(vars(reference)), candidate.family
        assert set(vars(ours.estimator_)) == set(vars(reference.estimator_)), candidate.family
        assert repr(ours) == repr(reference)
        np.testing.assert_allclose(ours.predict_proba(x), reference.predict_proba(x), atol=1e-9,
                                   err_msg=candidate.family)
        np.testing.assert_array_equal(ours.predict(x), reference.predict(x))


def test_the_stand_in_for_cross_val_predict_answers_only_for_the_scores_it_holds(
        sample: tuple) -> None:
    import sklearn.calibration

    x, y = sample
    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1, seed=5)
    oof = np.linspace(0, 1, len(y))
    pipeline = modeling.make_pipeline("random_forest", 0)
    with modeling._known_oof_scores(oof, "predict_proba", np.asarray(y), config):
        held = sklearn.calibration.cross_val_predict(pipeline, x, y, cv=config.folds(),
                                                     method="predict_proba")
        np.testing.assert_array_equal(held[:, 1], oof)
        for call in ({"cv": modeling.TrainingConfig(cv_folds=3, seed=6).folds(),
                      "method": "predict_proba"},
                     {"cv": config.folds(), "method": "decision_function"}):
            with pytest.raises(RuntimeError, match="another model"):
                sklearn.calibration.cross_val_predict(pipeline, x, y, **call)
        with pytest.raises(RuntimeError, match="another model"):
            sklearn.calibration.cross_val_predict(pipeline, x[:-3], y[:-3], cv=config.folds(),
                                                  method="predict_proba")
    assert sklearn.calibration.cross_val_predict is cross_val_predict  # restored
