"""``publish``: upload the compiled pipeline to Vertex AI's template registry (thin adapter).

Vertex AI runs a scheduled PipelineJob only from a template in the registry: the aiplatform v1
API's ``PipelineJob.templateUri`` says "Currently, only uri from Vertex Template Registry &
Gallery is supported", i.e. an Artifact Registry repository of format KFP
(``https://REGION-kfp.pkg.dev/PROJECT/REPO``). The upload follows Google's "Create, upload, and
use a pipeline template" guide: ``kfp.registry.RegistryClient(host=...).upload_pipeline(
file_name=..., tags=[...], extra_headers={"description": ...})``. The package is named after the
pipeline (``water-potability-training``); each upload is tagged with its content hash (a
version to pin or roll back to) and ``latest`` (what the schedule runs, terraform/main.tf).

The client is passed in, so tests assert the exact calls (tests/pipelines/test_publish.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.training_pipeline import PIPELINE_NAME

LATEST = "latest"
REGISTRY_HOST = re.compile(
    r"^https://(?P<region>[a-z0-9-]+)-kfp\.pkg\.dev/(?P<project>[a-z0-9-]+)"
    r"/(?P<repo>[a-z0-9-]+)$"
)


@dataclass(frozen=True)
class Published:
    host: str
    package: str
    version: str
    """``sha256:...``, Artifact Registry's id of the uploaded content."""
    tag: str
    """The content-hash tag of this upload."""

    @property
    def latest_uri(self) -> str:
        """What the schedule and ``submit`` run (``templateUri``)."""
        return f"{self.host}/{self.package}/{LATEST}"

    @property
    def pinned_uri(self) -> str:
        """This exact upload (for a rerun of an older pipeline)."""
        return f"{self.host}/{self.package}/{self.tag}"


def registry_host(template_uri: str) -> str:
    """``https://R-kfp.pkg.dev/P/REPO`` from a template URI ``.../PACKAGE/TAG`` or the host."""
    host = template_uri.rstrip("/")
    if not REGISTRY_HOST.match(host):
        host = host.rsplit("/", 2)[0]
    if not REGISTRY_HOST.match(host):
        raise ValueError(
            "expected an Artifact Registry KFP URL https://REGION-kfp.pkg.dev/"
            f"PROJECT/REPO[/PACKAGE/TAG], got {template_uri!r}"
        )
    return host


def content_tag(data: bytes) -> str:
    """The tag naming an upload by its content (tags may not start with ``sha256:``)."""
    return "sha256-" + hashlib.sha256(data).hexdigest()[:16]


def publish(client: Any, host: str, template: Path) -> Published:
    """Upload ``template`` tagged with its hash and ``latest``; make sure ``latest`` is it.

    Args:
        client: a ``kfp.registry.RegistryClient`` for ``host`` (or a fake).
        host: the repository URL (``registry_host``).
        template: the compiled pipeline YAML.
    """
    data = template.read_bytes()
    tag = content_tag(data)
    package, version = client.upload_pipeline(
        file_name=str(template),
        tags=[tag, LATEST],
        extra_headers={"description": f"{PIPELINE_NAME} ({tag})"},
    )
    if package != PIPELINE_NAME:
        raise RuntimeError(
            f"the registry stored the pipeline as {package!r}, the schedule runs "
            f"{PIPELINE_NAME!r}: is the template the training pipeline?"
        )
    # Re-uploading known content returns the existing version; make sure `latest` moved to it.
    current = client.get_tag(package_name=package, tag=LATEST)
    if not str(current.get("version", "")).endswith(f"/versions/{version}"):
        client.update_tag(package_name=package, version=version, tag=LATEST)
    return Published(host, package, version, tag)


def registry_client(host: str, credentials: Any = None) -> Any:
    """The real client (Application Default Credentials unless given)."""
    import google.auth
    from kfp.registry import RegistryClient

    if credentials is None:
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
    return RegistryClient(host=host, auth=credentials)
