"""Sensors, regulators and the public, calling the functions as shipped (the function zip,
Terraform's environment) through the emulated Cloud Run front end (tests/cloud_run/conftest.py,
tools/cloud_run_frontend.py): who gets in, who is refused, by whom, and what is written."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from cloud_run_support import (
    HUMAN_REGULATOR,
    REGULATOR,
    SENSOR,
    SENSOR_IDS,
    STRANGER,
    UNBOUND_SENSOR,
    CloudRun,
    start_function,
)

from potability import db
from potability.config import Settings
from potability.features import SMOKE_SENSOR_PREFIX
from potability.gcp import smoke
from potability.local import services

pytestmark = pytest.mark.e2e

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


def rows(conn: db.Connection, sql: str, *args: object) -> list[tuple]:
    conn.rollback()
    cur = conn.cursor()
    cur.execute(sql, args)
    found = [tuple(row) for row in cur.fetchall()]
    conn.rollback()
    return found


def predict(cloud_run: CloudRun, sensor_id: str, token: str | None, **headers: str):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(
        cloud_run.urls["predict"],
        json={"sensor_id": sensor_id, "reading": READING},
        headers=headers,
        timeout=30,
    )


def add_sample(cloud_run: CloudRun, sample_id: str, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    sample = {
        **READING,
        "potability": 1,
        "sample_id": sample_id,
        "sampled_at": "2026-12-01T09:30:00Z",
        "sensor_id": SENSOR_IDS[0],
    }
    return requests.post(cloud_run.urls["samples"], json=sample, headers=headers, timeout=30)


def test_terraform_runs_the_identity_checks_behind_the_platform(cloud_run: CloudRun) -> None:
    """What the functions are started with is Terraform's own rendering, not a test's."""
    predict_env, samples_env = cloud_run.env["predict"], cloud_run.env["samples"]
    assert predict_env["ID_TOKEN_PLATFORM_VERIFIED"] == samples_env["ID_TOKEN_PLATFORM_VERIFIED"]
    assert predict_env["ID_TOKEN_PLATFORM_VERIFIED"] == "true"
    # Terraform's audiences are exactly the URLs Cloud Run gives the functions
    assert set(predict_env["PREDICT_ID_TOKEN_AUDIENCE"].split(",")) == set(
        cloud_run.audiences["predict"]
    )
    assert set(samples_env["SAMPLES_ID_TOKEN_AUDIENCE"].split(",")) == set(
        cloud_run.audiences["samples"]
    )


def test_a_bound_sensor_is_answered_and_logged_as_itself(cloud_run: CloudRun, clean_db) -> None:
    for audience in cloud_run.audiences["predict"]:  # both URLs the function answers on
        token = cloud_run.issuer.id_token(SENSOR, audience)
        answer = predict(cloud_run, SENSOR_IDS[0], token)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["potable"] in (0, 1)
    logged = rows(clean_db, "SELECT sensor_id, caller FROM water.water_inferences")
    assert logged == [(SENSOR_IDS[0], SENSOR)] * 2


def test_a_sensor_writing_another_sensors_id_is_refused_by_the_function(
    cloud_run: CloudRun, clean_db
) -> None:
    answer = predict(cloud_run, "plant-9-z", cloud_run.token(SENSOR, "predict"))
    assert answer.status_code == 403 and answer.json()["field"] == "sensor_id"
    assert rows(clean_db, "SELECT count(*) FROM water.water_inferences") == [(0,)]


def test_an_invoker_bound_to_no_sensor_is_refused_by_the_function(
    cloud_run: CloudRun, clean_db
) -> None:
    answer = predict(cloud_run, SENSOR_IDS[0], cloud_run.token(UNBOUND_SENSOR, "predict"))
    assert answer.status_code == 403 and answer.json()["field"] == "Authorization"
    assert "not bound to any sensor" in answer.json()["error"]


def test_callers_without_invoker_rights_never_reach_the_function(
    cloud_run: CloudRun, clean_db
) -> None:
    before = len(cloud_run.front.log)
    no_role = predict(cloud_run, SENSOR_IDS[0], cloud_run.token(STRANGER, "predict"))
    no_token = predict(cloud_run, SENSOR_IDS[0], None)
    regulator = predict(cloud_run, SENSOR_IDS[0], cloud_run.token(REGULATOR, "predict"))
    for answer in (no_role, no_token, regulator):
        assert answer.status_code == 403
        assert answer.headers["Content-Type"].startswith("text/html")  # Google's page
        assert "Your client does not have permission" in answer.text
    assert rows(clean_db, "SELECT count(*) FROM water.water_inferences") == [(0,)]
    assert cloud_run.front.log[before:] == [
        ("potability-predict", 403, STRANGER),
        ("potability-predict", 403, ""),
        ("potability-predict", 403, REGULATOR),
    ]


@pytest.mark.parametrize(
    "kind", ["other audience", "gcloud without --audiences", "expired", "foreign key"]
)
def test_tokens_google_cannot_verify_are_refused_by_the_front_end(
    cloud_run: CloudRun, frontend, kind: str, clean_db
) -> None:
    token = {
        "other audience": lambda: cloud_run.issuer.id_token(
            SENSOR, cloud_run.audiences["samples"][0]
        ),
        "gcloud without --audiences": lambda: cloud_run.issuer.id_token(SENSOR),
        "expired": lambda: cloud_run.token(
            SENSOR, "predict", iat=int(time.time()) - 7200, exp=int(time.time()) - 3600
        ),
        "foreign key": lambda: frontend.Issuer(cloud_run.issuer.kid).id_token(
            SENSOR, cloud_run.audiences["predict"][0]
        ),
    }[kind]()
    answer = predict(cloud_run, SENSOR_IDS[0], token)
    assert answer.status_code == 401, kind
    assert answer.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert rows(clean_db, "SELECT count(*) FROM water.water_inferences") == [(0,)]


def test_a_regulator_adds_a_sample_recorded_under_its_identity(
    cloud_run: CloudRun, clean_db
) -> None:
    token = cloud_run.token(REGULATOR, "samples")
    answer = add_sample(cloud_run, "lab-behind-run-1", token)
    assert answer.status_code == 201, answer.text
    assert answer.json()["submitted_by"] == REGULATOR
    again = add_sample(cloud_run, "lab-behind-run-1", token)  # read back: already there
    assert again.status_code in (200, 201) and "already" in again.text
    assert rows(
        clean_db,
        "SELECT submitted_by FROM water.water_potability WHERE sample_id = %s",
        "lab-behind-run-1",
    ) == [(REGULATOR,)]


def test_a_persons_plain_gcloud_token_passes_google_but_not_the_function(
    cloud_run: CloudRun, frontend, clean_db
) -> None:
    """`gcloud auth print-identity-token` without --audiences (gcloud's client id as audience):
    Cloud Run lets a person's token in, the function refuses it - the token was not minted
    for it, so it could be replayed from anywhere. The documented way is impersonation of a
    regulator service account with --audiences (terraform/README.md)."""
    token = cloud_run.issuer.id_token(HUMAN_REGULATOR, frontend.GCLOUD_CLIENT_ID)
    answer = add_sample(cloud_run, "lab-behind-run-3", token)
    assert answer.status_code == 401 and answer.json()["field"] == "Authorization"
    assert "audience" in answer.json()["error"]


def test_sensors_cannot_add_samples(cloud_run: CloudRun, clean_db) -> None:
    answer = add_sample(cloud_run, "lab-behind-run-2", cloud_run.token(SENSOR, "samples"))
    assert answer.status_code == 403 and "text/html" in answer.headers["Content-Type"]


def test_the_status_page_is_public(cloud_run: CloudRun, clean_db) -> None:
    answer = requests.get(cloud_run.urls["status"], params={"format": "json"}, timeout=30)
    assert answer.status_code == 200 and "model" in answer.json()


def test_the_status_page_renders_from_the_templates_in_the_zip(
    cloud_run: CloudRun, clean_db
) -> None:
    """The page's Jinja2 templates (functions/templates/) ship in Terraform's function zip."""
    answer = requests.get(cloud_run.urls["status"], headers={"Accept": "text/html"}, timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html")
    assert 'data-testid="inferences-24h-total"' in answer.text and "</html>" in answer.text


def test_the_function_gets_googles_trace_header(cloud_run: CloudRun, clean_db) -> None:
    """X-Cloud-Trace-Context reaches the function: its request log line names the trace."""
    answer = predict(cloud_run, SENSOR_IDS[1], cloud_run.token(SENSOR, "predict"))
    assert answer.status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [
            json.loads(line)
            for line in (cloud_run.logs / "predict.log").read_text().splitlines()
            if line.startswith("{")
        ]
        traced = [
            x for x in lines if x.get("caller") == SENSOR and "logging.googleapis.com/trace" in x
        ]
        if traced:
            break
        time.sleep(0.2)
    assert traced and traced[-1]["logging.googleapis.com/trace"].startswith(
        "projects/test-project/traces/"
    )


def test_a_token_in_x_serverless_authorization_is_refused_by_the_function(
    cloud_run: CloudRun, clean_db
) -> None:
    sent = predict(
        cloud_run,
        SENSOR_IDS[1],
        cloud_run.token(SENSOR, "predict"),
        **{"X-Serverless-Authorization": f"Bearer {cloud_run.token(SENSOR, 'predict')}"},
    )
    # Cloud Run checks that header and would pass Authorization unchecked: the function refuses
    assert sent.status_code == 401 and sent.json()["field"] == "X-Serverless-Authorization"


def test_a_request_over_cloud_runs_size_limit_is_refused_by_the_front_end(
    cloud_run: CloudRun, frontend
) -> None:
    body = b"x" * (frontend.MAX_REQUEST_BYTES + 1)
    answer = requests.post(
        cloud_run.urls["predict"],
        data=body,
        headers={"Authorization": f"Bearer {cloud_run.token(SENSOR, 'predict')}"},
        timeout=60,
    )
    assert answer.status_code == 413


class _GoogleCerts(http.server.BaseHTTPRequestHandler):
    """Google's certificate endpoint, as the old code fetched it (serves the test issuer)."""

    certs: dict[str, str] = {}

    def do_GET(self) -> None:  # http.server's name
        body = json.dumps(self.certs).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "public, max-age=3600")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


BEFORE_THE_FIX = "93d9ea1"
"""main before issue 28's auth fix: functions/auth.py sent the platform-stripped token to
signature verification."""


def test_the_former_auth_code_refuses_every_sensor_behind_cloud_run(
    cloud_run: CloudRun,
    frontend,
    deployed_source: Path,
    database_url: str,
    tmp_path: Path,
    clean_db,
) -> None:
    """The bug issue 28 found, reproduced through the emulator: the same function zip with the
    former functions/auth.py, google_id_token.py and callers.py (Google's certificate endpoint
    stood in for on loopback) refuses a correctly bound sensor with a valid token - 401."""
    source = tmp_path / "workspace"
    shutil.copytree(deployed_source, source, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "venv").symlink_to(deployed_source.parent / "venv")
    certs = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GoogleCerts)
    _GoogleCerts.certs = cloud_run.issuer.certs()
    threading.Thread(target=certs.serve_forever, daemon=True).start()
    for name in ("auth.py", "google_id_token.py", "callers.py"):
        old = subprocess.run(
            ["git", "show", f"{BEFORE_THE_FIX}:functions/{name}"],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        old = old.replace(
            "https://www.googleapis.com/oauth2/v1/certs",
            f"http://127.0.0.1:{certs.server_address[1]}/oauth2/v1/certs",
        )
        (source / "functions" / name).write_text(old)
    env = {k: v for k, v in cloud_run.env["predict"].items() if k != "ID_TOKEN_PLATFORM_VERIFIED"}
    fn = cloud_run.functions["predict"]
    proc, url = start_function(source, fn, env, tmp_path / "old-predict.log")
    try:
        services.wait_http(url, timeout=90, pid=proc.pid, any_answer=True)
        service = frontend.Service(
            fn["name"], url, cloud_run.audiences["predict"], cloud_run.invokers["predict"]
        )
        with frontend.FrontEnd([service], cloud_run.issuer.certs(), frontend.Directory()) as front:
            answer = requests.post(
                front.urls[fn["name"]],
                json={"sensor_id": SENSOR_IDS[0], "reading": READING},
                headers={"Authorization": f"Bearer {cloud_run.token(SENSOR, 'predict')}"},
                timeout=30,
            )
        assert answer.status_code == 401, answer.text
        assert answer.json()["field"] == "Authorization"  # the function's answer, not Google's
        assert rows(clean_db, "SELECT count(*) FROM water.water_inferences") == [(0,)]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        certs.shutdown()


def test_the_deploy_smoke_test_passes_against_the_functions_as_shipped(
    cloud_run: CloudRun, clean_db
) -> None:
    """``make gcp-deploy``'s last step (potability/gcp/smoke.py) as Terraform provisions its
    account: an invoker of predict and add_sample, bound to sensor id smoke-deploy. Tokens are
    minted for each function's Google URL, as ``gcloud auth print-identity-token
    --impersonate-service-account --audiences`` does; the rows it writes are smoke rows."""
    audience_of = {url: key for key, url in cloud_run.urls.items()}
    minted: list[str] = []

    def mint(url: str) -> str:
        minted.append(audience_of[url])
        return cloud_run.token(cloud_run.smoke_account, audience_of[url])

    checks = smoke.smoke(cloud_run.urls, mint)
    assert [(c.name, c.ok) for c in checks] == [
        ("predict", True),
        ("add_sample", True),
        ("status", True),
    ], [c.line() for c in checks]
    assert minted == ["predict", "samples"]
    conn = db.connect(Settings(database_url=cloud_run.env["predict"]["DATABASE_URL"]))
    try:
        logged = rows(conn, "SELECT DISTINCT sensor_id FROM water.water_inferences")
        sampled = rows(
            conn,
            "SELECT sensor_id, submitted_by FROM water.water_potability WHERE sample_id LIKE %s",
            "smoke-%",
        )
    finally:
        conn.close()
    assert logged == [(smoke.SMOKE_SENSOR,)]
    assert sampled == [(smoke.SMOKE_SENSOR, cloud_run.smoke_account)]
    assert smoke.SMOKE_SENSOR.startswith(SMOKE_SENSOR_PREFIX)
