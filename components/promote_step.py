"""Step 4, promote: the challenger against the champion on evidence, registered and the alias
moved if it wins (:func:`training.promotion.promote`) - unless promotions are held or need an
operator's approval (``promotion_approval``; docs/operating-the-model.md)."""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input


def promote_component(
    run_id: str,
    scored_candidates: Input[Artifact],
    test_set: Input[Dataset],
    parent_run_id: str,
    training_rows: int,
    recall_floor: float,
    split_seed: int,
    test_fraction: float,
    promotion_false_rate: float,
    promotion_look_days: int,
    model_name: str,
    mlflow_tracking_uri: str,
    database: dict,
    mlflow_credentials_secret: str = "",
    promotion_approval: str = "auto",
    candidate_expiry_days: float = 7.0,
    # KFP reads the step's outputs from this functional NamedTuple; mypy takes no call here.
) -> NamedTuple(  # type: ignore[valid-type]
    "PromoteOutputs",
    [
        ("decision", str),
        ("champion_version", str),
        ("champion_changed", bool),
        ("previous_version", str),
    ],
):
    """Pick the challenger, weigh the evidence against the champion on a look (at most one every
    ``promotion_look_days``, so a quarter's looks promote a no-better challenger in at most
    ``promotion_false_rate`` of quarters), register and move the alias if it wins."""
    import json
    from collections import namedtuple
    from pathlib import Path

    from components.runtime import failure_recorded, step_settings
    from training.dataset import read_dataset
    from training.decision import look_confidence
    from training.promotion import promote

    settings = step_settings(database, mlflow_tracking_uri, model_name, mlflow_credentials_secret)
    with failure_recorded(settings, run_id, "promote"):
        result = promote(
            settings=settings,
            run_id=run_id,
            scored=json.loads(Path(scored_candidates.path).read_text()),
            test=read_dataset(test_set.path),
            recall_floor=recall_floor,
            parent_run_id=parent_run_id,
            training_rows=training_rows,
            split_seed=split_seed,
            test_fraction=test_fraction,
            # each look's level: the quarter's rate over its looks (training.decision)
            promotion_confidence=look_confidence(promotion_false_rate, promotion_look_days),
            promotion_look_days=promotion_look_days,
            promotion_approval=promotion_approval,
            candidate_expiry_days=candidate_expiry_days,
        )
    PromoteOutputs = namedtuple(
        "PromoteOutputs", ["decision", "champion_version", "champion_changed", "previous_version"]
    )
    return PromoteOutputs(*result)
