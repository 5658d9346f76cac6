"""Step 3, evaluate (components/evaluate_step.py): held-out scores for every candidate and the
challenger's curves as the Vertex AI UI shows them."""

import json
from pathlib import Path

from training.dataset import read_dataset
from training.decision import choose_challenger


def test_evaluate_scores_every_candidate_and_logs_the_challenger(step_chain) -> None:
    scored = json.loads(Path(step_chain.artifacts["scored_candidates"].path).read_text())
    logged = json.loads(Path(step_chain.artifacts["candidates"].path).read_text())
    assert [s["family"] for s in scored] == [c["family"] for c in logged]
    metrics = step_chain.artifacts["metrics"].metadata
    for item in scored:
        assert 0.0 <= item["scores"]["precision"] <= 1.0
        assert metrics[f"{item['family']}.precision"] == float(item["scores"]["precision"])
    best = choose_challenger(scored)
    assert metrics["challenger.precision"] == float(best["scores"]["precision"])
    curves = step_chain.artifacts["challenger_metrics"].metadata
    assert curves["family"] == best["family"]
    matrix = curves["confusionMatrix"]["rows"]
    held_out = read_dataset(step_chain.artifacts["test_set"].path)
    assert sum(sum(r["row"]) for r in matrix) == len(held_out)
    assert "confidenceMetrics" in curves  # the ROC curve
