"""Run the three functions locally under functions-framework, as background services.

``potability functions`` (and ``make run``) calls :func:`start`: one functions-framework process
per function (``fn-predict``, ``fn-add-sample``, ``fn-status``), each reading the stack's env file
through the same variable names Terraform sets on GCP, their URLs published in that file
(``PREDICT_URL``, ``ADD_SAMPLE_URL``, ``STATUS_URL``) and stopped by ``potability down``.

The samples function needs a regulator token. The first start generates a random one, keeps
the plain token only in ``<home>/regulator-token`` (mode 0600, for the example ``curl``) and
publishes only its sha256 as ``SAMPLES_TOKEN_SHA256``.

If no model server runs yet, ``MODEL_SERVER_URL`` is reserved (a free port, published) so the
predict function and the pipeline's model server agree on it: the model server keeps a known
port across restarts. Until a model is served there, predict answers 503 (retryable).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from potability import config
from potability.config import token_sha256
from potability.local import services

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "functions" / "main.py"
TOKEN_FILE = "regulator-token"


@dataclass(frozen=True)
class LocalFunction:
    service: str
    target: str
    env_key: str
    preferred_port: int
    role_service: str
    """Its access role's service key (``potability.migrations.ACCESS_ROLES``)."""


FUNCTIONS = (
    LocalFunction("fn-predict", "predict", "PREDICT_URL", 8081, "predict"),
    LocalFunction("fn-add-sample", "add_sample", "ADD_SAMPLE_URL", 8082, "samples"),
    LocalFunction("fn-status", "status", "STATUS_URL", 8083, "status"),
)


def function_database_url(env: dict[str, str], fn: LocalFunction) -> str:
    """The database URL ``fn`` connects with: its own least-privilege user on the embedded
    server (``local_stack.LOCAL_FUNCTION_USERS``); an external ``DATABASE_URL`` as given (its
    owner grants roles as on Cloud SQL: docs/security.md)."""
    from potability.local import stack as local_stack

    url = env["DATABASE_URL"]
    if "host=/" not in url:  # not the embedded server's unix socket: an external database
        return url
    return local_stack.function_database_url(url, fn.role_service)


DEFAULT_THREADS = 8
"""Serving threads per function process (functions-framework's THREADS; gunicorn gthread)."""


def regulator_token(home: Path) -> str:
    """The local regulator token (created once, 0600) and its hash published in the env file
    when it is created (a revoked one stays revoked: ``potability samples tokens revoke``)."""
    path = home / TOKEN_FILE
    if not path.exists():
        config.private_home(home)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        add_token_hash(home, token_sha256(path.read_text().strip()))
    return path.read_text().strip()


def token_hashes(home: Path) -> list[str]:
    """The regulator tokens' hashes the local add_sample accepts (the env file)."""
    return [h for h in config.read_env(home).get("SAMPLES_TOKEN_SHA256", "").split(",") if h]


def add_token_hash(home: Path, digest: str) -> None:
    known = token_hashes(home)
    if digest not in known:
        config.update_env(home, SAMPLES_TOKEN_SHA256=",".join([*known, digest]))


def new_regulator_token(home: Path) -> tuple[str, str]:
    """A fresh random token (shown once, never stored) and its id ``token:<8 hex>``."""
    token = secrets.token_urlsafe(32)
    digest = token_sha256(token)
    add_token_hash(home, digest)
    return token, f"token:{digest[:8]}"


def revoke_token(home: Path, which: str) -> list[str]:
    """Remove the hashes matching ``which`` (an id ``token:<hex>``, a hash prefix of at least 8
    hex digits, or the token itself); return the ids removed. Running functions stop accepting
    it within 30 s."""
    key = which.strip()
    if key.startswith("token:"):
        key = key[len("token:") :]
    known = token_hashes(home)
    if len(key) >= 8 and all(c in "0123456789abcdef" for c in key.lower()):
        gone = [h for h in known if h.startswith(key.lower())]
    else:
        gone = [h for h in known if h == token_sha256(which.strip())]
    if len(gone) > 1:
        raise ValueError(f"{which!r} matches {len(gone)} tokens: give more hex digits")
    if gone:
        config.update_env(home, SAMPLES_TOKEN_SHA256=",".join(h for h in known if h not in gone))
    return [f"token:{h[:8]}" for h in gone]


def _answers(request: str | urllib.request.Request, timeout: float) -> bool:
    """Whether anything answers HTTP there (a refusal is an answer)."""
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def answered_by(home: Path, fn: LocalFunction, url: str) -> bool:
    """Whether ``url`` is answered by *our* ``fn`` process: a probe carrying a nonce must land
    in that process's request log.

    The port was free when chosen, but another stack's function (a second test worker, which
    prefers the same port) can bind it before ours does: ours then fails to bind, and the other
    one's answer would pass :func:`services.wait_http` - this stack would publish a URL served by
    another stack's function and database. Every answer, a refusal too, logs its URL
    (:func:`functions.context.serve`), and ``DELETE`` is refused by all three functions."""
    log = services.log_file(home, fn.service)
    offset = log.stat().st_size if log.exists() else 0
    nonce = secrets.token_hex(8)
    probe = urllib.request.Request(f"{url}/?probe={nonce}", method="DELETE")
    if not _answers(probe, timeout=10):
        return False
    with open(log, "rb") as lines:
        lines.seek(offset)
        return nonce.encode() in lines.read()


def start(home: Path, threads: int = DEFAULT_THREADS, workers: int = 1) -> dict[str, str]:
    """Start (or find) the three functions; return the env file with their URLs.

    A port of our choosing that another process takes while ours starts (see
    :func:`answered_by`) is given up for another free port, up to three tries."""
    regulator_token(home)
    env = config.read_env(home)
    if not env.get("DATABASE_URL"):
        raise RuntimeError("the local stack is not up: run `potability up` first")
    if not env.get("MODEL_SERVER_URL"):
        port = services.free_port(8080)
        env = config.update_env(home, MODEL_SERVER_URL=f"http://127.0.0.1:{port}")
    env.setdefault("ENDPOINT_MODE", "local")
    urls: dict[str, str] = {}
    started: list[tuple[LocalFunction, int, int]] = []
    for fn in FUNCTIONS:
        known = env.get(fn.env_key, "")
        if known and services.running_pid(home, fn.service):
            urls[fn.env_key] = known
            continue
        port = services.free_port(_port_of(known) if known else fn.preferred_port)
        started.append((fn, _start_one(home, env, fn, port, threads, workers), port))
    for fn, pid, port in started:
        url = f"http://127.0.0.1:{port}"
        for attempt in range(3):
            services.wait_http(url, timeout=60, pid=pid, any_answer=True)
            if answered_by(home, fn, url):
                break
            services.stop(home, fn.service)
            if attempt == 2:
                raise RuntimeError(f"{url} is answered by another process, not our {fn.target}")
            port = services.free_port()
            url = f"http://127.0.0.1:{port}"
            pid = _start_one(home, env, fn, port, threads, workers)
        urls[fn.env_key] = url
    return config.update_env(home, **urls)


def _start_one(
    home: Path, env: dict[str, str], fn: LocalFunction, port: int, threads: int, workers: int
) -> int:
    argv = [
        sys.executable,
        "-m",
        "functions_framework",
        "--source",
        str(SOURCE),
        "--target",
        fn.target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process_env = {
        **env,
        "POTABILITY_HOME": str(home),
        "THREADS": str(threads),
        # revocations (`potability samples tokens revoke`) apply within 30 s
        "SAMPLES_TOKEN_SECRET": f"file:{config.env_file(home)}",
        "DATABASE_URL": function_database_url(env, fn),
        "WORKERS": str(workers),
        "PYTHONUNBUFFERED": "1",
    }
    return services.start(home, fn.service, argv, env=process_env, cwd=ROOT)


def example_curls(home: Path) -> list[str]:
    """One runnable example per function, with this stack's URLs."""
    env = config.read_env(home)
    reading = {
        "ph": 7.08,
        "Hardness": 196.4,
        "Solids": 21000.0,
        "Chloramines": 7.1,
        "Sulfate": None,
        "Conductivity": 421.0,
        "Organic_carbon": 14.2,
        "Trihalomethanes": 66.4,
        "Turbidity": 3.9,
    }
    predict = {"sensor_id": "plant-7", "reading": reading}
    sample = {
        "sample_id": "lab-demo-0001",
        "sampled_at": "2024-05-01T09:30:00Z",
        "sensor_id": "plant-7",
        "potability": 1,
        **reading,
    }
    token_path = home / TOKEN_FILE
    return [
        f"curl -s -X POST {env.get('PREDICT_URL', '$PREDICT_URL')} "
        f"-H 'Content-Type: application/json' -H 'Idempotency-Key: demo-0001' "
        f"-d '{json.dumps(predict)}'",
        f"curl -s -X POST {env.get('ADD_SAMPLE_URL', '$ADD_SAMPLE_URL')} "
        f'-H "Authorization: Bearer $(cat {token_path})" '
        f"-H 'Content-Type: application/json' -d '{json.dumps(sample)}'",
        f"curl -s '{env.get('STATUS_URL', '$STATUS_URL')}?format=json'",
    ]
