"""What a trained model is: its shape, its threshold, how to unwrap it, how it is saved.

The one home of these facts, used by training (:mod:`training.modeling` builds the shape),
the model server (reads the threshold, unwraps to the final classifier) and the compiled
scorer (:mod:`potability.serving.compiled_model` compiles what is inside the threshold).

**Shape.** Every served model is ``FixedThresholdClassifier(CalibratedClassifierCV(estimator,
method, cv=folds, ensemble=False), threshold)`` (:func:`served_model`): ``predict_proba`` is
the calibrated P(potable), ``predict`` applies the tuned threshold to it. A
``TunedThresholdClassifierCV`` or a plain classifier is read the same way (threshold
``best_threshold_``, or 0.5).

**Format.** Models are saved to MLflow with skops (no pickle), with the exact types the model
uses. MLflow 3 saves scikit-learn models with skops, which refuses to load any type not
listed as trusted. We list the types of the estimator being saved - our own training code, at
save time - so a loaded artifact can contain nothing else (a tampered file with extra types is
refused), and serving never needs ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``.
"""

from __future__ import annotations

from typing import Any


def served_model(estimator: Any, method: str, folds: Any, threshold: float,
                 n_jobs: int | None = None) -> Any:
    """The (unfitted) shape of every served model: ``estimator`` calibrated by ``method`` on
    ``folds`` (one fit on all rows, ``ensemble=False``), decided at ``threshold``.

    One home for the shape: :mod:`potability.serving.compiled_model` compiles it, and its tests build
    every family through here.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import FixedThresholdClassifier

    return FixedThresholdClassifier(
        CalibratedClassifierCV(estimator, method=method, cv=folds, ensemble=False,
                               n_jobs=n_jobs),
        threshold=threshold, response_method="predict_proba")


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

    Inside the threshold, our served models hold one ``CalibratedClassifierCV(ensemble=False)``
    whose one calibrated classifier's ``estimator`` is the pipeline refitted on all training
    rows. (An SVC has no probabilities of its own: None.)
    """
    from sklearn.calibration import CalibratedClassifierCV

    inner = probability_model(estimator)
    if not isinstance(inner, CalibratedClassifierCV) or len(inner.calibrated_classifiers_) != 1:
        return None
    pipeline = inner.calibrated_classifiers_[0].estimator
    return pipeline if hasattr(pipeline, "predict_proba") else None


def trusted_types(estimator: Any) -> list[str]:
    """The fully qualified types skops finds untrusted by default in ``estimator``."""
    import skops.io

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(estimator)))


def sklearn_save_kwargs(estimator: Any) -> dict[str, Any]:
    """Keyword arguments for ``mlflow.sklearn.log_model``/``save_model``."""
    return {"serialization_format": "skops", "skops_trusted_types": trusted_types(estimator)}
