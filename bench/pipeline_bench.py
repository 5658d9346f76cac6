"""Benchmark of the training pipeline: wall time, peak memory, and champion quality.

    .venv/bin/python bench/pipeline_bench.py [--grid default] [--seeds 0 1 2 3 4] [--skip-pipeline]

1. Pipeline: one full ``python -m pipelines run --local`` (kfp.local, every component a
   subprocess) against a fresh local stack in a temporary home; prints its wall time and the
   peak resident memory of the whole process tree (sampled every 0.2 s, children summed).
2. Quality: for each split seed, the pipeline's own functions in-process - the pipeline's split,
   grid search + threshold tuning of the four families on the training part, held-out scores,
   challenger chosen by the promote rule - and the champion's held-out precision, recall,
   ROC-AUC and threshold per seed, then mean and standard deviation over the seeds.
   (A first run has no champion, so the challenger is the champion.)
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


def tree_rss(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, in bytes."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_measured(argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Run ``argv``; return (wall seconds, peak tree RSS bytes, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
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


def bench_pipeline(grid: str) -> None:
    from potability import local_stack, services
    from potability.config import Settings

    home = Path(tempfile.mkdtemp(prefix="pipeline-bench-"))
    print(f"== pipeline (grid {grid!r}) in a fresh local stack at {home}")
    info = local_stack.up(Settings(home=home), mlflow_port=services.free_port())
    env = {**os.environ, "POTABILITY_HOME": str(home)}
    try:
        for label in ("first run (no champion)", "second run (unchanged data)"):
            wall, peak, code = run_measured(
                [sys.executable, "-m", "pipelines", "run", "--local", "--param", f"grids={grid}"],
                env)
            print(f"{label:30} wall {wall:6.1f} s   peak RSS (tree) {peak / 2**20:7.0f} MiB"
                  f"   exit {code}")
        from potability import db

        conn = db.connect(Settings(database_url=info.database_url))
        cur = conn.cursor()
        cur.execute("SELECT decision, champion_version, champion_family, champion_precision, "
                    "champion_recall, champion_threshold FROM water.pipeline_runs "
                    "ORDER BY started_at")
        for row in cur.fetchall():
            print("  pipeline_runs:", row)
        conn.close()
    finally:
        local_stack.down(home)


def bench_quality(grid: str, seeds: list[int]) -> None:
    from components import modeling
    from components.evaluate import score_model
    from components.promote import choose_challenger
    from components.train import fit_candidates, split
    from potability.seed import load_training_rows

    frame = load_training_rows()
    print(f"== champion quality over split seeds {seeds} (grid {grid!r}, test fraction 0.2)")
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        parts = split(frame, 0.2, seed)
        config = modeling.TrainingConfig(seed=seed)
        fitted = fit_candidates(parts.train, grid, config)
        scored = [{"family": c.family, "model": c.model,
                   "scores": score_model(c.model, parts.test).as_dict()} for c in fitted]
        best = choose_challenger(scored, config.recall_floor)
        s = best["scores"]
        rows.append(s)
        families = "  ".join(f"{x['family'][:6]} P={x['scores']['precision']:.3f}"
                             f"/R={x['scores']['recall']:.3f}" for x in scored)
        print(f"seed {seed}: champion {best['family']:19} precision {s['precision']:.3f} "
              f"recall {s['recall']:.3f} roc_auc {s['roc_auc']:.3f} threshold "
              f"{s['threshold']:.3f}  (fit {time.perf_counter() - start:.0f} s)  [{families}]")
    for key in ("precision", "recall", "roc_auc", "threshold"):
        values = [r[key] for r in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{key:10} mean {statistics.mean(values):.3f}  std {spread:.3f}  "
              f"min {min(values):.3f}  max {max(values):.3f}")
    below = sum(r["recall"] < 0.2 for r in rows)
    print(f"seeds with held-out recall below the 0.20 floor: {below} of {len(rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    if not args.skip_pipeline:
        bench_pipeline(args.grid)
    if not args.skip_quality:
        bench_quality(args.grid, args.seeds)


if __name__ == "__main__":
    main()
