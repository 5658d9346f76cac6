"""Our model server: one module for the Vertex AI custom container and the local stack.

It follows Vertex AI's custom-container contract - listens on ``AIP_HTTP_PORT``, answers
``AIP_HEALTH_ROUTE`` and ``AIP_PREDICT_ROUTE``, loads the model from ``AIP_STORAGE_URI`` (Vertex
copies the uploaded MLflow model there) or ``MODEL_URI`` (locally, e.g.
``models:/water-potability/3`` through the MLflow tracking server).

    POST /predict {"instances": [{"ph": 7.1, ..., "Turbidity": 3.9}, ...]}
    ->  {"predictions": [{"potable": 1, "probability": 0.81, "model_version": "3"}, ...],
         "model_name": "water-potability", "model_version": "3"}

The model version is repeated inside every prediction because Vertex passes only the
``predictions`` list through to endpoint callers.

Decisions use the model's own threshold (:func:`potability.model.decision_threshold`),
applied to ``predict_proba`` (the calibrated P(potable)) so each request costs one pass
through the model.

Scoring runs on the model's compiled ONNX form (``compiled/model.onnx`` in the model directory,
see :mod:`potability.serving.compiled_model`: every shape training produces, within 1e-6 of
scikit-learn) when it has one; otherwise - an estimator the converter does not know, a model
registered before compilation existed, or a graph onnxruntime refuses - it falls back to
scikit-learn with a logged warning. ``/health`` and the startup log say which (``runtime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import operator
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from potability.config import ServingSettings, child_environment
from potability.features import FEATURE_NAMES, FEATURES, ValidationError, validate_features
from potability.local import services

SERVICE = "model-server"
MAX_INSTANCES = 1000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    estimator: Any
    """The scikit-learn estimator; None when the compiled form serves alone
    (:func:`load_onnx_only`)."""
    name: str
    version: str
    threshold: float
    compiled: Any = None
    """A :class:`potability.serving.compiled_model.CompiledModel`, or None (scikit-learn scores)."""

    @property
    def runtime(self) -> str:
        return "onnx" if self.compiled is not None else "scikit-learn"

    def potable_probability(self, matrix: np.ndarray) -> np.ndarray:
        if self.compiled is not None:
            return self.compiled.potable_probability(matrix)
        classes = list(self.estimator.classes_)
        return self.estimator.predict_proba(matrix)[:, classes.index(1)]


def _serve_single_threaded(estimator: Any) -> None:
    """Requests are tiny: per-request thread pools (n_jobs) only add latency when serving."""
    try:
        params = estimator.get_params(deep=True)
    except AttributeError:
        return
    jobs = {k: 1 for k, v in params.items() if k.endswith("n_jobs") and v not in (None, 1)}
    if jobs:
        with contextlib.suppress(ValueError):
            estimator.set_params(**jobs)


def _forest_predict_proba(forest: Any) -> Any:
    """``forest.predict_proba`` without joblib: the same per-tree sum in the same order.

    scikit-learn dispatches every tree through ``joblib.Parallel`` even with ``n_jobs=1``,
    and checks its input again per tree: ~90 us per tree, 18 ms of a 200-tree forest's 19 ms
    on a one-reading request. A plain loop over the fitted trees gives bit-identical
    probabilities (a test compares them).
    """
    trees = [tree.tree_ for tree in forest.estimators_]
    classes = forest.n_classes_

    def predict_proba(x: Any) -> np.ndarray:
        x = forest._validate_X_predict(x)  # float32, C-contiguous, as the trees expect
        total = np.zeros((x.shape[0], classes), dtype=np.float64)
        for tree in trees:  # DecisionTreeClassifier.predict_proba minus its checks
            total += tree.predict(x)[:, :classes]
        return total / len(trees)

    return predict_proba


def speed_up_for_serving(estimator: Any) -> None:
    """Serving-only shortcuts that leave every prediction unchanged."""
    from sklearn.ensemble import RandomForestClassifier

    from potability.model import final_classifier

    final = final_classifier(estimator)
    for fitted in (estimator, final):  # the fitted copy, not only the unfitted template
        _serve_single_threaded(fitted)
    if isinstance(final, RandomForestClassifier) and final.n_outputs_ == 1:
        final.predict_proba = _forest_predict_proba(final)


def load_compiled(model_dir: str, estimator: Any) -> Any:
    """The model's compiled form, or None with a warning saying why scikit-learn scores."""
    from potability.serving import compiled_model

    try:
        compiled = compiled_model.load(model_dir, estimator.classes_)
    except Exception as exc:  # noqa: BLE001 - a graph this onnxruntime cannot run: serve all the same
        log.warning(
            "compiled model in %s not usable (%s); scoring with scikit-learn", model_dir, exc
        )
        return None
    if compiled is None:
        log.warning(
            "%s has no compiled form (%s/%s); scoring with scikit-learn",
            model_dir,
            compiled_model.FOLDER,
            compiled_model.ONNX_FILE,
        )
    return compiled


def load_onnx_only(model_dir: str, settings: ServingSettings) -> LoadedModel | None:
    """The model served by its compiled form alone, scikit-learn never imported - when the
    compile report carries the threshold, classes and feature names (compiled since issue 34)
    and onnxruntime accepts the graph; else None (:func:`load_model` loads the estimator)."""
    from potability.serving import onnx_scoring

    facts = onnx_scoring.served_facts(model_dir)
    if facts is None:
        return None
    if facts["feature_names"] and list(facts["feature_names"]) != list(FEATURE_NAMES):
        raise RuntimeError(
            f"{model_dir} was trained on columns {facts['feature_names']}, expected {FEATURE_NAMES}"
        )
    try:
        compiled = onnx_scoring.load(model_dir, facts["classes"])
    except Exception as exc:  # noqa: BLE001 - a graph this onnxruntime cannot run: scikit-learn then
        log.warning("compiled model in %s not usable (%s)", model_dir, exc)
        return None
    return LoadedModel(
        None, settings.model_name, settings.model_version, float(facts["threshold"]), compiled
    )


def fetch_model(uri: str, tracking_uri: str) -> str:
    """The local directory of the model at ``uri``: ``uri`` itself when it is one, else what
    MLflow's CLI downloads (``models:/``, ``runs:/``, ``gs://``...) in a child process.

    The child keeps MLflow out of the server: importing it pulls pandas and scipy, ~125 MB
    resident that a model served by onnxruntime alone never uses (measured: 60 -> 185 MB;
    issue 34's target is 300 MB). ``mlflow artifacts download`` prints the local path as its
    last line (mlflow/store/artifact/cli.py, ``download_artifacts``)."""
    import subprocess

    if Path(uri).is_dir():
        return uri
    env = child_environment({"MLFLOW_TRACKING_URI": tracking_uri} if tracking_uri else None)
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "artifacts", "download", "--artifact-uri", uri],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines or not Path(lines[-1]).is_dir():
        raise RuntimeError(f"could not download the model {uri}: {done.stderr.strip()[-2000:]}")
    return lines[-1]


def load_model(settings: ServingSettings) -> LoadedModel:
    """Load the MLflow (scikit-learn flavour) model named by the settings, and its ONNX form.

    A model whose compile report says all serving needs is served by onnxruntime alone
    (:func:`load_onnx_only`), neither scikit-learn nor MLflow imported (:func:`fetch_model`):
    193 MB resident under load instead of 311 MB for the default grid's heaviest vote
    (bench/README.md); otherwise the estimator is loaded, and scores itself if it has no
    usable compiled form."""
    uri = settings.model_uri
    if not uri:
        raise RuntimeError("no model to serve: set AIP_STORAGE_URI or MODEL_URI")
    model_dir = fetch_model(uri, settings.tracking_uri)
    lean = load_onnx_only(model_dir, settings)
    if lean is not None:
        log.info(
            "serving %s v%s (threshold %.6g) with runtime onnx, scikit-learn not loaded",
            lean.name,
            lean.version,
            lean.threshold,
        )
        return lean
    import mlflow.sklearn

    from potability.model import decision_threshold

    estimator = mlflow.sklearn.load_model(model_dir)
    trained_on = [str(c) for c in getattr(estimator, "feature_names_in_", FEATURE_NAMES)]
    if trained_on != list(FEATURE_NAMES):
        raise RuntimeError(f"{uri} was trained on columns {trained_on}, expected {FEATURE_NAMES}")
    # instances_matrix passes the columns in that order, without their names
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    speed_up_for_serving(estimator)
    loaded = LoadedModel(
        estimator,
        settings.model_name,
        settings.model_version,
        decision_threshold(estimator),
        load_compiled(model_dir, estimator),
    )
    log.info(
        "serving %s v%s (threshold %.6g) with runtime %s",
        loaded.name,
        loaded.version,
        loaded.threshold,
        loaded.runtime,
    )
    return loaded


_VALUES = operator.itemgetter(*FEATURE_NAMES)
_PLAIN_TYPES = frozenset({float, int, type(None)})
_WHOLE_FROM = 2
"""Fewest instances checked as a whole: one reading is cheaper reading by reading (6 against
10 microseconds: numpy's fixed cost per array operation)."""
_LOW = np.array([f.minimum for f in FEATURES])
_HIGH = np.array([f.maximum for f in FEATURES])


def instances_matrix(instances: Any) -> np.ndarray:
    """Validate ``instances`` against the feature schema; nulls become NaN (imputed by the model).

    A plain matrix in :data:`FEATURE_NAMES` order, not a DataFrame: scikit-learn's per-step
    DataFrame checks cost more than the model itself on a one-reading request (1-3 ms of the
    server's CPU per request); :func:`load_model` checks the model was trained on the
    columns in this order.

    A batch is checked as a whole first (:func:`_plain_matrix`); only a batch that fails it is
    checked reading by reading, for the error that names the field - the same matrix or the
    same error either way.
    """
    if not isinstance(instances, list) or not instances:
        raise ValidationError("instances", "must be a non-empty list of readings")
    if len(instances) > MAX_INSTANCES:
        raise ValidationError("instances", f"at most {MAX_INSTANCES} readings per request")
    if len(instances) >= _WHOLE_FROM:
        matrix = _plain_matrix(instances)
        if matrix is not None:
            return matrix
    rows = []
    for i, instance in enumerate(instances):
        values = validate_features(instance, where=f"instances[{i}].")
        rows.append([math.nan if values[n] is None else values[n] for n in FEATURE_NAMES])
    return np.asarray(rows, dtype=float)


def _plain_matrix(instances: list[Any]) -> np.ndarray | None:
    """The matrix of ``instances`` when every one is a valid reading, else None.

    One pass in C where :func:`potability.features.validate_features` makes nine Python calls
    a reading (issue 34: a batch of 100 readings 0.53 -> 0.1 ms, a sixth of the model server's
    CPU for a batch): exactly the nine names, only numbers or nulls (no bool, no string), and
    the ranges compared as arrays. A NaN would pass as a null, so the nulls are counted."""
    if not all(type(i) is dict and len(i) == len(FEATURE_NAMES) for i in instances):
        return None
    try:
        rows = list(map(_VALUES, instances))
    except KeyError:
        return None
    if not {type(v) for row in rows for v in row} <= _PLAIN_TYPES:
        return None
    matrix = np.array(rows, dtype=float)
    missing = np.isnan(matrix)
    if int(missing.sum()) != sum(row.count(None) for row in rows):
        return None
    with np.errstate(invalid="ignore"):
        inside = (matrix >= _LOW) & (matrix <= _HIGH)
    return matrix if bool((inside | missing).all()) else None


def predict(model: LoadedModel, matrix: np.ndarray) -> list[dict[str, Any]]:
    """One prediction per row: the class at the model's threshold and P(potable)."""
    return predictions(model, model.potable_probability(matrix))


def predictions(model: LoadedModel, proba: np.ndarray) -> list[dict[str, Any]]:
    """The answer's ``predictions`` for P(potable) of each row."""
    return [
        {
            "potable": int(p >= model.threshold),
            "probability": float(p),
            "model_version": model.version,
        }
        for p in proba
    ]


MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest request body read: MAX_INSTANCES readings take ~200 kB of JSON; more is refused."""
INLINE_ROWS = 32
"""Requests up to this many readings are scored on the event loop when ONNX scores (a single
reading's run costs ~0.1 ms, less than a hand-off to a thread); larger ones - and every request
scikit-learn scores (a forest takes milliseconds per reading) - in the thread pool, so a batch
of 1,000 neither stalls other requests nor keeps onnxruntime or scikit-learn (both release the
GIL) off the second core."""

_Response = tuple[int, list[tuple[bytes, bytes]], bytes]


def _json(status: int, payload: dict[str, Any], *extra: tuple[bytes, bytes]) -> _Response:
    body = orjson.dumps(payload)  # NaN would be null (json wrote NaN, which is not JSON)
    return (
        status,
        [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ],
        body,
    )


def _error(status: int, message: str, field: str, *extra: tuple[bytes, bytes]) -> _Response:
    return _json(status, {"error": message, "field": field}, *extra)


class _Disconnected(Exception):
    """The client went away before its body arrived: nothing to answer."""


async def _read_body(receive: Any) -> bytes | None:
    """The whole request body (chunked or not), or None once it passes :data:`MAX_BODY_BYTES`."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class ModelApp:
    """The model server's ASGI app: two routes, JSON in and out, nothing else.

    Served by uvicorn with httptools' C HTTP parser on one event loop (:func:`serve`). Per
    single-reading request this costs ~0.45 ms of server CPU with the 200-tree forest where
    Flask under gunicorn's gthread worker cost ~1.8 ms - Flask's request/response objects,
    context locals, routing and ``jsonify`` (~0.25-0.9 ms) and gthread's hand-off of every
    keep-alive request from its poller to a pool thread and back (~0.5 ms) each cost more than
    the forest's ONNX scoring (~0.1 ms): bench/README.md, serving. Vertex's custom-container
    contract asks only for the two routes (``AIP_HEALTH_ROUTE``, ``AIP_PREDICT_ROUTE``)
    answering JSON on ``AIP_HTTP_PORT``
    (cloud.google.com/vertex-ai/docs/predictions/custom-container-requirements).

    Every answer is JSON, errors included: 400 naming the ``field`` (``body`` for a body that
    is not a JSON object, ``instances...`` for a bad reading), 404 for an unknown path, 405
    (with ``Allow``) for a wrong method, 413 for a body over :data:`MAX_BODY_BYTES`, 500
    (logged) if scoring itself fails.
    """

    def __init__(self, model: LoadedModel, settings: ServingSettings) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.model = model
        self.health_route = settings.health_route
        self.predict_route = settings.predict_route
        self._pool = ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="score")
        self._health = _json(
            200,
            {
                "status": "ok",
                "model_name": model.name,
                "model_version": model.version,
                "threshold": model.threshold,
                "runtime": model.runtime,
            },
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan is off (serve); websockets are not served
            return
        try:
            status, headers, body = await self.respond(scope["method"], scope["path"], receive)
        except _Disconnected:
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})  # uvicorn drops it for HEAD

    async def respond(self, method: str, path: str, receive: Any) -> _Response:
        if path == self.predict_route:
            if method != "POST":
                return _error(405, f"{path} accepts POST", "method", (b"allow", b"POST"))
            try:
                return await self.predict(receive)
            except _Disconnected:
                raise
            except Exception:  # a bug or a broken model: a JSON 500, and the traceback logged
                log.exception("predict failed")
                return _json(500, {"error": "internal error"})
        if path == self.health_route:
            if method not in ("GET", "HEAD"):
                return _error(405, f"{path} accepts GET", "method", (b"allow", b"GET, HEAD"))
            return self._health
        return _error(
            404, f"no route {path}: use {self.predict_route} or {self.health_route}", "path"
        )

    async def predict(self, receive: Any) -> _Response:
        raw = await _read_body(receive)
        if raw is None:
            return _error(413, f"body is larger than {MAX_BODY_BYTES} bytes", "body")
        try:
            # orjson (issue 34): a batch's ~900 floats in a seventh of json's time. Strict
            # RFC 8259 where json was lenient: NaN / Infinity literals, integers beyond 64 bits
            # and lone surrogates are a 400 on `body`, as any other text that is not JSON.
            body = orjson.loads(raw)
        except ValueError:  # includes undecodable bytes; orjson.JSONDecodeError is one
            body = None
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object with 'instances'", "body")
        try:
            matrix = instances_matrix(body.get("instances"))
        except ValidationError as exc:
            return _error(400, exc.message, exc.field)
        if self.model.compiled is not None and len(matrix) <= INLINE_ROWS:
            proba = self.model.potable_probability(matrix)
        else:
            proba = await asyncio.get_running_loop().run_in_executor(
                self._pool, self.model.potable_probability, matrix
            )
        return _json(
            200,
            {
                "predictions": predictions(self.model, proba),
                "model_name": self.model.name,
                "model_version": self.model.version,
            },
        )


def create_app(model: LoadedModel, settings: ServingSettings) -> ModelApp:
    """The ASGI app; the model is loaded once, before the first request."""
    return ModelApp(model, settings)


def serve(settings: ServingSettings) -> None:
    """Run under uvicorn: one process, one event loop, httptools parsing (C).

    One process holds one copy of the model; the loop parses, validates and scores small
    requests itself and hands big batches to :class:`ModelApp`'s threads. ``lifespan`` is off
    (the model is loaded before the server starts), access logs too (one line per prediction
    would cost more than the prediction).
    """
    import uvicorn

    app = create_app(load_model(settings), settings)
    options: dict[str, Any] = {  # uvicorn.Config's keywords, of mixed types
        "http": "httptools",
        "loop": "asyncio",
        "lifespan": "off",
        "access_log": False,
        "log_level": "info",
        "timeout_graceful_shutdown": 30,
    }
    if settings.handover_file:  # a local switch: the old server still holds the port
        sock = bind_when_free(settings.host, settings.port, settings.handover_file)
        uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])
        return
    uvicorn.run(app, host=settings.host, port=settings.port, **options)


HANDOVER_WAIT_SECONDS = 60.0


def bind_when_free(
    host: str, port: int, loaded_file: str, wait_seconds: float = HANDOVER_WAIT_SECONDS
) -> Any:
    """The model is loaded: say so (``loaded_file``), then bind ``port`` as soon as the old
    server lets go of it (:func:`switch_local`), polling every 10 ms - so the port is without
    a listener only from the old server's close to this bind, not for a whole model load."""
    import socket
    import time

    Path(loaded_file).write_text(str(os.getpid()))
    deadline = time.monotonic() + wait_seconds
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's own bind
        try:
            sock.bind((host, port))
            sock.listen(2048)
            sock.set_inheritable(True)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def health(url: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """The /health answer of the model server at ``url``; None if nothing there answers 200
    with a JSON object (not running, another kind of server, or still starting)."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def start_local(
    home: Path,
    model_uri: str,
    model_name: str,
    model_version: str,
    tracking_uri: str,
    port: int = 0,
) -> str:
    """(Re)start the local model server on a model version; publish MODEL_SERVER_URL.

    The port is kept across restarts so the functions already running keep reaching it.
    Another process may hold that port meanwhile (a second stack's model server, which also
    prefers 8080, started while ours was down): then our server cannot bind, and the old
    check - "the port answers /health" - passed on the stranger's answer, so a restart
    "succeeded" at once while predict was served by someone else's model. Hence the port must
    be free before we start, and the server that answers must report the model we started.

    A port of our choosing (no ``port``, no published URL) taken by another process while ours
    starts is given up for another free port, up to three tries.

    Raises:
        RuntimeError: the port is held by another process, or what answers is not our model.
    """
    from potability import config

    known = config.read_env(home).get("MODEL_SERVER_URL", "")
    services.stop(home, SERVICE)
    pinned = port or (int(known.rsplit(":", 1)[1]) if known else 0)
    env = {
        "MODEL_URI": model_uri,
        "MODEL_NAME": model_name,
        "MODEL_VERSION": model_version,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "AIP_HEALTH_ROUTE": "/health",
        "AIP_PREDICT_ROUTE": "/predict",
        "MODEL_SERVER_HOST": "127.0.0.1",
    }
    # A port of our choosing (8080 when free, else any) may be taken by another stack's server
    # between the check and our bind - two test workers starting at once did: then another.
    for preferred in (8080, 0, 0) if not pinned else (pinned,):
        port = pinned or services.free_port(preferred)
        if not services.can_listen(port):
            raise RuntimeError(
                f"port {port} is held by another process; the model server for "
                f"{model_name} v{model_version} cannot listen there"
            )
        pid = services.start(
            home,
            SERVICE,
            [sys.executable, "-m", "potability.serving.model_server"],
            env={**env, "AIP_HTTP_PORT": str(port)},
        )
        url = f"http://127.0.0.1:{port}"
        services.wait_http(f"{url}/health", timeout=120, pid=pid)
        answered = health(url) or {}
        if answered.get("model_name") == model_name and (
            not model_version or answered.get("model_version") == model_version
        ):
            config.update_env(home, MODEL_SERVER_URL=url)
            return url
        services.stop(home, SERVICE)
    raise RuntimeError(
        f"{url} answers for {answered.get('model_name')} "
        f"v{answered.get('model_version')}, not {model_name} v{model_version}: "
        "another process took the port while ours was starting"
    )


NEXT = f"{SERVICE}-next"
"""The service name of the replacement server while a switch hands the port over."""


def switch_local(
    home: Path,
    model_uri: str,
    model_name: str,
    model_version: str,
    tracking_uri: str,
    timeout: float = 120.0,
) -> str:
    """Serve another version on the running local server's port with the shortest gap.

    The new server starts beside the old one and loads its model (the slow part) while the
    old one keeps answering; once it is loaded the old one is stopped (gracefully: requests in
    flight are answered) and the new one binds the port at once. Predict sees the port without
    a listener only between the two (a retryable 503, README's "documented 503 during a
    switch"). If the new server fails to load, the old one was never touched. Without a
    running server this is :func:`start_local`.

    Raises:
        RuntimeError: the new server did not load or did not answer as ``model_version``
            (the caller restarts the old version).
    """
    import time

    from potability import config

    known = config.read_env(home).get("MODEL_SERVER_URL", "")
    if not known or services.running_pid(home, SERVICE) is None or health(known) is None:
        return start_local(home, model_uri, model_name, model_version, tracking_uri)
    port = int(known.rsplit(":", 1)[1])
    loaded = home / "run" / f"{NEXT}.loaded"
    loaded.parent.mkdir(parents=True, exist_ok=True)
    loaded.unlink(missing_ok=True)
    services.stop(home, NEXT)
    env = {
        "MODEL_URI": model_uri,
        "MODEL_NAME": model_name,
        "MODEL_VERSION": model_version,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "AIP_HTTP_PORT": str(port),
        "AIP_HEALTH_ROUTE": "/health",
        "AIP_PREDICT_ROUTE": "/predict",
        "MODEL_SERVER_HOST": "127.0.0.1",
        "MODEL_SERVER_HANDOVER_FILE": str(loaded),
    }
    pid = services.start(
        home, NEXT, [sys.executable, "-m", "potability.serving.model_server"], env=env
    )
    deadline = time.monotonic() + timeout
    while not loaded.exists():
        if not services.is_alive(pid) or time.monotonic() > deadline:
            services.stop(home, NEXT)
            raise RuntimeError(
                f"{model_name} v{model_version} did not load (log: "
                f"{services.log_file(home, NEXT)}); the old server still serves"
            )
        time.sleep(0.05)
    services.stop(home, SERVICE)  # graceful; the new server binds as soon as the port is free
    services.pid_file(home, NEXT).replace(services.pid_file(home, SERVICE))
    url = f"http://127.0.0.1:{port}"
    services.wait_http(f"{url}/health", timeout=timeout, pid=pid)
    answered = health(url) or {}
    if answered.get("model_name") != model_name or answered.get("model_version") != model_version:
        services.stop(home, SERVICE)
        raise RuntimeError(
            f"{url} answers for {answered.get('model_name')} "
            f"v{answered.get('model_version')}, not {model_name} v{model_version}"
        )
    return url


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    serve(ServingSettings.from_env())


if __name__ == "__main__":
    main()
