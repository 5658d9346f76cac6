"""The guard against slowdowns: predict against the model server behind it, in one run.

    make bench                                          # = the line below, defaults
    python bench/functions_bench.py                     # own throw-away stack, extra trees
    python bench/functions_bench.py --grid unbounded    # ... from the grid before issue 34
    python bench/functions_bench.py --model logistic    # ... a logistic regression instead
    python bench/functions_bench.py --variants hardened:8:1 gthread:8:1 hardened:16:1
    python bench/functions_bench.py --stack .potability # the running local stack (make run)
    python bench/functions_bench.py --mlflow            # also `mlflow models serve`, same model

One run measures, back to back on the same machine and the same model:

1. the **model server alone** (our Vertex container's module), ``--concurrency`` clients, one
   reading per request: req/s, p50/p99 - the reference;
2. **predict** end to end (client -> functions-framework -> model server -> PostgreSQL commit
   -> answer), single readings with ``--concurrency`` clients, then batches of 100 with
   ``--batch-concurrency`` clients: req/s, inferences/s, p50/p95/p99, CPU ms per request of
   every process tree, the keep-alive connections predict held to the model server (sampled:
   at most one per serving thread means connections are reused, not opened per request);
3. the **ratios** predict / model server (req/s, and p99 over p99) and the resident memory of
   the function and the model server. The machine is shared and changes, the ratios much less:
   the last line is a row for ``bench/README.md`` (date, commit, load average, ratios).

The load comes from a *second process* (this file with ``client``): threads, each with its own
keep-alive connection, sending for ``--seconds`` per scenario. Every request carries a unique
``Idempotency-Key``; afterwards the database must hold exactly one row per reading of every 200
answer and none for anything else ("lost" and "extra" rows are reported).

``--variants`` serves predict in other ways in the same run, each a functions-framework process
of its own on the same stack, as ``WORKER:THREADS:PROCESSES``: ``hardened`` is our
:mod:`functions.gunicorn_worker` (what ships), ``gthread`` the framework's stock gunicorn
worker (what it runs without ours: no slow-client protection, measured for docs/serving.md).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from process_tree import tree_pids, tree_rss  # noqa: E402 - bench/, beside this script

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


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


MODELS = {
    "logistic": "TunedThreshold(imputer+scaler+LogisticRegression)",
    "forest": "TunedThreshold(imputer+scaler+RandomForest 200 trees)",
    "extra-trees": "the trainer's shape: FixedThreshold(OOFCalibratedClassifier(isotonic, "
    "extra_trees pipeline at the default grid's first point - its largest trees))",
    "calibrated-forest": "the trainer's shape: FixedThreshold(OOFCalibratedClassifier(isotonic, "
    "random_forest pipeline at the default grid's first point))",
    "calibrated-vote": "the trainer's shape: FixedThreshold(OOFCalibratedClassifier(isotonic, "
    "soft vote of random_forest + extra_trees + hist_gradient_boosting, each at the default "
    "grid's first point))",
}
"""``--model`` choices: two plain pipelines, and the shapes ``training.modeling`` serves
(built by its own ``make_pipeline``/``soft_vote``/``served_model``, with the first value of
each of the default grid's parameters: the grid lists the largest trees first, so these are
the heaviest models a daily run can serve of that family)."""


GRID = ["default"]
"""The named grid the trainer's shapes take their first point from (``--grid``)."""


def _trainer_pipeline(family: str) -> Any:
    """``family``'s pipeline at the first point of the grid ``--grid`` names."""
    from training import modeling

    pipeline = modeling.make_pipeline(family, 0)
    point = {key: values[0] for key, values in modeling.grid(GRID[0])[family].items()}
    return pipeline.set_params(**point)


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
    if kind == "extra-trees":
        return served_model(_trainer_pipeline("extra_trees"), "isotonic", folds, 0.5)
    if kind == "calibrated-forest":
        return served_model(_trainer_pipeline("random_forest"), "isotonic", folds, 0.5)
    if kind == "calibrated-vote":
        vote = modeling.soft_vote(
            [
                (f, _trainer_pipeline(f))
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
    from training.candidates import model_requirements

    frame = load_dataset()
    x, y = frame[list(FEATURE_NAMES)], frame[TARGET]
    started = time.perf_counter()
    model = _estimator(kind).fit(x, y)
    fitted = time.perf_counter()
    path = folder / f"model-{kind}"
    mlflow.sklearn.save_model(
        model,
        str(path),
        input_example=x.head(2).astype(float),
        pip_requirements=model_requirements(),  # as the train step: no inference subprocess
        **sklearn_save_kwargs(model),
    )
    # as promote does for a registered champion (a shape it cannot compile is served by
    # scikit-learn, and the model server says so in /health)
    try:
        compiled = compiled_model.compile_estimator(model, x)
    except compiled_model.NotConvertible as exc:
        print(f"not compiled ({exc}): scikit-learn will serve it", flush=True)
        return path
    compiled_model.write(compiled, path / compiled_model.FOLDER)
    skops_bytes = sum(f.stat().st_size for f in path.glob("*.skops"))
    print(f"model: {skops_bytes / 1e6:.1f} MB as skops", flush=True)
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


def _connections_to(pids: list[int], port: int) -> set[int]:
    """Local ports of the established TCP connections ``pids`` hold to ``port`` (loopback)."""
    import psutil

    found: set[int] = set()
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        found.update(
            c.laddr.port
            for c in conns
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
        )
    return found


def run_scenario(
    url: str,
    database_url: str,
    batch: int,
    seconds: float,
    concurrency: int,
    processes: dict[str, int],
    model_server_port: int | None = None,
) -> dict[str, Any]:
    """Load predict at ``url`` with ``concurrency`` clients sending ``batch`` readings each.

    ``processes``: name -> root pid of the process trees whose CPU time is accounted per
    request (the function, the model server, PostgreSQL). While the load runs, the function's
    connections to the model server are sampled every 0.2 s: the most at once and how many
    distinct ones were seen (both at most the serving threads when keep-alive works)."""
    import resource

    prefix = f"bench{batch}-{int(time.time() * 1000)}"
    trees = {name: tree_pids(pid) for name, pid in processes.items()}
    cpu_before = {name: _cpu_seconds(pids) for name, pids in trees.items()}
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seen: set[int] = set()
    most = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal most
        function = tree_pids(processes.get("function"))
        while not stop.wait(0.2):
            now = _connections_to(function, model_server_port or 0)
            seen.update(now)
            most = max(most, len(now))

    sampler = threading.Thread(target=sample, daemon=True)
    if model_server_port and "function" in processes:
        sampler.start()
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
    stop.set()
    if sampler.is_alive():
        sampler.join()
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {name: _cpu_seconds(tree_pids(processes[name])) - cpu_before[name] for name in trees}
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
        "model_server_connections": {"most_at_once": most, "distinct_seen": len(seen)},
    }


STOCK_SOURCE = """# functions-framework's own gunicorn worker (gthread), for the benchmark only: the
# class is marked as already hardened, so functions.gunicorn_worker.install() leaves it be.
from functions_framework._http import gunicorn as _framework

_framework.GunicornApplication.potability_hardened = True

from functions.main import predict  # noqa: E402,F401 - the target
"""


ASGI_SOURCE = """# A measurement only (docs/serving.md): predict in functions-framework's ASGI mode
# (--asgi: Starlette on uvicorn's httptools parser, in gunicorn's UvicornWorker), the same
# handler behind an adapter: the body read by the event loop, the Flask request rebuilt from
# the ASGI scope, the handler run in a thread (it blocks on the model server and PostgreSQL).
import io

import anyio.to_thread
import flask
from starlette.responses import Response

from functions import predict as _predict
from functions.context import serve
from functions.main import context


def _environ(scope, body):
    environ = {
        "REQUEST_METHOD": scope["method"], "SCRIPT_NAME": "", "PATH_INFO": scope["path"],
        "QUERY_STRING": scope["query_string"].decode("latin-1"), "SERVER_NAME": "localhost",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body), "wsgi.errors": None, "REMOTE_ADDR": scope["client"][0],
    }
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        value = value.decode("latin-1")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        environ[key] = environ[key] + "," + value if key in environ else value
    return environ


async def predict(request):
    body = await request.body()
    flask_request = flask.Request(_environ(request.scope, body))
    answer = await anyio.to_thread.run_sync(
        serve, _predict.FUNCTION, _predict.handle, flask_request, context()
    )
    return Response(answer.get_data(), answer.status_code, headers=dict(answer.headers))
"""


@dataclass(frozen=True)
class Variant:
    """One way of serving predict: our worker or the framework's, threads, processes."""

    worker: str
    threads: int
    workers: int

    @property
    def label(self) -> str:
        return f"{self.worker}:{self.threads}:{self.workers}"

    @classmethod
    def parse(cls, text: str) -> Variant:
        worker, threads, workers = (text.split(":") + ["8", "1"])[:3]
        if worker not in ("hardened", "gthread", "asgi"):
            raise argparse.ArgumentTypeError(
                f"worker must be hardened, gthread or asgi, not {worker!r}"
            )
        return cls(worker, int(threads), int(workers))


def start_variant(home: Path, variant: Variant) -> tuple[str, int]:
    """A predict process of its own on the stack, served as ``variant`` says: (URL, pid)."""
    from potability import config
    from potability.local import function_servers as local
    from potability.local import services

    source = local.SOURCE
    if variant.worker == "gthread":
        source = home / "bench_stock_main.py"
        source.write_text(STOCK_SOURCE)
    if variant.worker == "asgi":
        source = home / "bench_asgi_main.py"
        source.write_text(ASGI_SOURCE)
    env = config.read_env(home)
    port = services.free_port(8091)
    predict = local.FUNCTIONS[0]
    name = f"bench-predict-{variant.worker}-{variant.threads}-{variant.workers}"
    argv = [sys.executable, "-m", "functions_framework", "--source", str(source)]
    argv += ["--target", predict.target, "--host", "127.0.0.1", "--port", str(port)]
    if variant.worker == "asgi":
        argv.append("--asgi")
    pid = services.start(
        home,
        name,
        argv,
        env={
            **env,
            "POTABILITY_HOME": str(home),
            "THREADS": str(variant.threads),
            "WORKERS": str(variant.workers),
            "DATABASE_URL": local.function_database_url(env, predict),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        },
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    services.wait_http(url, timeout=60, pid=pid, any_answer=True)
    return url, pid


def stop_variant(home: Path, variant: Variant) -> None:
    from potability.local import services

    services.stop(home, f"bench-predict-{variant.worker}-{variant.threads}-{variant.workers}")


def _warm(url: str, requests: int = 50) -> None:
    """Connections, first-request imports, prepared statements."""
    import urllib.request

    for _ in range(requests):
        req = urllib.request.Request(
            url,
            data=json.dumps({"sensor_id": "warm", "reading": READING}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=30).read()


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip() + ("+" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _mb(pid: int | None) -> float:
    return round(tree_rss(pid) / 2**20, 1)


def _print_scenario(label: str, result: dict[str, Any]) -> None:
    print(
        f"{label} batch {result['batch']:>3} x{result['concurrency']}: "
        f"{result['requests_per_s']:8.1f} req/s {result['inferences_per_s']:9.1f} inferences/s  "
        f"p50 {result['p50_ms']:6.2f} ms p95 {result['p95_ms']:6.2f} ms  "
        f"p99 {result['p99_ms']:6.2f} ms  errors {result['errors']}  "
        f"lost rows {result['lost_rows']}  extra rows {result['extra_rows']}",
        flush=True,
    )
    conns = result["model_server_connections"]
    print(
        f"          CPU ms per request: {result['cpu_ms_per_request']} -> idle 2-core "
        f"ceiling ~{result['idle_2core_ceiling_req_per_s']} req/s; connections to the model "
        f"server: {conns['most_at_once']} at most at once, {conns['distinct_seen']} distinct",
        flush=True,
    )


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
    parser.add_argument("--model", choices=sorted(MODELS), default="extra-trees")
    parser.add_argument(
        "--grid", default="default", help="the named grid the trainer's shapes come from"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8, help="clients, single readings")
    parser.add_argument("--batch-concurrency", type=int, default=8, help="clients, batches")
    parser.add_argument("--batch", type=int, default=100, help="readings per batch request")
    parser.add_argument("--threads", type=int, default=8, help="function serving threads")
    parser.add_argument("--workers", type=int, default=1, help="function processes")
    parser.add_argument(
        "--variants",
        nargs="*",
        type=Variant.parse,
        default=[],
        help="more ways to serve predict, measured after the stack's: WORKER:THREADS:PROCESSES "
        "(WORKER hardened or gthread)",
    )
    parser.add_argument(
        "--mlflow",
        action="store_true",
        help="also load `mlflow models serve` on the same model (slow to start)",
    )
    args = parser.parse_args()
    GRID[0] = args.grid

    from potability import config
    from potability.local import function_servers as local
    from potability.local import services
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
    started: list[Variant] = []
    try:
        import urllib.request

        _warm(env["PREDICT_URL"])
        health = json.loads(
            urllib.request.urlopen(f"{env['MODEL_SERVER_URL']}/health", timeout=10).read()
        )
        load_before = os.getloadavg()
        print(
            f"predict at {env['PREDICT_URL']}, model: {model}, served by the model server "
            f"with runtime={health.get('runtime')}; {args.seconds:g}s per scenario, "
            f"loopback, client in a separate process; load average {load_before}",
            flush=True,
        )
        model_pid = services.running_pid(home, "model-server")
        model_port = int(env["MODEL_SERVER_URL"].rsplit(":", 1)[1])
        postgres_pid = local_stack.postgres_pid(home)
        alone = load_server(
            f"{env['MODEL_SERVER_URL']}/predict", "model", args.seconds, args.concurrency, model_pid
        )
        print(
            f"model server alone x{args.concurrency}: {alone['requests_per_s']:8.1f} req/s  "
            f"p50 {alone['p50_ms']:6.2f} ms  p99 {alone['p99_ms']:6.2f} ms  errors "
            f"{alone['errors']}  CPU ms/request: server {alone['cpu_ms_per_request']} + client "
            f"{alone['client_cpu_ms_per_request']}",
            flush=True,
        )
        shipped = Variant("hardened", args.threads, args.workers)
        servers = [
            (shipped, env["PREDICT_URL"], services.running_pid(home, local.FUNCTIONS[0].service))
        ]
        report: list[dict[str, Any]] = [alone]
        for variant in [shipped, *args.variants]:
            if variant is shipped:
                url, pid = servers[0][1], servers[0][2]
            else:
                url, pid = start_variant(home, variant)
                started.append(variant)
                _warm(url)
            processes = {"function": pid, "model server": model_pid, "postgresql": postgres_pid}
            processes = {k: v for k, v in processes.items() if v}
            for batch, concurrency in ((1, args.concurrency), (args.batch, args.batch_concurrency)):
                result = run_scenario(
                    url,
                    env["DATABASE_URL"],
                    batch,
                    args.seconds,
                    concurrency,
                    processes,
                    model_port,
                )
                result["variant"] = variant.label
                result["function_rss_mb"] = _mb(pid)
                report.append(result)
                _print_scenario(f"predict [{variant.label}]", result)
            if variant is not shipped:
                stop_variant(home, variant)
                started.remove(variant)
        model_rss = _mb(model_pid)
        if args.mlflow:
            report.extend(compare_model_servers(home, env, args.seconds, args.concurrency))
        load_after = os.getloadavg()
        print(json.dumps(report))
        single, batched = report[1], report[2]
        ratio = single["requests_per_s"] / alone["requests_per_s"]
        p99_ratio = single["p99_ms"] / alone["p99_ms"] if alone["p99_ms"] else float("nan")
        batch_ratio = batched["inferences_per_s"] / alone["requests_per_s"]
        print(
            f"resident memory: function {single['function_rss_mb']} MB, model server "
            f"{model_rss} MB (target <= 300 MB); load average {load_before} -> {load_after}",
            flush=True,
        )
        print(
            f"predict / model server alone: {ratio:.3f}x req/s, {p99_ratio:.1f}x p99; "
            f"batch inferences/s / model server req/s: {batch_ratio:.2f}x",
            flush=True,
        )
        clean = all(
            r["errors"] == 0 and r["lost_rows"] == 0 and r["extra_rows"] == 0
            for r in report[1:]
            if "batch" in r
        )
        targets = {
            "single >= 1,000 req/s": single["requests_per_s"] >= 1000,
            "single p99 <= 20 ms": single["p99_ms"] <= 20,
            "batch >= 25,000 inferences/s": batched["inferences_per_s"] >= 25000,
            "model server RSS <= 300 MB": model_rss <= 300,
            "no errors, lost or extra rows": clean,
        }
        for name, met in targets.items():
            print(f"target {name}: {'MET' if met else 'NOT MET'}")
        print(
            "bench/README.md row (date | commit | load 1-min before/after | model server "
            "req/s, p99 | predict single req/s, p99 | ratio req/s, p99 | CPU ms/request "
            "function, PostgreSQL | batch inferences/s, p99 | batch/model server | RSS function, "
            "model server):"
        )
        cpu = single["cpu_ms_per_request"]
        print(
            f"| {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} | {_commit()} | "
            f"{load_before[0]:.1f} / {load_after[0]:.1f} | "
            f"{alone['requests_per_s']:,.0f}, {alone['p99_ms']:.1f} ms | "
            f"{single['requests_per_s']:,.0f}, {single['p99_ms']:.1f} ms | "
            f"**{ratio:.3f}**, {p99_ratio:.1f}x | "
            f"{cpu['function']:.2f}, {cpu.get('postgresql', float('nan')):.2f} | "
            f"{batched['inferences_per_s']:,.0f}, {batched['p99_ms']:.1f} ms | "
            f"**{batch_ratio:.2f}** | {single['function_rss_mb']:.0f} MB, {model_rss:.0f} MB |"
        )
        return 0 if clean else 1
    finally:
        for variant in started:
            stop_variant(home, variant)
        if temp is not None:
            local_stack.down(Path(temp.name))
            temp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
