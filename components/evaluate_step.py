"""Step 3, evaluate: every candidate scored on the held-out rows
(:func:`training.evaluation.evaluate`); KFP Metrics for all, ClassificationMetrics for the
challenger so they show in the Vertex AI UI."""

from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Output


def evaluate_component(
    run_id: str,
    test_set: Input[Dataset],
    candidates: Input[Artifact],
    parent_run_id: str,
    recall_floor: float,
    mlflow_tracking_uri: str,
    database: dict,
    scored_candidates: Output[Artifact],
    metrics: Output[Metrics],
    challenger_metrics: Output[ClassificationMetrics],
    mlflow_credentials_secret: str = "",
) -> None:
    """Score the candidates on the held-out rows; KFP metrics for all, curves for the best."""
    import json
    from pathlib import Path

    from sklearn.metrics import confusion_matrix

    from components.runtime import failure_recorded, step_settings
    from potability.features import FEATURE_NAMES, TARGET
    from training.candidates import load_candidates
    from training.dataset import read_dataset
    from training.decision import choose_challenger
    from training.evaluation import evaluate, positive_proba, roc_points

    settings = step_settings(
        database, mlflow_tracking_uri, mlflow_credentials_secret=mlflow_credentials_secret
    )
    with failure_recorded(settings, run_id, "evaluate"):
        test = read_dataset(test_set.path)
        models: dict = {}
        scored = evaluate(
            load_candidates(candidates.path),
            test,
            tracking_uri=settings.mlflow_tracking_uri,
            parent_run_id=parent_run_id,
            recall_floor=recall_floor,
            models=models,
        )
        Path(scored_candidates.path).write_text(json.dumps(scored, indent=1))
        for item in scored:
            for key, value in item["scores"].items():
                metrics.log_metric(f"{item['family']}.{key}", float(value))
        best = choose_challenger(scored)
        metrics.log_metric("challenger.precision", float(best["scores"]["precision"]))
        model = models[best["family"]]
        x = test[list(FEATURE_NAMES)].astype(float)
        y = test[TARGET].astype(int).to_numpy()
        matrix = confusion_matrix(y, model.predict(x), labels=[0, 1])
        challenger_metrics.log_confusion_matrix(["not potable", "potable"], matrix.tolist())
        fpr, tpr, thresholds = roc_points(y, positive_proba(model, x))
        challenger_metrics.log_roc_curve(fpr, tpr, thresholds)
        challenger_metrics.metadata["family"] = best["family"]
