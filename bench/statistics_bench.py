"""False-alarm and miss rates of the decision rules (issue 23), by simulation.

    .venv/bin/python bench/statistics_bench.py [--trials 1000] [--promotion-seeds 20]

Prints one table (docs/statistics.md keeps a dated copy):

* drift under NO drift: "recent" rows drawn from the training rows themselves (data/
  water_potability.csv, 80% training split), nine features, one check a week; the share of
  weeks with any alert (status ``drift``) and with any ``watch``-or-worse, for the new rule
  (:func:`potability.quality.drift.decide`) and the old PSI-only rule (0.1 / 0.25, 50 rows);
  plus the power of the new rule against a 0.5-standard-deviation shift of one feature.
  Also: a sensor that always measures Sulfate (24% missing in training).
* live precision: 50 matched potable calls a week, true precision 0.70 / 0.60 / 0.55 / 0.50,
  floor 0.60, 20-call minimum; the share of weeks flagged (week row or the version's ``all``
  row) and P(flagged within two weeks), new rule (Clopper-Pearson) vs the old point rule.
* promotion on UNCHANGED data: per seed, the champion and the challenger are the same family
  (logistic regression, threshold tuned on the training rows for recall >= floor) fitted on
  two bootstrap draws of the same training rows - no real difference exists - and decided by
  :func:`training.decision.decide` on the paired bootstrap (REDUCED: one family, no grid
  search, no CV: the full pipeline per seed is ~minutes); the share of seeds that replace the
  champion is the false promotion rate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from potability.features import FEATURE_NAMES, TARGET  # noqa: E402
from potability.quality import drift, live_precision  # noqa: E402

FLOOR = 0.60


def _data() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data" / "water_potability.csv").rename(
        columns={"Potability": TARGET}
    )


def drift_rows(trials: int, rng: np.random.Generator) -> list[tuple[str, str, float]]:
    frame = _data()
    train = frame.sample(frac=0.8, random_state=42)
    features = list(FEATURE_NAMES)
    edges = {f: drift.quantile_edges(train[f].tolist()) for f in features}
    counts = {
        f: np.rint(drift.bin_shares(train[f].tolist(), edges[f]) * len(train)) for f in features
    }
    rows = []
    for n in (50, 200):
        new_alert = new_watch = old_alert = old_watch = power = 0
        for _ in range(trials):
            recent = train.sample(n=n, random_state=int(rng.integers(2**31)))
            statuses, psis = [], []
            for f in features:
                shares = drift.bin_shares(recent[f].tolist(), edges[f])
                statuses.append(drift.decide(counts[f], np.rint(shares * n))[1])
                psis.append(drift.psi(counts[f] / counts[f].sum(), shares))
            new_alert += drift.DRIFT in statuses
            new_watch += any(s in (drift.DRIFT, drift.WATCH) for s in statuses)
            old_alert += any(p >= drift.PSI_DRIFT for p in psis)
            old_watch += any(p >= drift.PSI_WATCH for p in psis)
            shifted = recent["ph"] + 0.5 * train["ph"].std()
            shares = drift.bin_shares(shifted.tolist(), edges["ph"])
            power += drift.decide(counts["ph"], np.rint(shares * n))[1] in (
                drift.DRIFT,
                drift.WATCH,
            )
        rows += [
            (
                f"drift, no drift, n={n}/week: P(any alert 'drift')",
                f"new {new_alert / trials:.3f}",
                old_alert / trials,
            ),
            (
                f"drift, no drift, n={n}/week: P(any 'watch' or worse)",
                f"new {new_watch / trials:.3f}",
                old_watch / trials,
            ),
            (
                f"drift, ph shifted 0.5 sd, n={n}: P(detected)",
                f"new {power / trials:.3f}",
                float("nan"),
            ),
        ]
    # a sensor that always measures Sulfate: no missing values, same value distribution
    always = train["Sulfate"].dropna().sample(n=200, random_state=1).tolist()
    shares = drift.bin_shares(always, edges["Sulfate"])
    status = drift.decide(counts["Sulfate"], np.rint(shares * 200))[1]
    old = drift.psi(counts["Sulfate"] / counts["Sulfate"].sum(), shares)
    rows.append(("drift, Sulfate always measured (n=200): status", f"new {status}", round(old, 2)))
    return rows


def _flag_old(tp: int, n: int) -> bool:
    return n >= 20 and tp / n < FLOOR


def _flag_new(tp: int, n: int) -> bool:
    return n >= 20 and live_precision.precision_upper_bound(tp, n) < FLOOR


def live_rows(
    trials: int, rng: np.random.Generator, per_week: int = 50
) -> list[tuple[str, str, float]]:
    rows = []
    for truth in (0.70, 0.60, 0.55, 0.50):
        week_new = week_old = two_new = two_old = 0
        for _ in range(trials):
            w1, w2 = rng.binomial(per_week, truth, size=2)
            # checks of week 1: its week row and the 'all' row (= week 1 so far)
            first_new, first_old = _flag_new(w1, per_week), _flag_old(w1, per_week)
            week_new += first_new
            week_old += first_old
            second_new = _flag_new(w2, per_week) or _flag_new(w1 + w2, 2 * per_week)
            second_old = _flag_old(w2, per_week) or _flag_old(w1 + w2, 2 * per_week)
            two_new += first_new or second_new
            two_old += first_old or second_old
        rows += [
            (
                f"live precision, true {truth:.2f}: P(flag in a week)",
                f"new {week_new / trials:.3f}",
                week_old / trials,
            ),
            (
                f"live precision, true {truth:.2f}: P(flag within 2 weeks)",
                f"new {two_new / trials:.3f}",
                two_old / trials,
            ),
        ]
    return rows


def promotion_rows(seeds: int) -> list[tuple[str, str, float]]:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from training import decision as promote
    from training import evaluation as evaluate

    recall_floor = 0.2
    frame = _data()
    replaced_new = replaced_old = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        test_mask = rng.random(len(frame)) < 0.2
        train, test = frame[~test_mask], frame[test_mask]
        preds = []
        for draw in range(2):  # champion, challenger: same family, same data, resampled
            boot = train.sample(frac=1.0, replace=True, random_state=seed * 10 + draw)
            model = make_pipeline(
                SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000)
            )
            model.fit(boot[list(FEATURE_NAMES)], boot[TARGET])
            proba = model.predict_proba(train[list(FEATURE_NAMES)])[:, 1]
            positive = np.sort(proba[train[TARGET].to_numpy() == 1])
            threshold = positive[int(len(positive) * (1 - recall_floor - 0.03))]
            preds.append(
                (model.predict_proba(test[list(FEATURE_NAMES)])[:, 1] >= threshold).astype(int)
            )
        y = test[TARGET].to_numpy()
        champion, challenger = preds
        evidence = evaluate.paired_bootstrap(y, challenger, champion, recall_floor=recall_floor)
        recall = [float(((p == 1) & (y == 1)).sum() / max(1, (y == 1).sum())) for p in preds]
        precision = [float(((p == 1) & (y == 1)).sum() / max(1, p.sum())) for p in preds]

        def scores(k: int, precision=precision, recall=recall, preds=preds, y=y) -> evaluate.Scores:
            return evaluate.Scores(
                precision=precision[k],
                recall=recall[k],
                f1=0,
                roc_auc=0,
                pr_auc=0,
                accuracy=0,
                threshold=0.5,
                predicted_positive=int(preds[k].sum()),
                rows=len(y),
            )

        replaced_new += (
            promote.decide(scores(1), scores(0), evidence, recall_floor) == promote.CHALLENGER_WINS
        )
        # the old rule: single held-out recalls first, then P(more precise) >= 0.9
        old = recall[1] >= recall_floor and (
            recall[0] < recall_floor or evidence.probability >= 0.9
        )
        replaced_old += old
    return [
        (
            f"promotion, unchanged data, {seeds} seeds (reduced: LR only): P(replaced)",
            f"new {replaced_new / seeds:.3f}",
            replaced_old / seeds,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--promotion-seeds", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    started = time.perf_counter()
    rows = drift_rows(args.trials, rng) + live_rows(args.trials * 10, rng)
    rows += promotion_rows(args.promotion_seeds)
    width = max(len(r[0]) for r in rows)
    print(f"{'rule and condition':<{width}}  {'new rule':>14}  {'old rule':>8}")
    for name, new, old in rows:
        old_text = old if isinstance(old, str) else ("-" if old != old else f"{old:.3f}")
        print(f"{name:<{width}}  {new:>14}  {old_text:>8}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
