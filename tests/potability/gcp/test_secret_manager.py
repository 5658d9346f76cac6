"""The Secret Manager adapter (how a GCP pipeline step learns the MLflow password): the exact
request it sends, checked against Google's discovery document, and what it makes of the answer.
The end-to-end login against a real MLflow basic-auth server is in
tests/terraform/test_mlflow_startup.py."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import gcp_discovery
import pytest
import requests

from components import runtime
from potability.gcp import secret_manager

SECRET = "projects/demo-project/secrets/potability-mlflow-pipelines-password"


class RecordingSession:
    def __init__(self, body: Any, status: int = 200) -> None:
        self.calls: list[tuple[str, float]] = []
        self.body, self.status = body, status

    def get(self, url: str, timeout: float) -> requests.Response:
        self.calls.append((url, timeout))
        answer = requests.models.Response()
        answer.status_code, answer._content = self.status, json.dumps(self.body).encode()
        answer.url = url
        return answer


def _payload(text: str) -> dict[str, Any]:
    return {
        "name": f"{SECRET}/versions/3",
        "payload": {"data": base64.b64encode(text.encode()).decode(), "dataCrc32c": "1"},
    }


def test_the_request_is_googles_versions_access() -> None:
    session = RecordingSession(_payload("s3cret-Ünïcode"))
    assert secret_manager.access_secret(SECRET, session) == "s3cret-Ünïcode"
    assert session.calls == [
        (
            "https://secretmanager.googleapis.com/v1/projects/demo-project/secrets/"
            "potability-mlflow-pipelines-password/versions/latest:access",
            30.0,
        )
    ]

    # The same URL as Google's description builds it: rootUrl + servicePath + path, with the
    # name matching the parameter's pattern; GET, and the answer is AccessSecretVersionResponse.
    doc = gcp_discovery.document("secretmanager", "v1")
    access = gcp_discovery.method(
        "secretmanager", "v1", "secretmanager.projects.secrets.versions.access"
    )
    assert access["httpMethod"] == "GET" and access["path"] == "v1/{+name}:access"
    name = f"{SECRET}/versions/latest"
    assert re.match(access["parameters"]["name"]["pattern"], name)
    assert session.calls[0][0] == doc["rootUrl"] + doc["servicePath"] + f"v1/{name}:access"
    response = doc["schemas"][access["response"]["$ref"]]["properties"]
    assert response["payload"]["$ref"] == "SecretPayload"
    assert doc["schemas"]["SecretPayload"]["properties"]["data"]["format"] == "byte"


def test_version_names() -> None:
    assert secret_manager.version_name(SECRET) == f"{SECRET}/versions/latest"
    assert secret_manager.version_name(f"{SECRET}/versions/7") == f"{SECRET}/versions/7"
    for bad in ("potability-mlflow-pipelines-password", "projects/p/secrets/", "gs://x/y", ""):
        with pytest.raises(ValueError, match="not a Secret Manager secret name"):
            secret_manager.version_name(bad)


def test_an_http_error_is_raised_not_swallowed() -> None:
    with pytest.raises(requests.HTTPError):
        secret_manager.access_secret(SECRET, RecordingSession({"error": {}}, status=403))


def test_a_step_logs_in_only_when_given_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    logins: list[str] = []
    monkeypatch.setattr(runtime, "mlflow_login", logins.append)
    runtime.step_settings({"url": "postgresql://u@h/db"}, mlflow_tracking_uri="http://127.0.0.1:9")
    assert logins == []
    settings = runtime.step_settings(
        {"url": "postgresql://u@h/db"},
        mlflow_tracking_uri="http://127.0.0.1:9",
        mlflow_credentials_secret=SECRET,
    )
    assert logins == [SECRET] and settings.mlflow_credentials_secret == SECRET


def test_login_sets_mlflows_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "")
    runtime.mlflow_login(SECRET, RecordingSession(_payload("pw-123")))
    import os

    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "pipelines"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "pw-123"
