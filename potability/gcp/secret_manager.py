"""Secret Manager: how a pipeline step on Google Cloud learns the MLflow password.

The MLflow server on GCP runs MLflow's basic-auth app (terraform/mlflow.tf); its VM generates
the ``pipelines`` user's password into the secret ``<prefix>-mlflow-pipelines-password`` on
first boot, so the password never passes through Terraform state, a pipeline parameter or a
command line. The schedule passes the secret's *name* (``mlflow_credentials_secret``); each
step reads the latest version with its own service account (``secretAccessor`` on that one
secret) and hands it to MLflow's client through ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` (MLflow's documented variables for basic auth).

A thin adapter over one REST call, ``secretmanager.projects.secrets.versions.access``
(``GET https://secretmanager.googleapis.com/v1/{+name}:access``, answer
``{"payload": {"data": <base64>}}`` - Google's discovery document ``secretmanager.v1.json``);
the session is injected so the tests assert the exact request.
"""

from __future__ import annotations

import base64
import re
from typing import Any

ACCESS_URL = "https://secretmanager.googleapis.com/v1/{name}:access"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MLFLOW_PIPELINES_USER = "pipelines"
"""The MLflow user the pipeline steps log in as (created by the VM's startup script)."""

_SECRET = re.compile(r"^projects/[^/]+/secrets/[^/]+$")
_VERSION = re.compile(r"^projects/[^/]+/secrets/[^/]+/versions/[^/]+$")


def version_name(secret: str) -> str:
    """``projects/P/secrets/S`` -> its latest version's name; a version name stays as it is."""
    if _VERSION.match(secret):
        return secret
    if _SECRET.match(secret):
        return f"{secret}/versions/latest"
    raise ValueError(f"not a Secret Manager secret name (projects/P/secrets/S): {secret!r}")


def _default_session() -> Any:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=[SCOPE])
    return AuthorizedSession(credentials)


def access_secret(secret: str, session: Any = None, timeout: float = 30.0) -> str:
    """The secret's latest (or named) version as text; raises on any HTTP error.

    Args:
        secret: ``projects/P/secrets/S`` (Terraform's ``google_secret_manager_secret.id``) or a
            version name.
        session: an authorized ``requests``-like session (default: application default
            credentials - on Vertex AI the pipeline's service account).
        timeout: seconds before giving up.
    """
    url = ACCESS_URL.format(name=version_name(secret))
    response = (session or _default_session()).get(url, timeout=timeout)
    response.raise_for_status()
    return base64.b64decode(response.json()["payload"]["data"]).decode("utf-8")
