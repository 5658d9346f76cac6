"""Evaluation: every candidate scored on the held-out rows (the evaluate step's logic).

:func:`score_model` is the one scoring function: evaluate uses it for the candidates and
promote for the current champion, so both sides of the promotion compare like with like.
Scores go to each family's MLflow run (with the confusion matrix, the precision-recall curve
with the threshold marked, and the held-out reliability diagram with the Brier scores of the
calibrated and the uncalibrated model), to the parent run, and to KFP Metrics /
ClassificationMetrics so they show in the Vertex AI UI.

The held-out scores of the candidates are reported, never used to choose among them: the
challenger is chosen on cross-validated training figures
(:func:`training.decision.choose_challenger`), so its held-out precision is an honest
estimate, not the maximum of several noisy ones. :func:`paired_bootstrap` and
:func:`precision_interval` turn held-out predictions into evidence: the precision difference
between two models with its 95% interval and the probability that one is more precise.
"""

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from potability.features import FEATURE_NAMES, TARGET
from potability.model import decision_threshold, uncalibrated_model

BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the held-out rows behind every interval and promotion probability."""
BOOTSTRAP_SEED = 0
"""Fixed: the same rows and predictions always give the same evidence (a re-run decides alike)."""


@dataclass(frozen=True)
class Scores:
    """Held-out scores of one model at its own threshold (precision is the primary metric)."""

    precision: float
    recall: float
    f1: float
    roc_auc: float
    pr_auc: float
    accuracy: float
    threshold: float
    predicted_positive: int
    rows: int
    brier: float = float("nan")
    """Brier score of the served (calibrated) probability; lower is better."""

    def meets(self, recall_floor: float) -> bool:
        """Whether recall reaches the floor (only then does precision count)."""
        return self.recall >= recall_floor

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def positive_proba(model: Any, x: pd.DataFrame) -> np.ndarray:
    """P(potable) per row."""
    return model.predict_proba(x)[:, list(model.classes_).index(1)]


def uncalibrated_proba(model: Any, x: pd.DataFrame) -> np.ndarray | None:
    """P(potable) of the model *before* calibration, for comparison; None if it has none
    (:func:`potability.model.uncalibrated_model`)."""
    pipeline = uncalibrated_model(model)
    if pipeline is None:
        return None
    return pipeline.predict_proba(x)[:, list(pipeline.classes_).index(1)]


def predictions(model: Any, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, the model's own hard predictions at its threshold) on ``test``."""
    x = test[list(FEATURE_NAMES)].astype(float)
    return test[TARGET].astype(int).to_numpy(), np.asarray(model.predict(x)).astype(int)


def score_model(model: Any, test: pd.DataFrame) -> Scores:
    """Score ``model`` (its own ``predict``, i.e. its tuned threshold) on the held-out rows.

    Args:
        model: a fitted classifier with ``predict`` and ``predict_proba``.
        test: held-out rows (``FEATURE_NAMES`` + target).
    """
    x = test[list(FEATURE_NAMES)].astype(float)
    y = test[TARGET].astype(int).to_numpy()
    predicted = np.asarray(model.predict(x)).astype(int)
    proba = positive_proba(model, x)
    return Scores(
        precision=float(precision_score(y, predicted, zero_division=0)),
        recall=float(recall_score(y, predicted, zero_division=0)),
        f1=float(f1_score(y, predicted, zero_division=0)),
        roc_auc=float(roc_auc_score(y, proba)),
        pr_auc=float(average_precision_score(y, proba)),
        accuracy=float(accuracy_score(y, predicted)),
        threshold=decision_threshold(model),
        predicted_positive=int(predicted.sum()),
        rows=len(y),
        brier=float(np.mean((proba - y) ** 2)),
    )


# --- evidence ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """Paired bootstrap of (challenger - champion) held-out precision, each at its threshold."""

    difference: float
    """Observed difference on the rows themselves."""
    low: float
    high: float
    """95% percentile interval of the difference."""
    probability: float
    """Share of resamples in which the challenger is strictly more precise."""
    resamples: int
    joint_probability: float | None = None
    """Share of resamples in which the challenger is strictly more precise AND its recall
    reaches the floor: the one combined criterion of promotion (None without a floor)."""
    challenger_meets_floor: float | None = None
    """Share of resamples in which the challenger's recall reaches the floor."""
    champion_meets_floor: float | None = None
    """Share of resamples in which the champion's recall reaches the floor."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resample_indices(rows: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, rows, size=(resamples, rows))


def _precisions(y: np.ndarray, predicted: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Precision of each resample (rows ``idx[i]``); 0 when a resample predicts no potable."""
    positive = predicted[idx] == 1
    true_pos = (positive & (y[idx] == 1)).sum(axis=1)
    count = positive.sum(axis=1)
    return np.divide(true_pos, count, out=np.zeros(len(idx)), where=count > 0)


def _recalls(y: np.ndarray, predicted: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Recall of each resample; 0 when a resample holds no potable row."""
    actual = y[idx] == 1
    true_pos = (actual & (predicted[idx] == 1)).sum(axis=1)
    count = actual.sum(axis=1)
    return np.divide(true_pos, count, out=np.zeros(len(idx)), where=count > 0)


def recall_floor_evidence(
    y: Any,
    predicted: Any,
    recall_floor: float,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> float:
    """Share of bootstrap resamples in which one model's recall reaches the floor.

    Held-out recall on ~250 potable rows has a standard error (~0.027) larger than the
    usual margin to the floor, so "recall >= floor" on the rows themselves is a coin toss for
    a model near it; this share is the evidence (>= the promotion confidence: it meets the
    floor; <= 1 - confidence: it misses it; in between: undecided)."""
    y, p = np.asarray(y).astype(int), np.asarray(predicted).astype(int)
    idx = _resample_indices(len(y), resamples, seed)
    return float(np.mean(_recalls(y, p, idx) >= recall_floor))


def paired_bootstrap(
    y: Any,
    challenger: Any,
    champion: Any,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    recall_floor: float | None = None,
) -> Evidence:
    """How sure are we that the challenger is more precise than the champion on these rows?

    Both models' predictions are resampled together (the same rows in each resample), so the
    noise they share - which rows happen to be held out - cancels out of the difference.

    Args:
        y: true labels of the held-out rows.
        challenger: the challenger's hard predictions on them (at its own threshold).
        champion: the champion's hard predictions on the same rows.
        resamples: number of bootstrap resamples (>= 2,000 for the promotion rule).
        seed: the resampling seed (fixed: the same inputs give the same evidence).
        recall_floor: when given, both recalls are judged in the SAME resamples, so the
            recall floor and the precision gain make one criterion (``joint_probability``).
    """
    y, a, b = (np.asarray(v).astype(int) for v in (y, challenger, champion))
    if not len(y) == len(a) == len(b) or not len(y):
        raise ValueError("labels and both predictions must be non-empty and of one length")
    idx = _resample_indices(len(y), resamples, seed)
    diffs = _precisions(y, a, idx) - _precisions(y, b, idx)
    observed = float(
        _precisions(y, a, np.arange(len(y))[None])[0]
        - _precisions(y, b, np.arange(len(y))[None])[0]
    )
    low, high = np.percentile(diffs, [2.5, 97.5])
    if recall_floor is None:
        return Evidence(observed, float(low), float(high), float(np.mean(diffs > 0)), resamples)
    challenger_meets = _recalls(y, a, idx) >= recall_floor
    champion_meets = _recalls(y, b, idx) >= recall_floor
    return Evidence(
        observed,
        float(low),
        float(high),
        float(np.mean(diffs > 0)),
        resamples,
        joint_probability=float(np.mean((diffs > 0) & challenger_meets)),
        challenger_meets_floor=float(np.mean(challenger_meets)),
        champion_meets_floor=float(np.mean(champion_meets)),
    )


def precision_interval(
    y: Any, predicted: Any, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """95% bootstrap percentile interval of one model's held-out precision.

    It says how far the precision measured on these ~650 rows could be from the model's
    precision on water it will see, given only how many potable calls it made and got right.
    """
    y, p = np.asarray(y).astype(int), np.asarray(predicted).astype(int)
    low, high = np.percentile(
        _precisions(y, p, _resample_indices(len(y), resamples, seed)), [2.5, 97.5]
    )
    return float(low), float(high)


def log_figures(
    model: Any, test: pd.DataFrame, scores: Scores, family: str, recall_floor: float
) -> None:
    """Attach the held-out confusion matrix and PR curve to the active MLflow run."""
    import mlflow

    from training import figures

    x = test[list(FEATURE_NAMES)].astype(float)
    y = test[TARGET].astype(int).to_numpy()
    matrix = confusion_matrix(y, model.predict(x), labels=[0, 1])
    fig = figures.confusion_matrix_figure(
        matrix.tolist(), f"{family} on held-out data (threshold {scores.threshold:.3f})"
    )
    mlflow.log_figure(fig, "figures/confusion_matrix.png")
    figures.close(fig)
    proba = positive_proba(model, x)
    fig = figures.precision_recall_figure(
        y, proba, scores.threshold, recall_floor, f"{family}: held-out precision-recall"
    )
    mlflow.log_figure(fig, "figures/precision_recall_curve.png")
    figures.close(fig)
    raw = uncalibrated_proba(model, x)
    fig = figures.reliability_figure(
        y,
        {"calibrated (served)": proba, **({"uncalibrated": raw} if raw is not None else {})},
        f"{family}: reliability on held-out data",
    )
    mlflow.log_figure(fig, "figures/reliability_held_out.png")
    figures.close(fig)


def evaluate(
    candidates: list[dict[str, Any]],
    test: pd.DataFrame,
    *,
    tracking_uri: str,
    parent_run_id: str,
    recall_floor: float,
    load_model: Any = None,
    models: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Score every candidate; log to its run and the parent; return candidates + ``scores``.

    Args:
        candidates: the train component's list (family, run_id, model_uri, ...).
        test: held-out rows.
        tracking_uri: MLflow tracking server.
        parent_run_id: the pipeline run's parent MLflow run.
        recall_floor: drawn on the PR curve; decides which precisions count.
        load_model: loader of a model URI (default ``mlflow.sklearn.load_model``).
        models: if given, filled with the loaded models by family (saves reloading them).
    """
    import mlflow
    import mlflow.sklearn

    mlflow.set_tracking_uri(tracking_uri)
    load_model = load_model or mlflow.sklearn.load_model
    models = {} if models is None else models
    scored = []
    for candidate in candidates:
        model = models[candidate["family"]] = load_model(candidate["model_uri"])
        scores = score_model(model, test)
        metrics = {f"test_{k}": float(v) for k, v in scores.as_dict().items()}
        raw = uncalibrated_proba(model, test[list(FEATURE_NAMES)].astype(float))
        if raw is not None:
            y = test[TARGET].astype(int).to_numpy()
            metrics["test_brier_uncalibrated"] = float(np.mean((raw - y) ** 2))
        with mlflow.start_run(run_id=candidate["run_id"]):
            mlflow.log_metrics(metrics)
            log_figures(model, test, scores, candidate["family"], recall_floor)
        scored.append({**candidate, "scores": scores.as_dict()})
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    for item in scored:
        for key, value in item["scores"].items():
            client.log_metric(parent_run_id, f"{item['family']}.test_{key}", float(value))
    return scored


def roc_points(
    y: Any, proba: Any, max_points: int = 60
) -> tuple[list[float], list[float], list[float]]:
    """A thinned ROC curve (KFP's ClassificationMetrics stores it inline), thresholds in [0, 1]."""
    fpr, tpr, thresholds = roc_curve(y, proba)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).astype(int))
    return (fpr[keep].tolist(), tpr[keep].tolist(), np.clip(thresholds[keep], 0.0, 1.0).tolist())
