"""Status page render time: ``render_html`` on the data of a busy, long-running service.

The page is rendered once per refresh (``functions.status.StatusSource.rendered``), so its cost
is paid once per ``STATUS_REFRESH_SECONDS`` per instance, inside the refresh readers wait for.
This bench builds the data dict :func:`functions.status.status_data` returns at the page's
realistic sizes - 50 sensors (``MAX_SENSORS``, the page's cap) with 128-character ids, three
model versions with 13 weekly live-precision rows each, 9 drift features, 30 model changes,
3 open alerts, 2 jobs, and the trends (90 days of traffic, drift and live precision) - and
times ``render_html`` (median and p90 of ``--repeats`` renders after ``--warmup``).

    python bench/status_render_bench.py [--repeats 200] [--module functions.status_page]

``--module`` renders with another implementation of ``render_html`` (e.g. a copy of the
f-string renderer this replaced, to compare: ``git show <rev>:functions/status_page.py >
/tmp/old_status_page.py`` and ``--module-path /tmp/old_status_page.py``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functions.status import drift_summary  # noqa: E402
from potability.features import FEATURE_NAMES  # noqa: E402

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _count(key: str, name: str, total: int, potable: int) -> dict[str, Any]:
    return {key: name, "total": total, "potable": potable, "potable_share": potable / total}


def _psi(feature: str, k: int, rng: random.Random) -> float:
    """A day's PSI: ~0.02-0.08 noise; Sulfate climbing from day 60 of 90 to ~0.35."""
    base = 0.02 + 0.06 * rng.random()
    return base + max(0, k - 60) * 0.011 if feature == "Sulfate" else base


def realistic_data(seed: int = 7) -> dict[str, Any]:
    """The data dict of a service with 200 sensors, a year of history and three models."""
    rng = random.Random(seed)
    hour = timedelta(hours=1)
    sensors = [f"plant-{i:03d}/outlet-" + "m" * 110 for i in range(50)]
    by_sensor = [_count("sensor_id", s, 10_000 - i, 6_000 - i) for i, s in enumerate(sensors)]
    versions = ["5", "6", "7"]
    live = []
    for v in versions:
        for w in range(13):
            start = (NOW - timedelta(weeks=13 - w)).date()
            matches = rng.randint(20, 60)
            tp = rng.randint(5, matches // 2)
            fp = rng.randint(1, matches // 4)
            fn = rng.randint(0, matches - tp - fp)
            precision = tp / (tp + fp)
            live.append(
                {
                    "model_version": v,
                    "period": f"2026-W{w + 36:02d}",
                    "week_start": start.isoformat(),
                    "matches": matches,
                    "true_positives": tp,
                    "false_positives": fp,
                    "false_negatives": fn,
                    "true_negatives": matches - tp - fp - fn,
                    "precision": round(precision, 4),
                    "recall": round(tp / max(tp + fn, 1), 4),
                    "flagged": precision < 0.5,
                }
            )
        live.append({**live[-1], "period": "all", "week_start": None, "matches": 500})
    features = [
        {
            "feature": f,
            "psi": round(rng.random() * 0.4, 4),
            "status": rng.choice(["ok", "watch", "drift"]),
            "recent_null_share": 0.01,
            "reference_null_share": 0.02,
        }
        for f in FEATURE_NAMES
    ]
    changes = [
        {
            "when": iso(NOW - timedelta(days=3 * i)),
            "action": rng.choice(["promoted", "rolled_back", "candidate", "held"]),
            "model_name": "water-potability",
            "version": str(7 - i % 3),
            "previous_version": str(6 - i % 3),
            "family": "random_forest",
            "by": "pipeline",
            "reason": "live precision fell on lab samples " * 3,
            "in_progress": False,
            "evidence": {
                "held_out_precision": 0.71,
                "held_out_precision_interval": [0.62, 0.8],
                "probability_better": 0.96,
            },
            "alerts": [{"title": "Live precision fell below the floor", "raised_at": iso(NOW)}],
        }
        for i in range(30)
    ]
    days = 90
    trend_days = [(NOW - timedelta(days=days - 1 - k)).date() for k in range(days)]
    data: dict[str, Any] = {
        "generated_at": iso(NOW),
        "stale": False,
        "stale_since": None,
        "jobs": [
            {
                "job": j,
                "last_succeeded_at": iso(NOW),
                "last_failed_at": None,
                "failing": False,
                "failed_step": None,
                "error_class": None,
                "failures_in_a_row": 0,
                "quarantined_readings": 0,
            }
            for j in ("maintenance", "qc")
        ],
        "alerts": [
            {
                "event": "live_precision_flagged",
                "title": "Live precision fell below the floor",
                "severity": "ERROR",
                "model_version": "7",
                "detail": "live precision 50.0% on 40 lab matches, floor 60%",
                "raised_at": iso(NOW - hour),
            }
        ]
        * 3,
        "model": {
            "name": "water-potability",
            "version": "7",
            "family": "random_forest",
            "held_out_precision": 0.71,
            "held_out_precision_interval": [0.62, 0.8],
            "held_out_precision_reused_by_tests": True,
            "held_out_recall": 0.42,
            "threshold": 0.6,
            "training_rows": 3276,
            "confirmed_at": iso(NOW),
            "decision": "champion_kept",
        },
        "champion_fresh_precision": {
            "model_version": "7",
            "since": iso(NOW - timedelta(days=20)),
            "potable_calls": 40,
            "confirmed": 29,
            "precision": 0.725,
            "interval_95": [0.56, 0.85],
            "enough_evidence": True,
            "min_potable_calls": 20,
            "computed_at": iso(NOW),
        },
        "last_pipeline_run": {
            "status": "succeeded",
            "decision": "champion_kept",
            "started_at": iso(NOW - hour),
            "finished_at": iso(NOW),
            "champion_version": "7",
            "challenger_family": "hist_gradient_boosting",
            "challenger_precision": 0.65,
            "challenger_recall": 0.45,
            "recall_floor": 0.3,
        },
        "inferences": {
            "exact": True,
            "pending_hours": [],
            "last_24h": {
                "total": 288_000,
                "potable": 170_000,
                "potable_share": 0.59,
                "sensors": 200,
                "by_sensor": by_sensor,
                "by_model_version": [_count("model_version", "7", 288_000, 170_000)],
                "start": iso(NOW - 23 * hour),
            },
            "last_7d": {
                "total": 2_016_000,
                "potable": 1_190_000,
                "potable_share": 0.59,
                "sensors": 200,
                "by_sensor": by_sensor,
                "by_model_version": [_count("model_version", "7", 2_016_000, 1_190_000)],
                "start": iso(NOW - 167 * hour),
            },
            "hourly_24h": [
                {
                    "start": iso(NOW - (24 - k) * hour),
                    "end": iso(NOW - (23 - k) * hour),
                    "total": 12_000,
                    "potable": 7_000 + k,
                }
                for k in range(24)
            ],
            "daily_7d": [
                {
                    "start": iso(NOW - (7 - k) * 24 * hour),
                    "end": iso(NOW - (6 - k) * 24 * hour),
                    "total": 288_000,
                    "potable": 170_000,
                }
                for k in range(7)
            ],
        },
        "lab_samples": {
            "total": 5_000,
            "last_24h": 20,
            "last_7d": 140,
            "potable_share_7d": 0.6,
            "sensors_7d": 50,
            "last_received_at": iso(NOW),
        },
        "live_precision": live[-1],
        "quality_control": {
            "computed_at": iso(NOW),
            "champion_fresh_precision": None,
            "match_window_minutes": 30.0,
            "precision_floor": 0.6,
            "min_matches": 20,
            "lab_samples": 5_000,
            "matched_samples": 4_800,
            "flagged": True,
            "live": live,
            "drift": {
                "champion_version": "7",
                "window_start": iso(NOW - timedelta(days=7)),
                "window_end": iso(NOW),
                "reference_rows": 3276,
                "recent_rows": 2_016_000,
                "features": features,
                "drifting": [f["feature"] for f in features if f["status"] == "drift"],
                "watch": [f["feature"] for f in features if f["status"] == "watch"],
            },
        },
        "model_history": {"days": 90, "held": None, "changes": changes},
    }
    drift_days = [
        {
            "day": d.isoformat(),
            "computed_at": iso(datetime.combine(d, datetime.min.time(), UTC) + 3 * hour),
            "model_version": "7",
            "features": [
                {
                    "feature": f,
                    # stable but for Sulfate, drifting up over the last 30 days
                    "psi": (psi := round(_psi(f, k, rng), 4)),
                    "status": "ok" if psi < 0.1 else "watch" if psi < 0.25 else "drift",
                }
                for f in FEATURE_NAMES
            ],
        }
        for k, d in enumerate(trend_days)
    ]
    data["trends"] = {
        "days": days,
        "first_day": trend_days[0].isoformat(),
        "last_day": trend_days[-1].isoformat(),
        "precision_floor": 0.6,
        "traffic": [
            {
                "day": d.isoformat(),
                "total": (total := 288_000 + rng.randint(-9_000, 9_000)),
                "potable": (potable := 170_000 + rng.randint(-9_000, 9_000)),
                "potable_share": round(potable / total, 4),
                "hours_counted": 24 if d != trend_days[-1] else 14,
            }
            for d in trend_days
        ],
        "drift": drift_days,
        "drift_summary": drift_summary(drift_days),
        "live_precision": [
            {
                "model_version": r["model_version"],
                "period": r["period"],
                "week_start": r["week_start"],
                "matches": r["matches"],
                "potable_calls": r["true_positives"] + r["false_positives"],
                "confirmed": r["true_positives"],
                "precision": r["precision"],
                "interval_95": [
                    round(max(r["precision"] - 0.15, 0), 4),
                    round(min(r["precision"] + 0.12, 1), 4),
                ],
                "flagged": r["flagged"],
            }
            for r in live
            if r["period"] != "all"
        ],
        "model_changes": [
            {
                "when": c["when"],
                "action": c["action"],
                "version": c["version"],
                "previous_version": c["previous_version"],
            }
            for c in reversed(changes)
            if c["action"] in ("promoted", "rolled_back")
        ],
    }
    return data


def _load(module: str, path: str | None) -> Any:
    if path is None:
        return importlib.import_module(module)
    spec = importlib.util.spec_from_file_location("renderer_under_test", path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--module", default="functions.status_page")
    parser.add_argument("--module-path", default=None, help="a renderer's file, e.g. an old one")
    parser.add_argument("--without-trends", action="store_true", help="drop the trends' data")
    args = parser.parse_args()
    renderer = _load(args.module, args.module_path)
    data = realistic_data()
    if args.without_trends:
        data.pop("trends")
    started = time.perf_counter()
    page = renderer.render_html(data)  # the first render compiles the templates
    first_ms = (time.perf_counter() - started) * 1000
    for _ in range(args.warmup):
        renderer.render_html(data)
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        renderer.render_html(data)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(
        f"render_html ({args.module_path or args.module}): page {len(page) / 1024:.1f} KiB, "
        f"first {first_ms:.2f} ms, median {statistics.median(times):.2f} ms, "
        f"p90 {times[int(len(times) * 0.9)]:.2f} ms over {args.repeats}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
