"""The functions as ``potability functions`` / ``make run`` start them: real functions-framework
processes on loopback, the example curls, the regulator token, the structured logs."""

from __future__ import annotations

import json
import os
import stat
import subprocess

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
