"""Dependencies restarting under load: PostgreSQL stopped in immediate mode and started again,
the model server killed and restarted - while real function processes serve real clients."""

from __future__ import annotations

import http.server
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from faults_support import GOOD_READING, deadline

from functions.auth import token_sha256
from potability import db
from potability.config import Settings
from potability.local import services
from potability.local import stack as local_stack
from potability.serving import model_server

TOKEN = "faults-regulator-token"


def post(
    url: str, body: dict[str, Any], headers: dict[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, dict[str, str], dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {"raw": raw[:300].decode("latin-1")}
        return exc.code, dict(exc.headers), payload


def immediate_stop(home: Path, timeout: float = 20.0) -> None:
    """PostgreSQL's "immediate" shutdown (SIGQUIT): no checkpoint, crash recovery on start."""
    pid = local_stack.postgres_pid(home)
    assert pid is not None
    os.kill(pid, signal.SIGQUIT)
    end = time.monotonic() + timeout
    while services.is_alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    assert not services.is_alive(pid)


class Load:
    """Client threads sending unique requests until stopped; every outcome recorded."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.outcomes: list[tuple[str, str, int, float, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def run(self, name: str, send: Any) -> None:
        def loop() -> None:
            i = 0
            while not self.stop.is_set():
                key = f"{name}-{i}"
                i += 1
                try:
                    status, headers, _ = send(key)
                except OSError as exc:  # no answer at all is a failure too
                    status, headers = -1, {"error": repr(exc)}
                with self.lock:
                    self.outcomes.append((name, key, status, time.monotonic(), headers))
                if status == 503:
                    time.sleep(0.05)  # a real client waits Retry-After; here: keep pressure

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)
        assert not any(t.is_alive() for t in self.threads)


def test_database_restart_under_load_costs_no_500_and_loses_nothing(
    function_factory, private_database, model_server_url: str
) -> None:
    left = deadline(120)
    home, url = private_database
    env = {
        "DATABASE_URL": url,
        "MODEL_SERVER_URL": model_server_url,
        "ENDPOINT_MODE": "local",
        "SAMPLES_TOKEN_SHA256": token_sha256(TOKEN),
        "DB_POOL_SIZE": "4",
    }
    predict = function_factory("predict", env, threads=4)
    samples = function_factory("add_sample", env, threads=4)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def send_predict(key: str) -> Any:
        return post(
            predict.url,
            {"sensor_id": "restart", "readings": [GOOD_READING] * 3},
            {"Idempotency-Key": key},
        )

    def send_sample(key: str) -> Any:
        return post(
            samples.url,
            {
                **GOOD_READING,
                "potability": 1,
                "sample_id": key,
                "sampled_at": "2024-05-01T09:30:00Z",
                "sensor_id": "restart",
            },
            auth,
        )

    load = Load()
    for n in range(3):
        load.run(f"p{n}", send_predict)
    for n in range(2):
        load.run(f"s{n}", send_sample)
    try:
        time.sleep(2.0)
        stopped_at = time.monotonic()
        immediate_stop(home)
        time.sleep(1.5)
        local_stack.start_database(home)
        restarted_at = time.monotonic()
        time.sleep(4.0)
    finally:
        load.finish()
    left()

    statuses = Counter(status for _, _, status, _, _ in load.outcomes)
    assert set(statuses) <= {200, 201, 503}, statuses  # no 500, no hang, no HTML
    assert statuses[503] > 0, "the outage was not seen: the test injected nothing"
    for _, _, status, _, headers in load.outcomes:
        if status == 503:
            assert int(headers["Retry-After"]) > 0
    # the functions recovered by themselves: everything after a short grace period succeeds
    late = [o for o in load.outcomes if o[3] > restarted_at + 2.0]
    assert late and all(status in (200, 201) for _, _, status, _, _ in late), Counter(
        o[2] for o in late
    )
    assert services.is_alive(predict.pid) and services.is_alive(samples.pid)

    conn = db.connect(Settings(database_url=url))
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT request_id, count(*), array_agg(reading_index ORDER BY reading_index) "
            "FROM water.water_inferences WHERE sensor_id = 'restart' GROUP BY request_id"
        )
        logged = {key: (n, list(idx)) for key, n, idx in cur.fetchall()}
        cur.execute("SELECT sample_id FROM water.water_potability WHERE sensor_id = 'restart'")
        stored = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    for name, key, status, _, _ in load.outcomes:
        if name.startswith("p"):
            if status == 200:
                assert logged.get(key) == (3, [0, 1, 2]), key  # exactly its rows
            else:  # a 503 wrote nothing - or, if its commit landed as the link broke, all
                assert logged.get(key) in (None, (3, [0, 1, 2])), key
        elif status in (200, 201):
            assert key in stored, key
    # nothing stored that no client sent
    sent = {key for _, key, _, _, _ in load.outcomes}
    assert set(logged) <= sent and stored <= sent
    assert stopped_at < restarted_at


def test_model_server_killed_and_restarted_predict_503_then_recovers(
    function_factory, tmp_path: Path, database_url: str, tiny_model_dir: Path, clean_db
) -> None:
    left = deadline(120)
    home = tmp_path / "model-home"
    url = model_server.start_local(
        home, str(tiny_model_dir), "water-potability", "fault-1", tracking_uri=""
    )
    try:
        predict = function_factory(
            "predict",
            {"DATABASE_URL": database_url, "MODEL_SERVER_URL": url, "ENDPOINT_MODE": "local"},
        )
        body = {"sensor_id": "model-restart", "reading": GOOD_READING}
        assert post(predict.url, body, {"Idempotency-Key": "ms-before"})[0] == 200
        pid = services.running_pid(home, model_server.SERVICE)
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)
        end = time.monotonic() + 10
        while services.is_alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        status, headers, error = post(predict.url, body, {"Idempotency-Key": "ms-during"})
        assert (status, error["field"]) == (503, "endpoint") and int(headers["Retry-After"]) > 0
        left()
        assert (
            model_server.start_local(
                home, str(tiny_model_dir), "water-potability", "fault-1", tracking_uri=""
            )
            == url
        )  # same port
        status, _, answer = post(predict.url, body, {"Idempotency-Key": "ms-after"})
        assert status == 200 and answer["predictions"][0]["model_version"] == "fault-1"
        cur = clean_db.cursor()
        clean_db.rollback()
        cur.execute(
            "SELECT request_id FROM water.water_inferences "
            "WHERE sensor_id = 'model-restart' ORDER BY request_id"
        )
        assert [r[0] for r in cur.fetchall()] == ["ms-after", "ms-before"]  # 503: nothing
        clean_db.rollback()
    finally:
        services.stop(home, model_server.SERVICE)


class Stranger(http.server.BaseHTTPRequestHandler):
    """Another stack's model server: answers /health for a model that is not ours."""

    def do_GET(self) -> None:  # http.server's name
        body = json.dumps({"status": "ok", "model_name": "someone-else", "model_version": "9"})
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_model_server_restart_refuses_a_port_another_process_took(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """The soak benchmark once "restarted" the model server in no time: while ours was down,
    another stack's model server took the port, and the restart took its answer for ours."""
    stranger = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stranger)
    port = stranger.server_address[1]
    thread = threading.Thread(target=stranger.serve_forever, daemon=True)
    thread.start()
    home = tmp_path / "model-home"
    try:
        from potability import config

        config.update_env(home, MODEL_SERVER_URL=f"http://127.0.0.1:{port}")  # ours, before
        started = time.monotonic()
        # a stranger's answer on the port is not taken for our server
        with pytest.raises(RuntimeError, match=f"port {port} is held by another process"):
            model_server.start_local(
                home, str(tiny_model_dir), "water-potability", "mine-1", tracking_uri=""
            )
        assert time.monotonic() - started < 10  # refused before starting anything
        assert services.running_pid(home, model_server.SERVICE) is None
    finally:
        stranger.shutdown()
        stranger.server_close()
        services.stop(home, model_server.SERVICE)


def test_a_port_of_our_choosing_taken_while_ours_starts_is_given_up_for_another(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two test workers once started their model servers at the same moment, both on 8080 (free
    when each looked): one lost, and its session's fixture failed with every test on it. The
    race, replayed: the port start_local picks is free when it checks, and a stranger listens
    there before our server binds (loading the model takes it a second or more)."""
    contested = services.free_port()
    picked: list[int] = []
    real_free_port = services.free_port

    def pick(preferred: int = 0, host: str = "127.0.0.1") -> int:
        picked.append(contested if not picked else real_free_port(0, host))
        return picked[-1]

    monkeypatch.setattr(services, "free_port", pick)
    servers: list[http.server.ThreadingHTTPServer] = []

    def take_the_port() -> None:
        while not picked:
            time.sleep(0.01)
        time.sleep(0.2)  # after start_local's check, before our server binds
        servers.append(http.server.ThreadingHTTPServer(("127.0.0.1", contested), Stranger))
        servers[0].serve_forever()

    threading.Thread(target=take_the_port, daemon=True).start()
    home = tmp_path / "model-home"
    try:
        url = model_server.start_local(
            home, str(tiny_model_dir), "water-potability", "mine-2", tracking_uri=""
        )
        assert servers, "the stranger never took the port"
        assert picked[0] == contested and len(picked) == 2
        assert url == f"http://127.0.0.1:{picked[1]}" != f"http://127.0.0.1:{contested}"
        assert model_server.health(url)["model_version"] == "mine-2"
        from potability import config

        assert config.read_env(home)["MODEL_SERVER_URL"] == url
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        services.stop(home, model_server.SERVICE)
