"""Benchmark of the recall floor by design (issue 31): held-out recall and precision of the
champion on split seeds the project never tuned on, at the threshold of each margin rule.

    .venv/bin/python bench/recall_floor_bench.py [--seeds 0 1 ... 9] [--grids default]
                                                 [--z 1.28 1.645 2.0]

Per split seed: the pipeline's split (20% held out), every family fitted on the training part
with the default margin (:data:`training.modeling.DEFAULT_RECALL_Z`), the challenger chosen by
the promote rule (cross-validated, held-out rows not looked at) - the champion a first run
installs. Its threshold is then re-tuned, on the same out-of-fold probabilities it was tuned
on (``tuning_proba``), at the target of each rule: ``old`` = floor + 0.02 (the rule before
issue 31) and floor + z x SE for each ``--z`` (:func:`training.modeling.recall_margin`). Only
the threshold differs between the rules (the grid search and the choice of family were made
at the default margin; they move little with the target). Printed per seed and rule: held-out
recall, precision, and the share of bootstrap resamples meeting the floor (< 0.5: the
``champion_under_recall_floor`` alert); then per rule the seeds under the floor and the mean
precision and its loss against ``old``. Targets: no seed under the floor, mean loss <= 0.02.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--grids", default="default")
    parser.add_argument("--z", type=float, nargs="+", default=[1.28, 1.645, 2.0])
    args = parser.parse_args()

    from potability.features import FEATURE_NAMES, TARGET
    from potability.seed import load_training_rows
    from training import modeling
    from training.candidates import fit_candidates
    from training.decision import choose_challenger
    from training.evaluation import positive_proba, recall_floor_evidence
    from training.split import split

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    frame = load_training_rows()
    floor = modeling.TrainingConfig().recall_floor
    rules = ["old"] + [f"z={z:g}" for z in args.z]
    results: dict[str, list[tuple[float, float, float]]] = {r: [] for r in rules}
    for seed in args.seeds:
        start = time.perf_counter()
        parts = split(frame, 0.2, seed)
        config = modeling.TrainingConfig(seed=seed, test_fraction=0.2)
        fitted = fit_candidates(parts.train, args.grids, config)
        chosen = choose_challenger(
            [
                {
                    "family": c.family,
                    "cv_score": c.selection.score,
                    "cv_recall": c.selection.recall,
                    "cv_precision": c.selection.precision,
                    "fitted": c,
                }
                for c in fitted
            ]
        )["fitted"]
        y_train = parts.train[TARGET].astype(int).to_numpy()
        y = parts.test[TARGET].astype(int).to_numpy()
        proba = positive_proba(chosen.model, parts.test[list(FEATURE_NAMES)].astype(float))
        targets = {"old": floor + 0.02}
        for z in args.z:
            margin = modeling.recall_margin(floor, int(y_train.sum()), 0.2, z)
            targets[f"z={z:g}"] = floor + margin
        cells = []
        for rule in rules:
            threshold, _, _ = modeling.tune_threshold(y_train, chosen.tuning_proba, targets[rule])
            predicted = (proba >= threshold).astype(int)
            tp = int(((predicted == 1) & (y == 1)).sum())
            precision = tp / max(1, int(predicted.sum()))
            recall = tp / int(y.sum())
            meets = recall_floor_evidence(y, predicted, floor)
            results[rule].append((recall, precision, meets))
            cells.append(f"{rule} R {recall:.3f} P {precision:.3f} meets {meets:.2f}")
        print(
            f"seed {seed}: {chosen.family:22} targets "
            + " ".join(f"{r} {t:.3f}" for r, t in targets.items())
            + f"  ({time.perf_counter() - start:.0f} s)\n        "
            + " | ".join(cells),
            flush=True,
        )
    print(
        f"\nrule      seeds under floor {floor:g}  alerted (meets < 0.5)  mean recall  "
        "mean precision  loss vs old"
    )
    old = [p for _, p, _ in results["old"]]
    for rule in rules:
        recalls = [r for r, _, _ in results[rule]]
        precisions = [p for _, p, _ in results[rule]]
        under = sum(r < floor for r in recalls)
        alerted = sum(m < 0.5 for _, _, m in results[rule])
        loss = statistics.mean(o - p for o, p in zip(old, precisions, strict=True))
        print(
            f"{rule:9} {under:>2} of {len(recalls):<17} {alerted:>2} of {len(recalls):<16} "
            f"{statistics.mean(recalls):.3f}        {statistics.mean(precisions):.3f}"
            f"           {loss:+.3f}"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
