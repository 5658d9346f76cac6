"""Soak: mixed traffic at a fixed rate for a long time, with a database restart and a model
server restart in the middle. Prints requests by status, lost rows (must be 0), resident
memory of every process at start and end, and latency percentiles before/after each fault.

    .venv/bin/python bench/soak_bench.py [--duration 600] [--rate 20] [--home DIR]

Everything runs on this machine, on loopback, in a stack of its own (a temporary home unless
``--home``): the embedded PostgreSQL, a small real model behind our model server, and the
three functions under functions-framework exactly as ``potability functions`` starts them.
Traffic is open-loop (requests are sent on schedule whether or not earlier ones answered,
so a stall shows up as latency and errors instead of silently lowering the rate): 50%
predict single readings, 15% predict batches of 20, 15% add_sample, 20% status (JSON).
At 1/3 of the run PostgreSQL is stopped in immediate mode and started 2 s later; at 2/3 the
model server is SIGKILLed and started again 2 s later.

The model server listens on a port of its own (not 8080, which every local stack's model
server prefers), serves model version ``soak-1``, and every predict answer is checked for
that version: an earlier version "restarted" it in no time with no failed request
because, while ours was down, another stack's model server had taken port 8080 and answered
in its place (``model_server.start_local`` now refuses that). The report says when the model
server stopped answering, when predict answered from the restarted one again, and how many
predict answers came from any other model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions_bench import READING  # bench/, beside this script: one reading for all benches
from process_tree import tree_rss  # bench/, beside this script

from potability import config, db
from potability.config import Settings
from potability.local import function_servers, services
from potability.local import stack as local_stack
from potability.serving import model_server

MIX = (("predict", 0.50), ("predict_batch", 0.15), ("add_sample", 0.15), ("status", 0.20))
BATCH = 20
MODEL_NAME = "soak-water-potability"
MODEL_VERSION = "soak-1"


@dataclass
class Outcome:
    kind: str
    key: str
    status: int
    sent: float
    latency: float
    model: str = ""
    """For predict: the version of the model that answered."""
    error: str = ""
    """For an answer that is not 2xx: its JSON ``field`` and ``error`` (what it blamed)."""


def train_small_model(path: Path) -> None:
    """Logistic regression with imputation and a tuned threshold, saved as an MLflow model."""
    import mlflow.sklearn
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import TunedThresholdClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from potability.features import FEATURE_NAMES, TARGET
    from potability.model import sklearn_save_kwargs
    from potability.seed import load_dataset
    from training.candidates import model_requirements

    frame = load_dataset()
    x, y = frame[list(FEATURE_NAMES)], frame[TARGET]
    model = TunedThresholdClassifierCV(
        make_pipeline(
            SimpleImputer(strategy="median"),
            StandardScaler(),
            LogisticRegression(class_weight="balanced"),
        ),
        scoring="balanced_accuracy",
        cv=3,
        random_state=0,
    ).fit(x, y)
    mlflow.sklearn.save_model(
        model,
        str(path),
        input_example=x.head(2).astype(float),
        pip_requirements=model_requirements(),  # as the train step: no inference subprocess
        **sklearn_save_kwargs(model),
    )


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> tuple[int, bytes]:
    """(status, body); status -1 when there was no answer at all."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={**({"Content-Type": "application/json"} if data else {}), **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return -1, b""


def served_by(raw: bytes) -> str:
    """The version of the model that answered a predict call ("" if not an answer); predict's
    own ``model_name`` is its setting, the version is the model server's."""
    try:
        answer = json.loads(raw)
        return str(answer["predictions"][0]["model_version"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def blamed(raw: bytes) -> str:
    """``field: error`` of a JSON error answer, or its first bytes if it is not one."""
    try:
        answer = json.loads(raw)
        return f"{answer.get('field', '-')}: {answer.get('error', '')}"[:120]
    except (ValueError, AttributeError):
        return raw[:80].decode(errors="replace")


def answers_health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def memory(home: Path) -> dict[str, int]:
    pids = {
        name: services.running_pid(home, name)
        for name in ("fn-predict", "fn-add-sample", "fn-status", model_server.SERVICE)
    }
    pids["postgresql"] = local_stack.postgres_pid(home)
    return {name: tree_rss(pid) for name, pid in pids.items()}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s (default 20)")
    parser.add_argument("--home", type=Path, default=None, help="stack home (default: temp)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="soak-"))
    try:
        run(home, args.duration, args.rate, random.Random(args.seed))
    finally:
        local_stack.down(home)
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


def run(home: Path, duration: float, rate: float, rng: random.Random) -> None:
    print(f"setting up a stack in {home} ...", flush=True)
    url = local_stack.start_database(home)
    local_stack.prepare_database(url)
    config.update_env(home, POTABILITY_ENV="local", POTABILITY_HOME=str(home), DATABASE_URL=url)
    model_dir = home / "model"
    train_small_model(model_dir)
    model_url = model_server.start_local(
        home, str(model_dir), MODEL_NAME, MODEL_VERSION, tracking_uri="", port=services.free_port()
    )
    env = function_servers.start(home)
    token = (home / function_servers.TOKEN_FILE).read_text().strip()
    auth = {"Authorization": f"Bearer {token}"}
    predict_url, samples_url, status_url = (
        env["PREDICT_URL"],
        env["ADD_SAMPLE_URL"],
        env["STATUS_URL"],
    )

    def send(kind: str, key: str) -> tuple[int, bytes]:
        if kind == "predict":
            return http(
                "POST",
                predict_url,
                {"sensor_id": "soak", "reading": READING},
                {"Idempotency-Key": key},
            )
        if kind == "predict_batch":
            return http(
                "POST",
                predict_url,
                {"sensor_id": "soak", "readings": [READING] * BATCH},
                {"Idempotency-Key": key},
            )
        if kind == "add_sample":
            return http(
                "POST",
                samples_url,
                {
                    **READING,
                    "potability": 1,
                    "sample_id": key,
                    "sampled_at": "2024-05-01T09:30:00Z",
                    "sensor_id": "soak",
                },
                auth,
            )
        return http("GET", f"{status_url}?format=json")

    memory_start = memory(home)
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    faults: dict[str, tuple[float, float]] = {}
    model_down: dict[str, float] = {}

    def one(kind: str, key: str, due: float) -> None:
        started = time.monotonic()
        status, raw = send(kind, key)
        model = served_by(raw) if kind.startswith("predict") and status == 200 else ""
        error = "" if 200 <= status < 300 else blamed(raw)
        with lock:
            outcomes.append(
                Outcome(kind, key, status, due, time.monotonic() - started, model, error)
            )

    def inject() -> None:
        try:
            inject_faults()
        except Exception as exc:  # noqa: BLE001 - reported, and the run says so
            print(f"fault injection failed: {exc!r}", flush=True)

    def inject_faults() -> None:
        t0 = start
        time.sleep(max(0.0, t0 + duration / 3 - time.monotonic()))
        began = time.monotonic()
        pid = local_stack.postgres_pid(home)
        if pid:
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown
            while services.is_alive(pid):
                time.sleep(0.05)
        time.sleep(2.0)
        local_stack.start_database(home)
        faults["database restart"] = (began, time.monotonic())
        time.sleep(max(0.0, t0 + 2 * duration / 3 - time.monotonic()))
        began = time.monotonic()
        ms_pid = services.running_pid(home, model_server.SERVICE)
        if not ms_pid:
            raise RuntimeError("no model server to kill")
        os.killpg(ms_pid, signal.SIGKILL)
        while services.is_alive(ms_pid):
            time.sleep(0.05)
        if answers_health(model_url):
            raise RuntimeError(f"{model_url} still answers after the kill: not our server")
        model_down["killed"] = time.monotonic()
        time.sleep(2.0)
        model_server.start_local(
            home, str(model_dir), MODEL_NAME, MODEL_VERSION, tracking_uri=""
        )  # same port: the functions keep its URL
        faults["model server restart"] = (began, time.monotonic())

    kinds, weights = zip(*MIX, strict=False)
    print(f"soaking: {duration:.0f} s at {rate:g} requests/s ...", flush=True)
    start = time.monotonic()
    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    counter = Counter()
    with ThreadPoolExecutor(max_workers=64) as pool:
        i = 0
        while True:
            due = start + i / rate
            if due - start >= duration:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            kind = rng.choices(kinds, weights)[0]
            counter[kind] += 1
            pool.submit(one, kind, f"soak-{kind}-{i}", due)
            i += 1
    injector.join(timeout=120)
    elapsed = time.monotonic() - start
    memory_end = memory(home)

    # --- lost rows: every success must be stored, exactly -------------------------------
    conn = db.connect(Settings(database_url=url))
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT request_id, count(*) FROM water.water_inferences "
            "WHERE sensor_id = 'soak' GROUP BY request_id"
        )
        logged = dict(cur.fetchall())
        cur.execute("SELECT sample_id FROM water.water_potability WHERE sensor_id = 'soak'")
        stored = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    expected = {"predict": 1, "predict_batch": BATCH}
    lost = extra = 0
    for o in outcomes:
        if o.kind in expected and o.status == 200:
            lost += max(0, expected[o.kind] - logged.get(o.key, 0))
            extra += max(0, logged.get(o.key, 0) - expected[o.kind])
        elif o.kind == "add_sample" and o.status in (200, 201) and o.key not in stored:
            lost += 1

    # --- report --------------------------------------------------------------------------
    print(f"\n{len(outcomes)} requests in {elapsed:.0f} s ({len(outcomes) / elapsed:.1f}/s)")
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for o in outcomes:
        by_kind[o.kind][o.status] += 1
    for kind in kinds:
        statuses = ", ".join(f"{s} x {n}" for s, n in sorted(by_kind[kind].items()))
        print(f"  {kind:<14} {statuses}")
    totals = Counter(o.status for o in outcomes)
    print("  all            " + ", ".join(f"{s} x {n}" for s, n in sorted(totals.items())))
    print(f"lost rows: {lost} (extra rows: {extra})")
    print("resident memory (process and children), start -> end:")
    for name in memory_start:
        print(
            f"  {name:<14} {memory_start[name] / 2**20:7.1f} MiB -> "
            f"{memory_end[name] / 2**20:7.1f} MiB"
        )
    edges = [start]
    names = []
    for name, (began, _ended) in sorted(faults.items(), key=lambda kv: kv[1][0]):
        names.append(name)
        edges.append(began)
    edges.append(start + duration + 60)
    print("latency of successful requests (ms), by phase:")
    labels = ["before " + names[0]] if names else ["whole run"]
    labels += [f"after {name}" for name in names]
    for label, lo, hi in zip(labels, edges, edges[1:], strict=False):
        ok = [o.latency * 1000 for o in outcomes if lo <= o.sent < hi and 200 <= o.status < 300]
        failed = sum(1 for o in outcomes if lo <= o.sent < hi and not 200 <= o.status < 300)
        print(
            f"  {label:<28} n={len(ok):5d}  p50={percentile(ok, 50):7.1f}  "
            f"p99={percentile(ok, 99):7.1f}  non-2xx={failed}"
        )
    for name, (began, ended) in faults.items():
        window = [o for o in outcomes if began <= o.sent <= ended]
        failed = Counter(o.status for o in window if not 200 <= o.status < 300)
        print(
            f"fault '{name}': {ended - began:.1f} s from injection to restarted; "
            f"{len(window)} requests sent meanwhile, not 2xx: {dict(failed) or 0}"
        )
    outside = [
        o
        for o in outcomes
        if not 200 <= o.status < 300
        and not any(began <= o.sent <= ended for began, ended in faults.values())
    ]
    print(f"non-2xx outside the fault windows: {len(outside)}")
    for o in outside[:10]:
        after = [began for began, _ in faults.values() if began >= o.sent]
        when = f"{min(after) - o.sent:.2f} s before the next fault" if after else "after the faults"
        print(
            f"  {o.kind} {o.status} sent {o.sent - start:.1f} s in ({when}), "
            f"answered after {o.latency:.2f} s: {o.error}"
        )
    ours = MODEL_VERSION
    foreign = Counter(o.model for o in outcomes if o.model and o.model != ours)
    print(
        f"predict answers from another model version than {ours}: {sum(foreign.values())}"
        + (f" {dict(foreign)}" if foreign else "")
    )
    if "model server restart" in faults:
        began, ended = faults["model server restart"]
        failed_predicts = [
            o
            for o in outcomes
            if o.kind.startswith("predict") and o.sent >= began and o.status != 200
        ]
        back = [
            o.sent + o.latency
            for o in outcomes
            if o.kind.startswith("predict")
            and o.sent >= ended
            and o.status == 200
            and o.model == ours
        ]
        print(
            f"model server: killed {model_down.get('killed', began) - began:.1f} s after "
            f"injection (health silent), restarted (health answers {ours}) after "
            f"{ended - began:.1f} s; predict non-200 from the kill on: {len(failed_predicts)}; "
            f"first predict 200 from the restarted server {min(back) - began:.1f} s after the "
            "kill"
            if back
            else "no predict 200 after the restart"
        )
    missing = {"database restart", "model server restart"} - set(faults)
    if missing:
        print(f"WARNING: faults not injected: {sorted(missing)}")
    if totals.get(500) or totals.get(-1) or lost or foreign or missing:
        print(
            "FAILED: 500s, unanswered requests, lost rows, answers from another model or "
            "faults not injected"
        )


if __name__ == "__main__":
    main()
