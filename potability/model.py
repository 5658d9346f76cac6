"""What a trained model is: its shape, its threshold, how to unwrap it, how it is saved.

The one home of these facts, used by training (:mod:`training.modeling` builds the shape),
the model server (reads the threshold, unwraps to the final classifier) and the compiled
scorer (:mod:`potability.serving.compiled_model` compiles what is inside the threshold).

**Shape.** Every served model is ``FixedThresholdClassifier(OOFCalibratedClassifier(
estimator, method, cv=folds), threshold)`` (:func:`served_model`): ``predict_proba`` is the
calibrated P(potable), ``predict`` applies the tuned threshold to it. The calibration map is
the project's own (:func:`fit_calibrator`: Platt scaling as an unregularised logistic
regression on the raw score, or isotonic regression), fitted on the estimator's out-of-fold
raw scores - the same map training tunes the threshold on, so tuning and serving use one
calibration. Training assembles the fitted model from the out-of-fold scores it already holds
(:func:`assemble_served_model`, no process-wide patching); ``served_model(...).fit(x, y)``
computes them itself and gives the same object. Models trained before this shape
(``CalibratedClassifierCV(ensemble=False)`` inside the threshold), a
``TunedThresholdClassifierCV`` or a plain classifier are read the same way (threshold
``best_threshold_``, or 0.5).

**Format.** Models are saved to MLflow with skops (no pickle), with the exact types the model
uses. MLflow 3 saves scikit-learn models with skops, which refuses to load any type not
listed as trusted. We list the types of the estimator being saved - our own training code, at
save time - so a loaded artifact can contain nothing else (a tampered file with extra types is
refused), and serving never needs ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

PROBA = "predict_proba"
DECISION = "decision_function"


def calibrated_response(estimator: Any) -> str:
    """The raw score calibration maps: ``decision_function`` if the estimator has one, else
    ``predict_proba`` (``CalibratedClassifierCV``'s order, ``_get_response_values`` with
    ``["decision_function", "predict_proba"]``). One home for training, the served model and
    the compiled graph that must repeat it."""
    return DECISION if hasattr(estimator, DECISION) else PROBA


def raw_scores(estimator: Any, x: Any) -> np.ndarray:
    """The uncalibrated score per row (higher = more likely potable)."""
    out = getattr(estimator, calibrated_response(estimator))(x)
    return out[:, list(estimator.classes_).index(1)] if np.ndim(out) == 2 else out


def fit_calibrator(scores: np.ndarray, y: np.ndarray, method: str) -> Any:
    """A 1-D map from raw score to P(potable), fitted on (out-of-fold) ``scores``.

    Sigmoid: Platt scaling as a logistic regression on the score, unregularised (C=1e6) and
    on the 0/1 labels (scikit-learn's ``_SigmoidCalibration`` differs: it fits Platt's
    smoothed targets); isotonic: a monotone step function clipped to [0, 1].
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    scores = np.asarray(scores, dtype=np.float64)
    if method == "sigmoid":
        return LogisticRegression(C=1e6, max_iter=1000).fit(scores.reshape(-1, 1), y)
    if method == "isotonic":
        return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
    raise ValueError(f"unknown calibration method {method!r}")


def apply_calibrator(calibrator: Any, scores: np.ndarray) -> np.ndarray:
    """P(potable) of each raw score under a map from :func:`fit_calibrator`."""
    from sklearn.linear_model import LogisticRegression

    scores = np.asarray(scores, dtype=np.float64)
    if isinstance(calibrator, LogisticRegression):
        return calibrator.predict_proba(scores.reshape(-1, 1))[
            :, list(calibrator.classes_).index(1)
        ]
    return calibrator.predict(scores)


class OOFCalibratedClassifier(ClassifierMixin, BaseEstimator):
    """``estimator`` fitted on all rows, its raw score mapped to P(potable) by a calibrator
    (:func:`fit_calibrator`) fitted on its out-of-fold raw scores over ``cv``.

    What ``CalibratedClassifierCV(ensemble=False)`` does, with the project's calibrator, and
    with a second way in: :meth:`fit_from_oof` takes out-of-fold scores the caller already
    holds (training keeps them from the grid search), so only the final estimator is fitted.
    Fitted attributes: ``estimator_``, ``calibrator_``, ``classes_``, ``response_``.
    """

    def __init__(self, estimator: Any = None, method: str = "sigmoid", cv: Any = 5) -> None:
        self.estimator = estimator
        self.method = method
        self.cv = cv

    def fit(self, X: Any, y: Any) -> OOFCalibratedClassifier:
        """Out-of-fold raw scores over ``cv`` (k fits), then :meth:`fit_from_oof`."""
        from sklearn.base import clone
        from sklearn.model_selection import check_cv, cross_val_predict

        response = calibrated_response(self.estimator)
        labels = np.asarray(y)
        folds = check_cv(self.cv, labels, classifier=True)
        out = cross_val_predict(clone(self.estimator), X, labels, cv=folds, method=response)
        if out.ndim == 2:
            out = out[:, list(np.unique(labels)).index(1)]
        return self.fit_from_oof(X, y, out)

    def fit_from_oof(self, X: Any, y: Any, oof_scores: Any) -> OOFCalibratedClassifier:
        """Fit ``estimator`` on all rows and the calibrator on ``oof_scores`` (the estimator's
        out-of-fold raw scores of these rows, :func:`calibrated_response`)."""
        from sklearn.base import clone

        labels = np.asarray(y).astype(int)
        oof_scores = np.asarray(oof_scores, dtype=np.float64)
        if oof_scores.shape != labels.shape:
            raise ValueError(f"{oof_scores.shape[0]} out-of-fold scores for {len(labels)} rows")
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.response_ = calibrated_response(self.estimator_)
        self.calibrator_ = fit_calibrator(oof_scores, labels, self.method)
        self.classes_ = self.estimator_.classes_
        if len(self.classes_) != 2 or 1 not in list(self.classes_):
            raise ValueError(f"a binary classifier of 0/1 is calibrated, not {self.classes_}")
        return self

    def calibrate(self, scores: Any) -> np.ndarray:
        """P(potable) of raw scores under the fitted calibrator: what training tunes the
        threshold on (applied to the out-of-fold scores) and what :meth:`predict_proba`
        returns (applied to the final estimator's scores)."""
        return apply_calibrator(self.calibrator_, scores)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self.calibrate(raw_scores(self.estimator_, X))
        columns = [1.0 - p, p] if list(self.classes_).index(1) == 1 else [p, 1.0 - p]
        return np.column_stack(columns)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def served_model(estimator: Any, method: str, folds: Any, threshold: float) -> Any:
    """The (unfitted) shape of every served model: ``estimator`` calibrated by ``method`` on
    its out-of-fold scores over ``folds``, decided at ``threshold``.

    One home for the shape: :mod:`potability.serving.compiled_model` compiles it, and its tests
    build every family through here (``.fit(x, y)``: k + 1 fits).
    """
    from sklearn.model_selection import FixedThresholdClassifier

    return FixedThresholdClassifier(
        OOFCalibratedClassifier(estimator, method=method, cv=folds),
        threshold=threshold,
        response_method="predict_proba",
    )


def assemble_served_model(
    estimator: Any, method: str, folds: Any, threshold: float, x: Any, y: Any, oof_scores: Any
) -> Any:
    """:func:`served_model` fitted on ``x, y`` from out-of-fold scores already held: one fit
    of ``estimator`` on all rows, no process-wide state (two threads may assemble at once).

    ``FixedThresholdClassifier.fit`` sets one fitted attribute, ``estimator_`` (a fitted
    clone of ``estimator``; scikit-learn 1.9 ``_fit``); it is set here to the calibrated
    classifier fitted by :meth:`OOFCalibratedClassifier.fit_from_oof`.
    tests/training/test_modeling.py checks the result equals ``served_model(...).fit(x, y)``.
    """
    model = served_model(estimator, method, folds, threshold)
    model.estimator_ = OOFCalibratedClassifier(estimator, method=method, cv=folds).fit_from_oof(
        x, y, oof_scores
    )
    return model


def decision_threshold(estimator: Any) -> float:
    """The threshold the estimator's own ``predict`` applies to P(potable)."""
    from sklearn.model_selection import FixedThresholdClassifier

    threshold = getattr(estimator, "best_threshold_", None)
    if threshold is None and isinstance(estimator, FixedThresholdClassifier):
        threshold = estimator.threshold  # a number: training sets it (never "auto")
    return float(threshold) if threshold is not None else 0.5


def _is_threshold_wrapper(estimator: Any) -> bool:
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    return isinstance(estimator, (TunedThresholdClassifierCV, FixedThresholdClassifier))


def probability_model(estimator: Any) -> Any:
    """The fitted estimator whose ``predict_proba`` the model's decisions threshold: what is
    inside the threshold wrappers (the compiled scorer compiles exactly this)."""
    while _is_threshold_wrapper(estimator):
        estimator = estimator.estimator_
    return estimator


def final_classifier(estimator: Any) -> Any:
    """The fitted final classifier inside threshold wrappers and pipelines."""
    while True:
        if _is_threshold_wrapper(estimator):
            estimator = estimator.estimator_
        elif hasattr(estimator, "steps"):
            estimator = estimator.steps[-1][1]
        else:
            return estimator


def uncalibrated_model(estimator: Any) -> Any | None:
    """What would be served without calibration, or None if the model has no such part.

    Inside the threshold, our served models hold one calibrated classifier whose estimator is
    the pipeline refitted on all training rows (``OOFCalibratedClassifier.estimator_``; in
    models trained before it, ``CalibratedClassifierCV(ensemble=False)``'s one calibrated
    classifier). An SVC has no probabilities of its own: None.
    """
    from sklearn.calibration import CalibratedClassifierCV

    inner = probability_model(estimator)
    if isinstance(inner, OOFCalibratedClassifier):
        pipeline = inner.estimator_
    elif isinstance(inner, CalibratedClassifierCV) and len(inner.calibrated_classifiers_) == 1:
        pipeline = inner.calibrated_classifiers_[0].estimator
    else:
        return None
    return pipeline if hasattr(pipeline, "predict_proba") else None


def trusted_types(estimator: Any) -> list[str]:
    """The fully qualified types skops finds untrusted by default in ``estimator``."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(estimator)))


def sklearn_save_kwargs(estimator: Any) -> dict[str, Any]:
    """Keyword arguments for ``mlflow.sklearn.log_model``/``save_model``."""
    return {"serialization_format": "skops", "skops_trusted_types": trusted_types(estimator)}
