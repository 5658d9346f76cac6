"""A process that promotes, or holds the promotion lock, for the concurrent-promotion fault
test (each pipeline run's promote step is a process of its own; so is each here).

    python promote_worker.py promote '<json>'   # training.promotion.promote, prints a JSON result
    python promote_worker.py hold '<json>'      # takes the promotion lock, prints "held", sleeps

The JSON carries the database URL, the MLflow tracking URI, the registered model name, and for
``promote``: the pipeline run id, the challenger's MLflow run and model URI, and the held-out
rows (a CSV path). The challenger's scores are computed here, on those rows, by the same
``score_model`` promote uses - so two workers with equal models present equal challengers.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    mode, raw = sys.argv[1], sys.argv[2]
    args = json.loads(raw)
    from potability.config import Settings

    settings = Settings(
        env="local",
        database_url=args["database_url"],
        mlflow_tracking_uri=args["mlflow_tracking_uri"],
        model_name=args["model_name"],
    )
    if mode == "hold":
        from potability import db

        with db.advisory_lock(settings, f"potability.promote:{settings.model_name}"):
            print("held", flush=True)
            time.sleep(3600)  # until killed
        return

    import mlflow.sklearn
    import pandas as pd

    from training.evaluation import score_model
    from training.promotion import promote

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    test = pd.read_csv(args["test_csv"])
    scores = score_model(mlflow.sklearn.load_model(args["model_uri"]), test).as_dict()
    candidate = {
        "family": "logistic_regression",
        "run_id": args["source_run_id"],
        "model_uri": args["model_uri"],
        "scores": scores,
        # cross-validated figures, for rules that choose on them (equal for equal models)
        "cv_score": 0.5,
        "cv_precision": 0.5,
        "cv_recall": 0.5,
    }
    print("promoting", flush=True)
    result = promote(
        settings=settings,
        run_id=args["run_id"],
        scored=[candidate],
        test=test,
        recall_floor=0.2,
        parent_run_id=args["parent_run_id"],
        training_rows=1000,
        split_seed=42,
        test_fraction=0.2,
    )
    print(
        json.dumps(
            {
                "decision": result.decision,
                "champion_version": result.champion_version,
                "champion_changed": result.champion_changed,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
