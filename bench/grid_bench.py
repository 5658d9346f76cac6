"""Where a grid's fitting time goes, and which of its points ever win - training rows only.

    .venv/bin/python bench/grid_bench.py [--grids default] [--seeds 0 1 2 3 4] [--folds 5]

Per split seed: the pipeline's split (test fraction 0.2), then, on the training part only,
every family and the soft vote fitted exactly as the train step fits them
(:func:`training.modeling.fit_all`). Printed per family: wall seconds of the grid search
(every point on every fold) and of the rest (calibration choice, selection score, threshold,
the served model's one fit on all rows), the selection score (cross-validated precision at the
recall floor, threshold tuned inside the folds) and every grid point's mean CV score, the
winner marked. At the end, over the seeds: per family its mean selection score, how often it
would have been the challenger, and its mean time; per grid point how often it won and its
mean CV score.

The held-out rows are never looked at, so what these figures justify - pruning grid points
that never win, dropping a family that is never close - is justified on training rows only.
"""

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grids", default="default", help="named grid set")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--folds", type=int, default=5, help="CV folds (the pipeline's 5)")
    args = parser.parse_args()

    from potability.seed import load_training_rows
    from training import modeling
    from training.candidates import features_and_target
    from training.decision import choose_challenger
    from training.split import split

    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
        f"grids {args.grids!r}, {args.folds} folds"
    )
    frame = load_training_rows()
    wins: dict[tuple[str, str], int] = defaultdict(int)
    point_scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    selection: dict[str, list[float]] = defaultdict(list)
    seconds: dict[str, list[float]] = defaultdict(list)
    chosen: dict[str, int] = defaultdict(int)
    for seed in args.seeds:
        x, y = features_and_target(split(frame, 0.2, seed).train)
        config = modeling.TrainingConfig(seed=seed, cv_folds=args.folds)
        start = time.perf_counter()
        fitted = modeling.fit_all(modeling.grid(args.grids), x, y, config)
        total = time.perf_counter() - start
        challenger = choose_challenger(
            [
                {
                    "family": c.family,
                    "cv_score": c.selection.score,
                    "cv_recall": c.selection.recall,
                    "cv_precision": c.selection.precision,
                }
                for c in fitted
            ]
        )
        chosen[challenger["family"]] += 1
        print(
            f"seed {seed}: {len(y)} training rows, all candidates fitted in {total:.1f} s, "
            f"challenger {challenger['family']}"
        )
        for c in fitted:
            selection[c.family].append(c.selection.score)
            seconds[c.family].append(sum(c.seconds.values()))
            print(
                f"  {c.family:24} selection {c.selection.score:.3f} (recall "
                f"{c.selection.recall:.3f})  grid search {c.seconds['grid_search']:6.1f} s"
                f"  rest {c.seconds['final_fit']:5.1f} s  calibration {c.calibration}"
            )
            params = c.cv_results.get("params") or []
            for p, point in enumerate(params):
                key = (
                    c.family,
                    ", ".join(f"{k.split('__', 1)[1]}={v}" for k, v in sorted(point.items())),
                )
                score = float(c.cv_results["mean_test_score"][p])
                won = int(c.cv_results["rank_test_score"][p]) == 1 and point == c.best_params
                wins[key] += won
                point_scores[key].append(score)
                print(f"      {'*' if won else ' '} {key[1]:40} cv {score:.3f}")
    print(f"== over seeds {args.seeds}")
    for family in selection:
        print(
            f"{family:24} selection mean {statistics.mean(selection[family]):.3f} "
            f"(min {min(selection[family]):.3f}, max {max(selection[family]):.3f}), "
            f"challenger {chosen[family]} of {len(args.seeds)}, "
            f"mean {statistics.mean(seconds[family]):.1f} s"
        )
    for (family, point), scores in sorted(point_scores.items()):
        print(
            f"  {family:24} {point:40} won {wins[(family, point)]} of {len(scores)}, "
            f"mean cv {statistics.mean(scores):.3f}"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
