"""The metric, calibration, the selection score (nothing in it tuned on the fold it scores:
grid point, calibration method, threshold, the vote's members), the served model's shape, the
ensemble and the named grids."""

import numpy as np
import pytest
from sklearn.ensemble import VotingClassifier
from sklearn.model_selection import FixedThresholdClassifier, cross_val_predict

from potability.features import FEATURE_NAMES, TARGET
from potability.model import OOFCalibratedClassifier, raw_scores, served_model
from potability.seed import load_dataset
from training import modeling


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


def test_the_recall_target_is_the_floor_plus_z_standard_errors_of_the_held_out_check() -> None:
    # 1,000 potable training rows, 20% held out (250 potable): the held-out recall of a model
    # tuned at the target varies with r(1-r)(1/1000 + 1/250) = 0.16 / 200 at r = 0.2.
    se = np.sqrt(0.2 * 0.8 / 200)
    assert modeling.recall_margin(0.2, 1000, 0.2, 1.645) == pytest.approx(1.645 * se)
    assert modeling.recall_margin(0.2, 1000, 0.2, 0.0) == 0.0
    # more potable rows, a smaller margin
    assert modeling.recall_margin(0.2, 4000, 0.2, 1.645) == pytest.approx(1.645 * se / 2)
    config = modeling.TrainingConfig(recall_floor=0.2, recall_z=1.645, test_fraction=0.2)
    y = np.r_[np.ones(1000), np.zeros(1600)]
    assert config.target_recall(y) == pytest.approx(0.2 + 1.645 * se)
    assert modeling.TrainingConfig(recall_floor=0.995, recall_z=2.0).target_recall(y) == 1.0
    with pytest.raises(ValueError, match="potable row"):
        modeling.recall_margin(0.2, 0, 0.2, 1.645)
    with pytest.raises(ValueError, match="test fraction"):
        modeling.recall_margin(0.2, 100, 1.0, 1.645)


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


def test_each_fold_is_scored_by_the_grid_point_best_on_the_other_folds() -> None:
    # point 0 is best on average (0.633 vs 0.6) only thanks to fold 0: fold 0 itself must be
    # scored by point 1, the others by point 0 (the rule before scored every fold by point 0)
    per_fold = np.array([[0.9, 0.5, 0.5], [0.6, 0.6, 0.6]])
    assert modeling.fold_choices(per_fold).tolist() == [1, 0, 0]
    assert modeling.fold_choices(np.array([[0.5, 0.5], [0.5, 0.5]])).tolist() == [0, 0]  # ties
    assert modeling.fold_choices(np.array([[0.7], [0.8]])).tolist() == [0]


def test_each_fold_is_called_with_the_calibration_method_best_on_the_other_folds() -> None:
    # "good" has the lower Brier on fold 1, "bad" on fold 0; each fold uses the other's choice
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    good = np.array([0.4, 0.6, 0.4, 0.6, 0.9, 0.1, 0.9, 0.1])
    bad = np.array([0.9, 0.1, 0.9, 0.1, 0.4, 0.6, 0.4, 0.6])
    both = modeling.cv_selection(y, {"good": good, "bad": bad}, folds, 0.5, 0.2)
    fold0 = good[:4] >= modeling.tune_threshold(y[4:], good[4:], 0.5)[0]
    fold1 = bad[4:] >= modeling.tune_threshold(y[:4], bad[:4], 0.5)[0]
    expected = modeling.precision_and_recall(y, np.r_[fold0, fold1].astype(int))
    assert (both.precision, both.recall) == expected
    assert both.precision < 1.0  # chosen on the fold itself, each would have scored 1.0


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
        assert ((before >= 0) & (before <= 1)).all()


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
    # 250 rows: under 255 distinct values a column, histogram gradient boosting bins them as
    # they are instead of ~2,300 weighted percentiles a fit (900 rows: 40 s for this module).
    frame = load_dataset().sample(250, random_state=1)
    return frame[list(FEATURE_NAMES)], frame[TARGET].astype(int)


@pytest.fixture(scope="module")
def fitted(sample: tuple) -> list[modeling.FittedCandidate]:
    x, y = sample
    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1, seed=5)
    quick = modeling.grid("quick")
    return modeling.fit_all(
        quick,
        x,
        y,
        config,
        ("hist_gradient_boosting", "decision_tree", "logistic_regression", "svm"),
    )


def test_the_served_model_is_calibrated_and_applies_its_threshold_to_that_probability(
    fitted: list, sample: tuple
) -> None:
    x, _ = sample
    for candidate in fitted:
        model = candidate.model
        assert isinstance(model, FixedThresholdClassifier), candidate.family
        calibrated = model.estimator_
        assert isinstance(calibrated, OOFCalibratedClassifier)
        assert calibrated.method == candidate.calibration
        proba = model.predict_proba(x)[:, 1]
        np.testing.assert_array_equal(proba, calibrated.predict_proba(x)[:, 1])
        np.testing.assert_array_equal(model.predict(x), (proba >= candidate.threshold).astype(int))


def test_tuning_and_serving_use_one_calibration(fitted: list, sample: tuple) -> None:
    """The threshold is tuned on the served calibrator's probabilities: the same map gives
    the probabilities tuning saw (of the OOF scores) and the ones the model serves (of the
    final pipeline's scores) - row for row."""
    x, y = sample
    y = np.asarray(y)
    for candidate in fitted:
        calibrated = candidate.model.estimator_
        served = candidate.model.predict_proba(x)[:, 1]
        final_scores = raw_scores(calibrated.estimator_, x)
        # The served probability of a row is the tuning map of that row's score ...
        np.testing.assert_array_equal(
            served,
            modeling.apply_calibrator(
                modeling.fit_calibrator(candidate.oof_raw, y, candidate.calibration), final_scores
            ),
        )
        # ... and tuning's probability of a row is the served map of its OOF score.
        np.testing.assert_array_equal(
            candidate.tuning_proba, calibrated.calibrate(candidate.oof_raw)
        )
        threshold, _, _ = modeling.tune_threshold(
            y, candidate.tuning_proba, modeling.TrainingConfig().target_recall(y)
        )
        assert candidate.threshold == threshold == candidate.model.threshold
    # A row whose final score equals its OOF score gets the same probability served as tuned.
    logistic = next(c for c in fitted if c.family == "logistic_regression")
    rows = np.isin(raw_scores(logistic.model.estimator_.estimator_, x), logistic.oof_raw)
    pipeline_scores = np.where(rows, raw_scores(logistic.model.estimator_.estimator_, x), 0)
    np.testing.assert_array_equal(
        logistic.model.estimator_.calibrate(pipeline_scores)[rows], logistic.tuning_proba[rows]
    )


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
    fitted: list, sample: tuple
) -> None:
    x, y = sample
    vote = fitted[-1]
    assert vote.family == modeling.ENSEMBLE
    voting = vote.model.estimator_.estimator_
    assert isinstance(voting, VotingClassifier) and voting.voting == "soft"
    members = vote.best_params["members"].split(",")
    assert "svm" not in members and len(members) == modeling.ENSEMBLE_SIZE
    from threadpoolctl import threadpool_limits

    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1, seed=5)
    with threadpool_limits(limits=1, user_api="openmp"):  # as training fits
        direct = cross_val_predict(vote.pipeline, x, y, cv=config.folds(), method="predict_proba")
    np.testing.assert_allclose(vote.oof_raw, direct[:, 1], atol=1e-9)


def _member(family: str, calls: list[int], proba: list[float]) -> modeling.FittedCandidate:
    return modeling.FittedCandidate(
        family=family,
        model=None,  # the vote's selection reads only the OOF figures
        best_params={},
        selection=modeling.Selection(0.0, 0.0, 0.0),
        search_score=0.0,
        calibration="sigmoid",
        cv_brier={},
        cv_results={},
        selection_raw=np.array(proba),
        selection_calls=np.array(calls),
    )


def test_the_vote_is_scored_on_members_chosen_without_the_fold() -> None:
    """Fold k's vote averages the ENSEMBLE_SIZE families best on the other folds: a family
    that shines only on fold k is not among fold k's members (the rule before chose the
    members once, on every fold's rows, then scored the vote on them)."""
    config = modeling.TrainingConfig(cv_folds=2, seed=0, recall_floor=0.2)
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    ids = modeling.fold_ids(y, config)
    on = {k: np.flatnonzero(ids == k) for k in (0, 1)}
    right = np.where(y == 1, 1, 0)  # perfect calls
    wrong = 1 - right  # every call wrong
    # "lucky" is right only on fold 0; three steady families right everywhere but one row
    lucky_calls = np.where(ids == 0, right, wrong)
    members = [
        _member("lucky", lucky_calls.tolist(), [0.9] * 8),
        *(_member(f"steady{i}", right.tolist(), [0.1 * (i + 1)] * 8) for i in range(3)),
    ]
    raw = modeling.vote_selection_raw(members, y, config)
    # fold 0: chosen on fold 1, where lucky is all wrong: the three steady ones vote
    np.testing.assert_allclose(raw[on[0]], np.mean([0.1, 0.2, 0.3]))
    # fold 1: on fold 0 all four are perfect - the first three of the list, lucky included
    np.testing.assert_allclose(raw[on[1]], np.mean([0.9, 0.1, 0.2]))


def test_the_grid_search_ranks_as_grid_search_cv_and_keeps_the_best_points_oof_scores(
    sample: tuple,
) -> None:
    """search_grid replaces GridSearchCV + cross_val_predict of the best point: same ranking,
    same scores, and the same out-of-fold scores without fitting the best point again."""
    from sklearn.model_selection import GridSearchCV

    x, y = sample
    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1, seed=5)
    points = {"poly__degree": [1, 2], "clf__C": [0.01, 1.0]}
    pipeline = modeling.make_pipeline("logistic_regression", config.fold_seed)
    found = modeling.search_grid(pipeline, points, x, y, config)

    def scorer(estimator: object, x_part: object, y_part: object) -> float:
        return modeling.best_precision_at_recall(
            y_part, modeling.raw_scores(estimator, x_part), config.target_recall(y)
        )

    reference = GridSearchCV(pipeline, points, scoring=scorer, cv=config.folds(), refit=False).fit(
        x, y
    )
    assert found.best_params == reference.best_params_
    assert found.best_score == pytest.approx(reference.best_score_, abs=1e-12)
    assert found.cv_results["params"] == reference.cv_results_["params"]
    for key in ("mean_test_score", "std_test_score"):
        np.testing.assert_allclose(found.cv_results[key], reference.cv_results_[key], atol=1e-12)
    np.testing.assert_array_equal(
        found.cv_results["rank_test_score"], reference.cv_results_["rank_test_score"]
    )
    assert len(set(found.cv_results["mean_test_score"])) > 1  # the grid really ranks something
    best = modeling.make_pipeline("logistic_regression", config.fold_seed).set_params(
        **reference.best_params_
    )
    assert found.raw_kind == "decision_function"
    np.testing.assert_allclose(
        found.oof_raw,
        cross_val_predict(best, x, y, cv=config.folds(), method="decision_function"),
        atol=1e-12,
    )
    # the selection score's scores: fold k's from the point best on the other folds
    per_fold = np.array([reference.cv_results_[f"split{k}_test_score"] for k in range(3)]).T
    choices = modeling.fold_choices(per_fold)
    assert found.selection_raw is not None
    for k, (_, rows) in enumerate(config.folds().split(x, y)):
        point = modeling.make_pipeline("logistic_regression", config.fold_seed).set_params(
            **reference.cv_results_["params"][choices[k]]
        )
        oof = cross_val_predict(point, x, y, cv=config.folds(), method="decision_function")
        np.testing.assert_allclose(found.selection_raw[rows], oof[rows], atol=1e-12)


def test_the_served_model_is_exactly_what_its_own_fit_gives_from_scratch(
    fitted: list, sample: tuple
) -> None:
    """The served model is assembled from the out-of-fold scores we hold; fitted from
    scratch (``served_model(...).fit``: scikit-learn's FixedThresholdClassifier.fit, our
    cross_val_predict of k fold fits) it must not differ."""
    from threadpoolctl import threadpool_limits

    x, y = sample
    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1, seed=5)
    for candidate in fitted:
        with threadpool_limits(limits=1, user_api="openmp"):  # as training fits
            reference = served_model(
                candidate.pipeline, candidate.calibration, config.folds(), candidate.threshold
            ).fit(x, y)
        ours = candidate.model
        assert ours.get_params(deep=False).keys() == reference.get_params(deep=False).keys()
        assert set(vars(ours)) == set(vars(reference)), candidate.family
        assert set(vars(ours.estimator_)) == set(vars(reference.estimator_)), candidate.family
        assert repr(ours) == repr(reference)
        np.testing.assert_allclose(
            ours.estimator_.calibrate(candidate.oof_raw),
            reference.estimator_.calibrate(candidate.oof_raw),
            atol=1e-9,
        )
        np.testing.assert_allclose(
            ours.predict_proba(x), reference.predict_proba(x), atol=1e-9, err_msg=candidate.family
        )
        np.testing.assert_array_equal(ours.predict(x), reference.predict(x))


def test_two_fits_in_two_threads_at_once_each_get_their_own_calibration(sample: tuple) -> None:
    """Two served models assembled at the same moment from different out-of-fold scores of the
    same rows and folds: each must be calibrated on its own scores, and nothing process-wide
    may change. (The former stand-in for ``sklearn.calibration.cross_val_predict``, patched
    for the duration of a fit, handed both fits the scores of whichever patched last and
    could leave itself installed.)"""
    import threading

    import sklearn.calibration
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict as original
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = sample
    y = np.asarray(y).astype(int)
    config = modeling.TrainingConfig(cv_folds=3, n_jobs=1, seed=5)
    both_inside = threading.Barrier(2, timeout=60)
    waited: set[int] = set()

    class MeetingClassifier(LogisticRegression):
        """Waits, the first time each thread clones it, until the other thread is inside
        its fit too (clone is the first thing every fit path does with it)."""

        def __sklearn_clone__(self):
            me = threading.get_ident()
            if me not in waited and len(waited) < 2:
                waited.add(me)
                both_inside.wait()
            return super().__sklearn_clone__()

    # Scaled, so that lbfgs converges in a few iterations (unscaled, 1000 of them: 20 s).
    pipeline = make_pipeline(SimpleImputer(), StandardScaler(), MeetingClassifier())
    kind = modeling.calibrated_response(pipeline)
    scores = cross_val_predict(
        make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()),
        x,
        y,
        cv=config.folds(),
        method=kind,
    )
    own = {"good": scores, "reversed": -scores}  # same rows, same folds, opposite calibration
    results: dict[str, object] = {}
    errors: list[BaseException] = []

    def fit(name: str) -> None:
        try:
            results[name] = modeling.calibrated_model(
                pipeline, "sigmoid", own[name], kind, x, y, config
            )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fit, args=(name,)) for name in own]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(waited) == 2  # both fits really were inside at once
    for name, oof in own.items():
        expected = modeling.apply_calibrator(
            modeling.fit_calibrator(oof, y, "sigmoid"),
            raw_scores(results[name].estimator_.estimator_, x),
        )
        np.testing.assert_array_equal(results[name].predict_proba(x)[:, 1], expected, err_msg=name)
    good, reversed_ = (results[n].predict_proba(x)[:, 1] for n in ("good", "reversed"))
    assert np.corrcoef(good, reversed_)[0, 1] < 0  # really two different calibrations
    assert sklearn.calibration.cross_val_predict is original  # nothing left installed
