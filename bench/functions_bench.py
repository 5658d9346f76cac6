"""Load benchmark of the predict function, end to end on loopback.

    python bench/functions_bench.py                     # own throw-away stack, logistic model
    python bench/functions_bench.py --model forest      # ... a 200-tree random forest instead
    python bench/functions_bench.py --model calibrated-vote  # ... the trainer's served shape
    python bench/functions_bench.py --stack .potability # the running local stack (make run)

Path measured: client -> functions-framework (predict) -> model server -> PostgreSQL commit ->
answer. The load comes from a *second process* (this file with ``client``): ``--concurrency``
threads, each with its own keep-alive connection, sending for ``--seconds`` per scenario - single
readings, then batches of 100. Every request carries a unique ``Idempotency-Key``; afterwards
the database must hold exactly one row per reading of every 200 answer and none for anything
else ("lost" and "extra" rows are reported). Prints requests/s, inferences/s and p50/p95/p99.

Before that it loads the model alone - our model server (the Vertex container's module, scoring
with the compiled ONNX form when the model has one) and ``mlflow models serve`` on the same
model directory, both on loopback, same clients, one reading per request - and prints the ratio.

Without ``--stack`` it builds its own stack in a temporary folder (embedded PostgreSQL, a model
fitted on the data set and served by our model server, the functions started as ``potability
functions`` does) and removes it afterwards.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from process_tree import tree_pids  # noqa: E402 - bench/, beside this script

READING = {
    "ph": 7.08,
    "Hardness": 196.4,
    "Solids": 21000.0,
    "Chloramines": 7.1,
    "Sulfate": 333.0,
    "Conductivity": 421.0,
    "Organic_carbon": 14.2,
    "Trihalomethanes": 66.4,
    "Turbidity": 3.9,
}


# --- the client process -------------------------------------------------------------------


def _body(kind: str, batch: int) -> bytes:
    """The request body: predict's, our model server's (Vertex) or MLflow's scoring server's."""
    readings = [dict(READING, ph=round(3 + (i % 80) / 10, 2)) for i in range(batch)]
    if kind == "model":
        return json.dumps({"instances": readings}).encode()
    if kind == "mlflow":
        return json.dumps({"dataframe_records": readings}).encode()
    return json.dumps({"sensor_id": "bench", "readings": readings}).encode()


def _client(
    url: str,
    batch: int,
    seconds: float,
    concurrency: int,
    prefix: str,
    out: Path,
    kind: str = "predict",
) -> None:
    """Send requests until the deadline; write every (request id, status, latency) to ``out``."""
    target = urlparse(url)
    body_tail = _body(kind, batch)
    results: list[list[tuple[str, int, float]]] = [[] for _ in range(concurrency)]
    start_gate = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        mine = results[k]
        start_gate.wait()
        n = 0
        while time.perf_counter() < deadline[0]:
            request_id = f"{prefix}-{k}-{n}"
            n += 1
            t0 = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    target.path or "/",
                    body=body_tail,
                    headers={"Content-Type": "application/json", "Idempotency-Key": request_id},
                )
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                status = 0
            mine.append((request_id, status, time.perf_counter() - t0))
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    start_gate.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    out.write_text(json.dumps({"elapsed": elapsed, "results": [r for rs in results for r in rs]}))


# --- orchestration ------------------------------------------------------------------------


def _cpu_seconds(pids: list[int]) -> float:
    import os

    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _processes(home: Path) -> dict[str, list[int]]:
    """The stack's processes whose CPU time the benchmark accounts per request."""
    from potability.local import function_servers as local
    from potability.local import services
    from potability.local import stack as local_stack

    roots = {
        "function": services.running_pid(home, local.FUNCTIONS[0].service),
        "model server": services.running_pid(home, "model-server"),
        "postgresql": local_stack.postgres_pid(home),
    }
    return {name: tree_pids(pid) for name, pid in roots.items() if pid}


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


MODELS = {
    "logistic": "TunedThreshold(imputer+scaler+LogisticRegression)",
    "forest": "TunedThreshold(imputer+scaler+RandomForest 200 trees)",
    "calibrated-forest": "the trainer's shape: FixedThreshold(OOFCalibratedClassifier(isotonic, "
    "random_forest pipeline, 200 trees))",
    "calibrated-vote": "the trainer's shape: FixedThreshold(OOFCalibratedClassifier(isotonic, "
    "soft vote of random_forest 200 + extra_trees 300 + "
    "hist_gradient_boosting))",
}
"""``--model`` choices: two plain pipelines, and the shapes ``training.modeling`` serves
(families at their default sizes, built by its own ``make_pipeline``/``soft_vote``/
``served_model``)."""


def _estimator(kind: str) -> Any:
    """The unfitted model ``--model`` names."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import TunedThresholdClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from potability.model import served_model
    from training import modeling

    folds = modeling.TrainingConfig(cv_folds=3, seed=0).folds()
    if kind == "calibrated-forest":
        return served_model(modeling.make_pipeline("random_forest", 0), "isotonic", folds, 0.5)
    if kind == "calibrated-vote":
        vote = modeling.soft_vote(
            [
                (f, modeling.make_pipeline(f, 0))
                for f in ("random_forest", "extra_trees", "hist_gradient_boosting")
            ]
        )
        return served_model(vote, "isotonic", folds, 0.5)
    clf = (
        RandomForestClassifier(
            n_estimators=200, class_weight="balanced_subsample", random_state=0, n_jobs=1
        )
        if kind == "forest"
        else LogisticRegression(class_weight="balanced")
    )
    return TunedThresholdClassifierCV(
        make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), clf),
        scoring="balanced_accuracy",
        cv=3,
        random_state=0,
    )


def _fit_model(kind: str, folder: Path) -> Path:
    import mlflow.sklearn

    from potability.features import FEATURE_NAMES, TARGET
    from potability.model import sklearn_save_kwargs
    from potability.seed import load_dataset
    from potability.serving import compiled_model

    frame = load_dataset()
    x, y = frame[list(FEATURE_NAMES)], frame[TARGET]
    started = time.perf_counter()
    model = _estimator(kind).fit(x, y)
    fitted = time.perf_counter()
    path = folder / f"model-{kind}"
    mlflow.sklearn.save_model(
        model, str(path), input_example=x.head(2).astype(float), **sklearn_save_kwargs(model)
    )
    # as promote does for a registered champion (a shape it cannot compile is served by
    # scikit-learn, and the model server says so in /health)
    try:
        compiled = compiled_model.compile_estimator(model, x)
    except compiled_model.NotConvertible as exc:
        print(f"not compiled ({exc}): scikit-learn will serve it", flush=True)
        return path
    compiled_model.write(compiled, path / compiled_model.FOLDER)
    print(
        f"fitted in {fitted - started:.1f} s; compiled to ONNX in "
        f"{time.perf_counter() - fitted:.1f} s ({len(compiled.onnx) / 1e6:.1f} MB), "
        f"max |difference| {compiled.report['max_abs_difference']:.2g} "
        f"on {compiled.report['rows_checked']} rows",
        flush=True,
    )
    return path


def _own_stack(home: Path, kind: str, threads: int, workers: int) -> dict[str, str]:
    from potability import config
    from potability.local import function_servers as local
    from potability.local import stack as local_stack
    from potability.serving import model_server

    print(f"building a throw-away stack in {home} (model: {kind}) ...", flush=True)
    url = local_stack.start_database(home)
    local_stack.prepare_database(url)
    config.update_env(home, POTABILITY_ENV="local", DATABASE_URL=url)
    model_path = _fit_model(kind, home)
    model_server.start_local(
        home, str(model_path), "water-potability", f"bench-{kind}", tracking_uri=""
    )
    return dict(
        local.start(home, threads=threads, workers=workers), BENCH_MODEL_DIR=str(model_path)
    )


def _verify(
    database_url: str, prefix: str, results: list[list[Any]], batch: int
) -> tuple[int, int]:
    """(lost rows, extra rows): 200 answers must have ``batch`` rows each, others none."""
    from potability import db
    from potability.config import Settings

    expected = {rid: (batch if status == 200 else 0) for rid, status, _ in results}
    conn = db.connect(Settings(database_url=database_url))
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT request_id, count(*) FROM water.water_inferences "
            "WHERE request_id LIKE %s GROUP BY request_id",
            (prefix + "-%",),
        )
        stored = dict(cur.fetchall())
    finally:
        conn.close()
    lost = sum(max(0, n - stored.get(rid, 0)) for rid, n in expected.items())
    extra = sum(max(0, n - expected.get(rid, 0)) for rid, n in stored.items())
    return lost, extra


def load_server(
    url: str, kind: str, seconds: float, concurrency: int, pid: int | None = None
) -> dict[str, Any]:
    """Single readings against a model server alone: req/s, latency and CPU ms per request.

    The clients run on the same cores, so their CPU per request is measured too: server +
    client CPU per request against the 2,000 CPU-ms per second two cores have is the ceiling
    this machine can show, whatever the server does.
    """
    import resource

    before = _cpu_seconds(tree_pids(pid)) if pid else 0.0
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "client",
                url,
                "1",
                str(seconds),
                str(concurrency),
                kind,
                str(out),
                kind,
            ],
            check=True,
        )
        data = json.loads(out.read_text())
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (
        client_after.ru_utime
        + client_after.ru_stime
        - client_before.ru_utime
        - client_before.ru_stime
    )
    results = data["results"]
    ok = sorted(lat for _, status, lat in results if status == 200)
    cpu = (_cpu_seconds(tree_pids(pid)) - before) if pid else float("nan")
    server_ms = cpu / max(1, len(results)) * 1000
    client_ms = client / max(1, len(results)) * 1000
    return {
        "server": kind,
        "requests": len(results),
        "errors": len(results) - len(ok),
        "requests_per_s": round(len(ok) / data["elapsed"], 1),
        "p50_ms": round(_percentile(ok, 50) * 1000, 2),
        "p99_ms": round(_percentile(ok, 99) * 1000, 2),
        "cpu_ms_per_request": round(server_ms, 2),
        "client_cpu_ms_per_request": round(client_ms, 2),
        "idle_2core_ceiling_req_per_s": (
            round(2000 / (server_ms + client_ms), 1) if server_ms + client_ms > 0 else None
        ),
    }


def _start_mlflow_serve(model_dir: str, tracking_uri: str) -> tuple[subprocess.Popen, str]:
    """``mlflow models serve`` on the same model (local env: no per-model virtualenv)."""
    import urllib.request

    from potability.local import services

    port = services.free_port(5300)
    # mlflow runs ``uvicorn`` by name: our venv's bin must be on PATH
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            model_dir,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    print(f"started mlflow models serve on {model_dir} (port {port})", flush=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/ping", timeout=2).read()
            return proc, f"{url}/invocations"
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("mlflow models serve exited") from None
            time.sleep(1)
    proc.kill()
    raise RuntimeError("mlflow models serve did not answer /ping within 180 s")


def compare_model_servers(
    home: Path, env: dict[str, str], seconds: float, concurrency: int
) -> list[dict[str, Any]]:
    """Our model server vs ``mlflow models serve`` on the same model, same load, one run."""
    import signal

    from potability.local import services

    # our own stack's model directory, or the running stack's champion (the served version)
    model_uri = env.get("BENCH_MODEL_DIR") or (
        "models:/water-potability@champion" if env.get("MLFLOW_TRACKING_URI") else ""
    )
    if not model_uri:
        print("model servers: no model directory known; skipped", flush=True)
        return []
    ours = load_server(
        f"{env['MODEL_SERVER_URL']}/predict",
        "model",
        seconds,
        concurrency,
        services.running_pid(home, "model-server"),
    )
    proc, mlflow_url = _start_mlflow_serve(model_uri, env.get("MLFLOW_TRACKING_URI", ""))
    try:
        theirs = load_server(mlflow_url, "mlflow", seconds, concurrency, proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    ratio = ours["requests_per_s"] / theirs["requests_per_s"] if theirs["requests_per_s"] else None
    for row in (ours, theirs):
        print(
            f"model server alone [{row['server']:>6}] x{concurrency}: "
            f"{row['requests_per_s']:8.1f} req/s  p50 {row['p50_ms']:6.2f} ms  "
            f"p99 {row['p99_ms']:6.2f} ms  errors {row['errors']}  "
            f"CPU ms/request: server {row['cpu_ms_per_request']} + client "
            f"{row['client_cpu_ms_per_request']} -> idle 2-core ceiling "
            f"~{row['idle_2core_ceiling_req_per_s']} req/s",
            flush=True,
        )
    print(
        f"our model server / mlflow models serve: {ratio and round(ratio, 1)}x "
        "(target >= 10x, >= 1,000 req/s)",
        flush=True,
    )
    return [ours, theirs]


def run_scenario(
    url: str,
    database_url: str,
    batch: int,
    seconds: float,
    concurrency: int,
    home: Path | None = None,
) -> dict[str, Any]:
    import resource

    prefix = f"bench{batch}-{int(time.time() * 1000)}"
    processes = _processes(home) if home else {}
    cpu_before = {name: _cpu_seconds(pids) for name, pids in processes.items()}
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "client",
                url,
                str(batch),
                str(seconds),
                str(concurrency),
                prefix,
                str(out),
            ],
            check=True,
        )
        data = json.loads(out.read_text())
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {
        name: _cpu_seconds(tree_pids(pids[0])) - cpu_before[name]
        for name, pids in processes.items()
    }
    cpu["client"] = (
        client_after.ru_utime
        + client_after.ru_stime
        - client_before.ru_utime
        - client_before.ru_stime
    )
    results = data["results"]
    ok = sorted(lat for _, status, lat in results if status == 200)
    errors = len(results) - len(ok)
    lost, extra = _verify(database_url, prefix, results, batch)
    elapsed = data["elapsed"]
    per_request = {
        name: round(seconds_used / max(1, len(results)) * 1000, 2)
        for name, seconds_used in cpu.items()
    }
    total_ms = sum(per_request.values())
    return {
        "batch": batch,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "requests": len(results),
        "ok": len(ok),
        "errors": errors,
        "statuses": sorted({status for _, status, _ in results}),
        "requests_per_s": round(len(ok) / elapsed, 1),
        "inferences_per_s": round(len(ok) * batch / elapsed, 1),
        "p50_ms": round(_percentile(ok, 50) * 1000, 2),
        "p95_ms": round(_percentile(ok, 95) * 1000, 2),
        "p99_ms": round(_percentile(ok, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(ok) * 1000, 2) if ok else None,
        "lost_rows": lost,
        "extra_rows": extra,
        "cpu_ms_per_request": per_request,
        # What 2 otherwise idle cores could sustain at this CPU cost per request.
        "idle_2core_ceiling_req_per_s": round(2000 / total_ms, 1) if total_ms else None,
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        url, batch, seconds, concurrency, prefix, out = sys.argv[2:8]
        kind = sys.argv[8] if len(sys.argv) > 8 else "predict"
        _client(url, int(batch), float(seconds), int(concurrency), prefix, Path(out), kind)
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stack", type=Path, help="use this running stack home (make run)")
    parser.add_argument("--model", choices=sorted(MODELS), default="logistic")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-concurrency", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8, help="function serving threads")
    parser.add_argument("--workers", type=int, default=1, help="function processes")
    parser.add_argument("--model-server-concurrency", type=int, default=4)
    parser.add_argument(
        "--skip-model-servers",
        action="store_true",
        help="skip the model-server-alone comparison with mlflow models serve",
    )
    args = parser.parse_args()

    from potability import config
    from potability.local import stack as local_stack

    temp: tempfile.TemporaryDirectory[str] | None = None
    if args.stack:
        home = args.stack.absolute()
        env = config.read_env(home)
        model = f"the stack's served model ({env.get('MODEL_SERVER_URL')})"
    else:
        temp = tempfile.TemporaryDirectory(prefix="fnbench-")
        home = Path(temp.name)
        env = _own_stack(home, args.model, args.threads, args.workers)
        model = f"{args.model} ({MODELS[args.model]})"
    try:
        import urllib.request

        for _ in range(50):  # warm up: connections, first-request imports, prepared statements
            req = urllib.request.Request(
                env["PREDICT_URL"],
                data=json.dumps({"sensor_id": "warm", "reading": READING}).encode(),
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(req, timeout=30).read()
        health = json.loads(
            urllib.request.urlopen(f"{env['MODEL_SERVER_URL']}/health", timeout=10).read()
        )
        print(
            f"predict at {env['PREDICT_URL']}, model: {model}, served by the model server "
            f"with runtime={health.get('runtime')}; {args.seconds:g}s per scenario, "
            "loopback, client in a separate process",
            flush=True,
        )
        report = []
        if not args.skip_model_servers:
            report.extend(
                compare_model_servers(home, env, args.seconds, args.model_server_concurrency)
            )
        for batch, concurrency in ((1, args.concurrency), (100, args.batch_concurrency)):
            result = run_scenario(
                env["PREDICT_URL"], env["DATABASE_URL"], batch, args.seconds, concurrency, home
            )
            report.append(result)
            print(
                f"batch {batch:>3} x{concurrency}: {result['requests_per_s']:8.1f} req/s "
                f"{result['inferences_per_s']:9.1f} inferences/s  p50 {result['p50_ms']:6.2f} ms "
                f"p95 {result['p95_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                f"errors {result['errors']}  lost rows {result['lost_rows']}  "
                f"extra rows {result['extra_rows']}",
                flush=True,
            )
            print(
                f"          CPU ms per request: {result['cpu_ms_per_request']} -> idle 2-core "
                f"ceiling ~{result['idle_2core_ceiling_req_per_s']} req/s",
                flush=True,
            )
        print(json.dumps(report))
        scenarios = [r for r in report if "batch" in r]
        single = scenarios[0]
        target = (
            single["inferences_per_s"] >= 300
            and single["p99_ms"] <= 50
            and all(
                r["errors"] == 0 and r["lost_rows"] == 0 and r["extra_rows"] == 0 for r in scenarios
            )
        )
        print(
            f"load average during the run: {os.getloadavg()} (other work on the machine "
            "inflates latency; the CPU-per-request figures are less sensitive to it)"
        )
        print(
            "target (>= 300 single inferences/s, p99 <= 50 ms, no errors, no lost rows): "
            + ("MET" if target else "NOT MET")
        )
        return 0
    finally:
        if temp is not None:
            local_stack.down(Path(temp.name))
            temp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
