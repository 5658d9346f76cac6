"""The functions as ``potability functions`` / ``make run`` start them: real functions-framework
processes on loopback, the example curls, the regulator token, the structured logs."""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import threading

import requests
from fn_support import count, reading

from functions.auth import token_sha256
from potability import config
from potability.local import function_servers as local
from potability.local import services
from potability.local import stack as local_stack


def test_started_functions_publish_urls_and_a_hashed_token(local_functions) -> None:
    home, env = local_functions
    for fn in local.FUNCTIONS:
        assert env[fn.env_key].startswith("http://127.0.0.1:")
        assert services.running_pid(home, fn.service)
    token_file = home / local.TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    stored = config.read_env(home)
    assert stored["SAMPLES_TOKEN_SHA256"] == token_sha256(token)
    assert token not in (home / "env").read_text()
    # Starting again finds what runs: same URLs, same processes, same token.
    pids = {fn.service: services.running_pid(home, fn.service) for fn in local.FUNCTIONS}
    assert local.start(home) == stored
    assert {fn.service: services.running_pid(home, fn.service) for fn in local.FUNCTIONS} == pids


def test_the_printed_example_curls_work(local_functions, clean_db) -> None:
    home, _ = local_functions
    predict_curl, sample_curl, status_curl = local.example_curls(home)
    outputs = [
        subprocess.run(
            ["bash", "-c", cmd + " -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.rsplit("\n", 1)
        for cmd in (predict_curl, sample_curl, status_curl)
    ]
    (predict_body, predict_code), (sample_body, sample_code), (_, status_code) = outputs
    assert predict_code == "200", predict_body
    assert json.loads(predict_body)["predictions"][0]["model_version"] == "test-1"
    assert sample_code == "201", sample_body
    assert json.loads(sample_body)["submitted_by"].startswith("token:")
    assert status_code == "200"
    assert count(clean_db, "water_inferences") == 1
    assert count(clean_db, "water_potability") == 1
    token = (home / local.TOKEN_FILE).read_text().strip()
    for service in ("fn-predict", "fn-add-sample", "fn-status"):
        assert token not in services.log_file(home, service).read_text()
    # each function connected as its own least-privilege user (sql/005 roles), not the superuser
    cur = clean_db.cursor()
    cur.execute("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database()")
    users = {r[0] for r in cur.fetchall()}
    clean_db.rollback()
    assert {"potability_predict", "potability_samples", "potability_status"} <= users
    cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname LIKE 'potability\\_%'")
    assert {r[0] for r in cur.fetchall()} == {False}
    clean_db.rollback()


def test_structured_log_line_per_request(local_functions, clean_db) -> None:
    home, env = local_functions
    trace = "105445aa7843bc8bf206b12000100000/1;o=1"
    response = requests.post(
        env["PREDICT_URL"],
        json={"sensor_id": "log-test", "reading": reading()},
        headers={"X-Cloud-Trace-Context": trace, "Idempotency-Key": "log-1"},
        timeout=10,
    )
    assert response.status_code == 200
    bad = requests.post(
        env["PREDICT_URL"], data="nope", timeout=10, headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400
    lines = [
        json.loads(line)
        for line in services.log_file(home, "fn-predict").read_text().splitlines()
        if line.startswith("{")
    ]
    [ok] = [e for e in lines if e.get("request_id") == "log-1"]
    assert ok["severity"] == "INFO"
    assert ok["httpRequest"]["requestMethod"] == "POST"
    assert ok["httpRequest"]["status"] == 200
    assert ok["httpRequest"]["latency"].endswith("s")
    assert float(ok["httpRequest"]["latency"][:-1]) > 0
    assert ok["logging.googleapis.com/trace"] == "105445aa7843bc8bf206b12000100000"
    assert ok["sensor_id"] == "log-test" and ok["readings"] == 1
    refused = [e for e in lines if e["httpRequest"]["status"] == 400]
    assert refused and refused[-1]["severity"] == "WARNING"
    assert "body" in refused[-1]["message"]


def test_functions_stop_with_the_stack(tmp_path, database_url) -> None:
    """``potability down`` stops the functions (they are registered services)."""
    config.update_env(tmp_path, DATABASE_URL=database_url)
    env = local.start(tmp_path, threads=1)
    assert "MODEL_SERVER_URL" in env  # reserved for the model server when none runs yet
    down = requests.post(
        env["PREDICT_URL"], json={"sensor_id": "a", "reading": reading()}, timeout=10
    )
    assert down.status_code == 503 and down.json()["field"] == "endpoint"
    pids = [services.running_pid(tmp_path, fn.service) for fn in local.FUNCTIONS]
    stopped = local_stack.down(tmp_path)
    assert set(stopped) >= {fn.service for fn in local.FUNCTIONS}
    assert not any(services.is_alive(pid) for pid in pids if pid)
    assert os.path.exists(tmp_path / local.TOKEN_FILE)


class _AnswersAnything(http.server.BaseHTTPRequestHandler):
    """Another stack's server: 200 to every method, and it remembers what it was asked."""

    asked: list[str] = []

    def _answer(self) -> None:
        type(self).asked.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


def test_a_port_taken_while_a_function_starts_is_given_up_for_another(
    tmp_path, database_url, monkeypatch
) -> None:
    """The port chosen for predict was free when chosen, but another process (a second test
    worker's stack, which prefers the same port) listens there before ours binds: what answers
    is not ours, so predict moves to another port, and only ours is published."""
    stranger = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AnswersAnything)
    threading.Thread(target=stranger.serve_forever, daemon=True).start()
    taken = stranger.server_address[1]
    real_free_port = services.free_port
    chosen: list[int] = []

    def taken_first(preferred: int = 0, host: str = "127.0.0.1") -> int:
        chosen.append(taken if not chosen else real_free_port(preferred, host))
        return chosen[-1]

    monkeypatch.setattr(services, "free_port", taken_first)
    config.update_env(
        tmp_path, DATABASE_URL=database_url, MODEL_SERVER_URL=f"http://127.0.0.1:{real_free_port()}"
    )
    try:
        env = local.start(tmp_path, threads=1)
        assert chosen[0] == taken and env["PREDICT_URL"] != f"http://127.0.0.1:{taken}"
        assert any(a.startswith("DELETE /?probe=") for a in _AnswersAnything.asked)
        ours = requests.post(
            env["PREDICT_URL"], json={"sensor_id": "a", "reading": reading()}, timeout=10
        )
        assert ours.status_code == 503 and ours.json()["field"] == "endpoint"
        assert config.read_env(tmp_path)["PREDICT_URL"] == env["PREDICT_URL"]
    finally:
        local_stack.down(tmp_path)
        stranger.shutdown()
