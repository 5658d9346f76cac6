"""``publish``: the exact calls to the KFP template registry (a fake ``RegistryClient``; Google
is unreachable from tests), the real client's URLs for our repository, and the tag requests it
sends checked against Artifact Registry's discovery document."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import gcp_discovery
import pytest
from google.auth.credentials import AnonymousCredentials

from pipelines import publish
from pipelines.training_pipeline import compile_pipeline

HOST = "https://europe-west1-kfp.pkg.dev/demo/potability-pipelines"
VERSION = "sha256:" + "ab" * 32
PACKAGE_PATH = (
    "projects/demo/locations/europe-west1/repositories/potability-pipelines"
    "/packages/water-potability-training"
)


class FakeRegistry:
    def __init__(self, latest_version: str, package: str = "water-potability-training") -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.latest_version = latest_version
        self.package = package

    def upload_pipeline(self, **kwargs: Any) -> tuple[str, str]:
        self.calls.append(("upload_pipeline", kwargs))
        return self.package, VERSION

    def get_tag(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("get_tag", kwargs))
        return {
            "name": f"{PACKAGE_PATH}/tags/latest",
            "version": f"{PACKAGE_PATH}/versions/{self.latest_version}",
        }

    def update_tag(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("update_tag", kwargs))
        return {}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pipeline(
        tmp_path_factory.mktemp("p") / "training_pipeline.yaml",
        image="europe-west1-docker.pkg.dev/demo/potability/potability@sha256:" + "c" * 64,
    )


def test_publish_uploads_tagged_with_its_hash_and_latest(template: Path) -> None:
    fake = FakeRegistry(latest_version=VERSION)
    result = publish.publish(fake, HOST, template)
    tag = "sha256-" + hashlib.sha256(template.read_bytes()).hexdigest()[:16]
    assert fake.calls == [
        (
            "upload_pipeline",
            {
                "file_name": str(template),
                "tags": [tag, "latest"],
                "extra_headers": {"description": f"water-potability-training ({tag})"},
            },
        ),
        ("get_tag", {"package_name": "water-potability-training", "tag": "latest"}),
    ]
    assert result.latest_uri == f"{HOST}/water-potability-training/latest"
    assert result.pinned_uri == f"{HOST}/water-potability-training/{tag}"
    # The URI the schedule (terraform/main.tf) and submit use passes Google's templateUri rule.
    assert (
        gcp_discovery.DESCRIPTION_RULES[("GoogleCloudAiplatformV1PipelineJob", "templateUri")][1](
            result.latest_uri
        )
        is None
    )


def test_republishing_known_content_moves_latest_back_to_it(template: Path) -> None:
    fake = FakeRegistry(latest_version="sha256:" + "99" * 32)
    publish.publish(fake, HOST, template)
    assert fake.calls[-1] == (
        "update_tag",
        {"package_name": "water-potability-training", "version": VERSION, "tag": "latest"},
    )


def test_a_template_of_another_pipeline_is_refused(template: Path) -> None:
    with pytest.raises(RuntimeError, match="stored the pipeline as 'other'"):
        publish.publish(FakeRegistry(VERSION, package="other"), HOST, template)


@pytest.mark.parametrize(
    ("given", "host"),
    [
        (HOST, HOST),
        (HOST + "/", HOST),
        (f"{HOST}/water-potability-training/latest", HOST),
    ],
)
def test_registry_host_from_the_template_uri(given: str, host: str) -> None:
    assert publish.registry_host(given) == host


@pytest.mark.parametrize(
    "bad",
    ["gs://b/pipelines/training_pipeline.yaml", "https://europe-west1-docker.pkg.dev/demo/r", ""],
)
def test_registry_host_refuses_what_is_not_a_kfp_repository(bad: str) -> None:
    with pytest.raises(ValueError, match="Artifact Registry KFP URL"):
        publish.registry_host(bad)


def test_the_real_client_sends_tag_requests_artifact_registry_accepts(
    template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real ``RegistryClient`` with HTTP faked at ``requests``: the URLs it calls for our
    repository, and its tag body validated against artifactregistry v1's Tag schema."""
    import kfp.registry.registry_client as rc

    sent: list[tuple[str, str, Any]] = []

    class Response:
        def __init__(self, text: str) -> None:
            self.text = text

        def raise_for_status(self) -> None:
            pass

        def json(self) -> Any:
            return json.loads(self.text)

    def post(
        url: str, data: Any = None, headers: Any = None, files: Any = None, auth: Any = None
    ) -> Response:
        sent.append(("post", url, data))
        return Response(f"water-potability-training/{VERSION}")

    def get(url: str, data: Any = None, headers: Any = None, auth: Any = None) -> Response:
        sent.append(("get", url, data))
        return Response(json.dumps({"name": "t", "version": f"{PACKAGE_PATH}/versions/old"}))

    def patch(url: str, data: Any = None, headers: Any = None, auth: Any = None) -> Response:
        sent.append(("patch", url, data))
        return Response("{}")

    monkeypatch.setattr(rc.requests, "post", post)
    monkeypatch.setattr(rc.requests, "get", get)
    monkeypatch.setattr(rc.requests, "patch", patch)
    client = publish.registry_client(HOST, credentials=AnonymousCredentials())
    publish.publish(client, HOST, template)
    assert [(m, u) for m, u, _ in sent] == [
        ("post", HOST),
        ("get", f"https://artifactregistry.googleapis.com/v1/{PACKAGE_PATH}/tags/latest"),
        (
            "patch",
            f"https://artifactregistry.googleapis.com/v1/{PACKAGE_PATH}/tags/latest"
            "?updateMask=version",
        ),
    ]
    assert sent[0][2]["tags"].endswith(",latest")
    tag_body = json.loads(sent[2][2])
    assert tag_body["version"] == f"{PACKAGE_PATH}/versions/{VERSION}"
    gcp_discovery.validate("artifactregistry", "v1", "Tag", tag_body)
    assert (
        gcp_discovery.method(
            "artifactregistry",
            "v1",
            "artifactregistry.projects.locations.repositories.packages.tags.patch",
        )["request"]["$ref"]
        == "Tag"
    )
