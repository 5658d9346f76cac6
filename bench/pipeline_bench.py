"""Benchmark of the training pipeline: wall time, peak memory, champion quality and stability.

    .venv/bin/python bench/pipeline_bench.py [--grids default] [--seeds 0 1 2 3 4]
                                             [--pipeline-runs 2] [--skip-pipeline]
                                             [--skip-quality] [--skip-stability]

1. Pipeline: two full ``potability pipeline run --local`` (kfp.local, every component a
   subprocess) against a fresh local stack in a temporary home - a first run (no champion)
   and a second on unchanged data (``--pipeline-runs 1``: the first only); prints wall time
   and the peak resident memory of the whole process tree (sampled every 0.2 s, children
   summed), what the run added to MLflow's artifact store (bytes on disk: the logged models
   and the rest - figures, tables), the resident memory of the model server deploy started on
   the champion (after 5 s of 8 clients scoring single readings: its steady state, not a
   throughput figure), and the decision rows.
2. Quality, with honest selection: for each split seed, the pipeline's own functions
   in-process - the pipeline's split, every family's grid search, calibration and
   cross-validated selection score on the training part, the challenger chosen by the promote
   rule (cross-validated precision at the floor; the held-out rows are not looked at) - then
   the champion's held-out precision (with its 95% bootstrap interval), recall, ROC-AUC and
   Brier score (calibrated, as served, and of the same pipeline uncalibrated), per seed and
   as mean and standard deviation over the seeds. Each family's held-out precision is shown
   for reference only. (A first run has no champion, so the challenger is the champion.)
3. Stability: per seed, the same data, split and grids trained again with another CV seed
   (other folds, other estimator seeds); the promote rule on a look (paired bootstrap at the
   look's confidence, 0.99615 by default) decides between the two. Any promotion is a
   promotion on noise; the target is 0.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from process_tree import tree_rss  # noqa: E402 - bench/, beside this script


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Run ``argv``; return (wall seconds, peak tree RSS bytes, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode:
        print(err[-3000:], file=sys.stderr)
    return wall, peak, proc.returncode


def stored_bytes(artifacts: Path) -> tuple[int, int]:
    """(bytes of the logged models, bytes of everything else) in MLflow's artifact store.

    MLflow 3 writes a logged model under ``<experiment id>/models/m-<id>/`` and a run's own
    artifacts (figures, tables) under ``<experiment id>/<run id>/``."""
    models = other = 0
    for path in artifacts.rglob("*"):
        if path.is_file():
            size = path.stat().st_size
            if "models" in path.relative_to(artifacts).parts[1:2]:
                models += size
            else:
                other += size
    return models, other


def served_rss(home: Path) -> tuple[int, str]:
    """(resident bytes, runtime) of the local model server after 5 s of single readings from
    8 clients (functions_bench's load): the champion as served, scoring arenas allocated."""
    import json
    import urllib.request

    from functions_bench import load_server

    from potability import config
    from potability.local import services

    url = config.read_env(home)["MODEL_SERVER_URL"]
    pid = services.running_pid(home, "model-server")
    health = json.loads(urllib.request.urlopen(f"{url}/health", timeout=10).read())
    load_server(f"{url}/predict", "model", 5.0, 8, pid)
    return tree_rss(pid), str(health.get("runtime"))


def bench_pipeline(grid: str, runs: int = 2) -> None:
    from pipelines.local_scheduler import local_run_command
    from potability.config import Settings
    from potability.local import services
    from potability.local import stack as local_stack

    home = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    print(f"== pipeline (grid {grid!r}) in a fresh local stack at {home}")
    info = local_stack.up(Settings(home=home), mlflow_port=services.free_port())
    env = {**os.environ, "POTABILITY_HOME": str(home)}
    try:
        artifacts = home / "mlflow" / "artifacts"
        for label in ("first run (no champion)", "second run (unchanged data)")[:runs]:
            models, other = stored_bytes(artifacts)
            wall, peak, code = run_measured(
                local_run_command([f"grids={grid}"]),
                env,
            )
            models_after, other_after = stored_bytes(artifacts)
            rss, runtime = served_rss(home)
            print(
                f"{label:30} wall {wall:6.1f} s   peak RSS (tree) {peak / 2**20:7.0f} MiB"
                f"   exit {code}\n{'':30} stored: models {(models_after - models) / 1e6:.1f} MB,"
                f" other artifacts {(other_after - other) / 1e6:.1f} MB; model server "
                f"{rss / 2**20:.0f} MiB resident ({runtime})",
                flush=True,
            )
        from potability import db

        conn = db.connect(Settings(database_url=info.database_url))
        cur = conn.cursor()
        cur.execute(
            "SELECT decision, champion_version, champion_family, champion_precision, "
            "champion_precision_low, champion_precision_high, champion_recall, "
            "champion_threshold, probability_challenger_better "
            "FROM water.pipeline_runs ORDER BY started_at"
        )
        for row in cur.fetchall():
            print("  pipeline_runs:", row)
        conn.close()
    finally:
        local_stack.down(home)


def _fit_and_choose(parts: object, grids: str, config: object) -> tuple[list, dict]:
    """Every candidate fitted on the training part; the challenger by the promote rule."""
    from training.candidates import fit_candidates
    from training.decision import choose_challenger

    fitted = fit_candidates(parts.train, grids, config)
    candidates = [
        {
            "family": c.family,
            "cv_score": c.selection.score,
            "cv_recall": c.selection.recall,
            "cv_precision": c.selection.precision,
            "fitted": c,
        }
        for c in fitted
    ]
    return candidates, choose_challenger(candidates)


def _score_before(c: object, y_train: object, config: object) -> float:
    """The selection score as computed before issue 31: the grid point, the calibration
    method and the vote's members chosen on all folds' OOF rows, then scored on those rows
    (only the threshold was tuned on the other folds) - for the optimism comparison."""
    import numpy as np

    from training import modeling

    y = np.asarray(y_train).astype(int)
    ids = modeling.fold_ids(y, config)
    proba = modeling.cross_fitted_calibration(c.oof_raw, y, ids, c.calibration)
    target = config.target_recall(y)
    return modeling.cv_selection(y, proba, ids, target, config.recall_floor).score


def _stats(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return (
        f"mean {statistics.mean(values):.3f}  sd {spread:.3f}  min {min(values):.3f}  "
        f"max {max(values):.3f}"
    )


def bench_quality(grids: str, seeds: list[int], stability: bool) -> None:
    import numpy as np

    from potability.config import Settings
    from potability.features import FEATURE_NAMES
    from potability.seed import load_training_rows
    from training import footprint, modeling
    from training.decision import CHALLENGER_WINS, decide, look_confidence
    from training.evaluation import (
        paired_bootstrap,
        precision_interval,
        predictions,
        score_model,
        uncalibrated_proba,
    )
    from training.split import split

    frame = load_training_rows()
    look = look_confidence(Settings().promotion_false_rate, Settings().promotion_look_days)
    print(
        f"== champion quality over split seeds {seeds} (grids {grids!r}, test fraction 0.2, "
        "challenger chosen by cross-validation on the training part)"
    )
    rows, promotions = [], []
    optimism: dict[str, list[float]] = {"now": [], "before": []}
    for seed in seeds:
        start = time.perf_counter()
        parts = split(frame, 0.2, seed)
        config = modeling.TrainingConfig(seed=seed)
        candidates, best = _fit_and_choose(parts, grids, config)
        model = best["fitted"].model
        s = score_model(model, parts.test)
        y, predicted = predictions(model, parts.test)
        low, high = precision_interval(y, predicted)
        raw = uncalibrated_proba(model, parts.test[list(FEATURE_NAMES)].astype(float))
        raw_brier = float(np.mean((raw - y) ** 2)) if raw is not None else float("nan")
        rows.append({**s.as_dict(), "brier_uncalibrated": raw_brier})
        held_out = {c["family"]: score_model(c["fitted"].model, parts.test) for c in candidates}
        before = {
            c["family"]: _score_before(c["fitted"], parts.train["potability"], config)
            for c in candidates
        }
        families = "  ".join(
            f"{c['family'][:8]} cv={c['cv_score']:.3f} (before {before[c['family']]:.3f}) "
            f"P={held_out[c['family']].precision:.3f}"
            for c in candidates
        )
        # the challenger's CV figure against its held-out precision, as ranked now and before
        chosen_before = max(candidates, key=lambda c: before[c["family"]])["family"]
        optimism["now"].append(best["cv_score"] - held_out[best["family"]].precision)
        optimism["before"].append(before[chosen_before] - held_out[chosen_before].precision)
        print(
            f"seed {seed}: champion {best['family']:22} ({best['fitted'].calibration}) "
            f"precision {s.precision:.3f} [95% {low:.3f}-{high:.3f}] recall {s.recall:.3f} "
            f"roc_auc {s.roc_auc:.3f} brier {s.brier:.4f} (uncalibrated {raw_brier:.4f}) "
            f"threshold {s.threshold:.3f}  (fit {time.perf_counter() - start:.0f} s)  "
            f"size {footprint.model_bytes(footprint.drop_duplicates(model)) / 1e6:.1f} MB"
        )
        print(f"        per family, held-out for reference only: [{families}]")
        if stability:
            start = time.perf_counter()
            other = modeling.TrainingConfig(seed=seed, cv_seed=seed + 1000)
            _, rerun = _fit_and_choose(parts, grids, other)
            rerun_model = rerun["fitted"].model
            evidence = paired_bootstrap(
                y,
                predictions(rerun_model, parts.test)[1],
                predicted,
                recall_floor=config.recall_floor,
            )
            decision = decide(
                score_model(rerun_model, parts.test), s, evidence, config.recall_floor, look
            )
            promotions.append(decision == CHALLENGER_WINS)
            print(
                f"        re-run with cv seed {seed + 1000}: challenger {rerun['family']}, "
                f"difference {evidence.difference:+.3f} [95% {evidence.low:+.3f} "
                f"{evidence.high:+.3f}], P(better) {evidence.probability:.3f} -> {decision}"
                f"  ({time.perf_counter() - start:.0f} s)"
            )
    for key in ("precision", "recall", "roc_auc", "brier", "brier_uncalibrated", "threshold"):
        values = [r[key] for r in rows if r[key] == r[key]]
        if values:
            print(f"{key:19} {_stats(values)}")
    calibrated_better = sum(r["brier"] < r["brier_uncalibrated"] for r in rows)
    print(
        f"seeds with calibrated Brier below uncalibrated: {calibrated_better} of {len(rows)}"
        " (an SVM champion has no uncalibrated probabilities and counts as not below)"
    )
    print(
        "challenger's CV precision minus its held-out precision: "
        f"now {_stats(optimism['now'])}; selection score before issue 31 "
        f"{_stats(optimism['before'])}"
    )
    below = sum(r["recall"] < 0.2 for r in rows)
    print(f"seeds with held-out recall below the 0.20 floor: {below} of {len(rows)}")
    if stability:
        print(
            f"promotions on unchanged data (other CV seed): {sum(promotions)} of {len(promotions)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grids", "--grid", default="default", help="named grid set")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="split seeds of the quality and stability parts",
    )
    parser.add_argument(
        "--pipeline-runs",
        type=int,
        choices=(1, 2),
        default=2,
        help="pipeline runs: the first only (sizes, memory), or also the second",
    )
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-stability", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    if not args.skip_pipeline:
        bench_pipeline(args.grids, args.pipeline_runs)
    if not args.skip_quality:
        bench_quality(args.grids, args.seeds, not args.skip_stability)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
