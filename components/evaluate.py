"""Component 3, evaluate: every candidate scored on the held-out rows.

:func:`score_model` is the one scoring function: evaluate uses it for the candidates and
promote for the current champion, so both sides of the promotion compare like with like.
Scores go to each family's MLflow run (with the confusion matrix and the precision-recall
curve, threshold marked), to the parent run, and to KFP Metrics / ClassificationMetrics so
they show in the Vertex AI UI.
"""

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score,
                             precision_score, recall_score, roc_auc_score, roc_curve)

from potability.features import FEATURE_NAMES, TARGET


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

    def meets(self, recall_floor: float) -> bool:
        """Whether recall reaches the floor (only then does precision count)."""
        return self.recall >= recall_floor

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_threshold(model: Any) -> float:
    """The threshold the model's ``predict`` applies (``best_threshold_``; 0.5 otherwise)."""
    threshold = getattr(model, "best_threshold_", None)
    return float(threshold) if threshold is not None else 0.5


def positive_proba(model: Any, x: pd.DataFrame) -> np.ndarray:
    """P(potable) per row."""
    return model.predict_proba(x)[:, list(model.classes_).index(1)]


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
        threshold=model_threshold(model),
        predicted_positive=int(predicted.sum()),
        rows=len(y),
    )


def log_figures(model: Any, test: pd.DataFrame, scores: Scores, family: str,
                recall_floor: float) -> None:
    """Attach the held-out confusion matrix and PR curve to the active MLflow run."""
    import mlflow

    from components import figures

    x = test[list(FEATURE_NAMES)].astype(float)
    y = test[TARGET].astype(int).to_numpy()
    matrix = confusion_matrix(y, model.predict(x), labels=[0, 1])
    fig = figures.confusion_matrix_figure(
        matrix.tolist(), f"{family} on held-out data (threshold {scores.threshold:.3f})")
    mlflow.log_figure(fig, "figures/confusion_matrix.png")
    figures.close(fig)
    fig = figures.precision_recall_figure(y, positive_proba(model, x), scores.threshold,
                                          recall_floor, f"{family}: held-out precision-recall")
    mlflow.log_figure(fig, "figures/precision_recall_curve.png")
    figures.close(fig)


def evaluate(candidates: list[dict[str, Any]], test: pd.DataFrame, *, tracking_uri: str,
             parent_run_id: str, recall_floor: float,
             load_model: Any = None,
             models: dict[str, Any] | None = None) -> list[dict[str, Any]]:
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
        with mlflow.start_run(run_id=candidate["run_id"]):
            mlflow.log_metrics({f"test_{k}": float(v) for k, v in scores.as_dict().items()})
            log_figures(model, test, scores, candidate["family"], recall_floor)
        scored.append({**candidate, "scores": scores.as_dict()})
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    for item in scored:
        for key, value in item["scores"].items():
            client.log_metric(parent_run_id, f"{item['family']}.test_{key}", float(value))
    return scored


def roc_points(y: Any, proba: Any, max_points: int = 60) -> tuple[list[float], list[float], list[float]]:
    """A thinned ROC curve (KFP's ClassificationMetrics stores it inline), thresholds in [0, 1]."""
    fpr, tpr, thresholds = roc_curve(y, proba)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).astype(int))
    return (fpr[keep].tolist(), tpr[keep].tolist(),
            np.clip(thresholds[keep], 0.0, 1.0).tolist())


# --- the KFP component -----------------------------------------------------------------------
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Output  # noqa: E402


def evaluate_component(
    run_id: str,
    test_set: Input[Dataset],
    candidates: Input[Artifact],
    parent_run_id: str,
    recall_floor: float,
    mlflow_tracking_uri: str,
    database_url: str,
    cloud_sql_instance: str,
    database_name: str,
    database_user: str,
    scored_candidates: Output[Artifact],
    metrics: Output[Metrics],
    challenger_metrics: Output[ClassificationMetrics],
):
    """Score the candidates on the held-out rows; KFP metrics for all, curves for the best."""
    import json
    from pathlib import Path

    from sklearn.metrics import confusion_matrix

    from components import run_record
    from components.evaluate import evaluate, positive_proba, roc_points
    from components.export import read_dataset
    from components.promote import choose_challenger
    from components.runtime import step_settings
    from components.train import load_candidates
    from potability.features import FEATURE_NAMES, TARGET

    settings = step_settings(database_url, cloud_sql_instance, database_name, database_user,
                             mlflow_tracking_uri)
    with run_record.failure_recorded(settings, run_id, "evaluate"):
        test = read_dataset(test_set.path)
        models: dict = {}
        scored = evaluate(load_candidates(candidates.path), test,
                          tracking_uri=settings.mlflow_tracking_uri,
                          parent_run_id=parent_run_id, recall_floor=recall_floor, models=models)
        Path(scored_candidates.path).write_text(json.dumps(scored, indent=1))
        for item in scored:
            for key, value in item["scores"].items():
                metrics.log_metric(f"{item['family']}.{key}", float(value))
        best = choose_challenger(scored, recall_floor)
        metrics.log_metric("challenger.precision", float(best["scores"]["precision"]))
        model = models[best["family"]]
        x = test[list(FEATURE_NAMES)].astype(float)
        y = test[TARGET].astype(int).to_numpy()
        matrix = confusion_matrix(y, model.predict(x), labels=[0, 1])
        challenger_metrics.log_confusion_matrix(["not potable", "potable"], matrix.tolist())
        fpr, tpr, thresholds = roc_points(y, positive_proba(model, x))
        challenger_metrics.log_roc_curve(fpr, tpr, thresholds)
        challenger_metrics.metadata["family"] = best["family"]
