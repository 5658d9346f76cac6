"""``make gcp-deploy`` with fake ``gcloud``, ``terraform``, ``git`` and ``curl`` first on PATH:
the exact sequence and arguments, the dry run printing everything and running only the
read-only commands, and a clear stop when a step fails."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import gcp_fakes
import pytest

from potability import cli
from potability.gcp import deploy as gcp_deploy

ROOT = Path(__file__).resolve().parents[3]
DIGEST = "sha256:" + "d" * 64
REPO = "europe-west1-docker.pkg.dev/demo/potability"
TEMPLATE = (
    "https://europe-west1-kfp.pkg.dev/demo/potability-pipelines/water-potability-training/latest"
)
BUILD_SA = "projects/demo/serviceAccounts/potability-image-build@demo.iam.gserviceaccount.com"
STAGING = "gs://demo-potability/cloudbuild/source"
METRICS = [
    "logging.googleapis.com/user/potability/alerts/pipeline_run_failed",
    "logging.googleapis.com/user/potability/alerts/vertex_pipeline_job_failed",
]
OUTPUTS = {
    "project_id": "demo",
    "region": "europe-west1",
    "image_repository": REPO,
    "pipeline_template_uri": TEMPLATE,
    "migration_job": "",
    "image_build_service_account": BUILD_SA,
    "build_source_staging_dir": STAGING,
    "alert_metric_types": METRICS,
    "function_urls": {
        "predict": "https://predict-x.a.run.app",
        "samples": "https://samples-x.a.run.app",
        "status": "https://status-x.a.run.app",
    },
    "smoke_service_account": "potability-smoke@demo.iam.gserviceaccount.com",
}

FAKE = r"""#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
log = os.environ["FAKE_LOG"]
with open(log, "a") as f:
    f.write(json.dumps([name, *args]) + "\n")
if name == os.environ.get("FAKE_FAIL"):
    sys.exit(3)
if name == "terraform" and "output" in args:
    outputs = json.load(open(os.environ["FAKE_OUTPUTS"]))
    applied = any('"apply"' in line for line in open(log))
    if applied:
        outputs["migration_job"] = "potability-migrate"
    print(json.dumps({{k: {{"value": v, "sensitive": False}} for k, v in outputs.items()}}))
elif name == "gcloud" and args[:4] == ["artifacts", "docker", "images", "describe"]:
    print("{digest}")
elif name == "gcloud" and args[:2] == ["auth", "print-identity-token"]:
    print("header.payload.signature")
elif name == "git":
    print("abc123def456")
elif name == "curl":
    print("status page: HTTP 200")
"""


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return gcp_fakes.install(
        tmp_path,
        monkeypatch,
        FAKE.format(python=sys.executable, digest=DIGEST),
        OUTPUTS,
        names=("gcloud", "terraform", "git", "curl", "fakepython"),
    )


EXPECTED = [
    ["terraform", "-chdir=terraform", "output", "-json"],
    ["git", "rev-parse", "--short=12", "HEAD"],
    # as the dedicated build account, logs to Cloud Logging only (cloudbuild.yaml)
    [
        "gcloud",
        "builds",
        "submit",
        "--project=demo",
        "--region=europe-west1",
        "--config=cloudbuild.yaml",
        f"--substitutions=_IMAGE={REPO}/potability:abc123def456",
        f"--service-account={BUILD_SA}",
        f"--gcs-source-staging-dir={STAGING}",
        ".",
    ],
    [
        "gcloud",
        "artifacts",
        "docker",
        "images",
        "describe",
        f"{REPO}/potability:abc123def456",
        "--project=demo",
        "--format=value(image_summary.digest)",
    ],
    # Vertex AI's service agent exists before the apply that grants it (service_agents.tf)
    [
        "gcloud",
        "beta",
        "services",
        "identity",
        "create",
        "--service=aiplatform.googleapis.com",
        "--project=demo",
    ],
    ["terraform", "-chdir=terraform", "apply", "-input=false", f"-var=image_digest={DIGEST}"],
    ["terraform", "-chdir=terraform", "output", "-json"],
    [
        "fakepython",
        "-m",
        "potability.cli",
        "pipeline",
        "publish",
        f"--host={TEMPLATE}",
        f"--image={REPO}/potability@{DIGEST}",
    ],
    [
        "gcloud",
        "run",
        "jobs",
        "execute",
        "potability-migrate",
        "--project=demo",
        "--region=europe-west1",
        "--wait",
    ],
    # the smoke test (potability/gcp/smoke.py): the smoke account's token per function
    *[
        [
            "gcloud",
            "auth",
            "print-identity-token",
            "--impersonate-service-account=potability-smoke@demo.iam.gserviceaccount.com",
            f"--audiences={url}",
            "--include-email",
        ]
        for url in ("https://predict-x.a.run.app", "https://samples-x.a.run.app")
    ],
]


class SmokeHttp:
    """The deployed functions as the smoke test sees them: answered, logged, read back."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def post(self, url: str, json: object, headers: dict[str, str], timeout: float) -> object:
        import requests

        key = f"{url} {headers.get('Idempotency-Key')} {json.get('sample_id')}"  # type: ignore[attr-defined]
        again = key in self.seen
        self.seen.add(key)
        answer = requests.models.Response()
        if "predict" in url:
            answer.status_code = 200
            answer._content = b'{"predictions": [{"potable": 0}]}'
            if again:
                answer.headers["Idempotent-Replayed"] = "true"
        else:
            answer.status_code = 200 if again else 201
            answer._content = b'{"status": "already_recorded"}' if again else b"{}"
        return answer

    def get(self, url: str, params: dict[str, str], timeout: float) -> object:
        import requests

        answer = requests.models.Response()
        answer.status_code, answer._content = 200, b'{"model": {"version": "1"}}'
        return answer


class FakeMonitoring:
    """Cloud Monitoring's metricDescriptors.get: 404 for the first ``unknown_for`` rounds."""

    def __init__(self, unknown_for: int = 0) -> None:
        self.urls: list[str] = []
        self.unknown_for = unknown_for

    def get(self, url: str, timeout: float) -> object:
        import requests

        self.urls.append(url)
        answer = requests.models.Response()
        answer.status_code = 404 if len(self.urls) <= self.unknown_for * len(METRICS) else 200
        answer._content = b"{}"
        return answer


@pytest.mark.integration
def test_deploy_runs_every_step_in_order_with_values_from_terraform(fakes: Path) -> None:
    lines: list[str] = []
    monitoring = FakeMonitoring()
    urls = gcp_deploy.deploy(
        gcp_deploy.Runner(out=lines.append),
        python="fakepython",
        monitoring_session=monitoring,
        http=SmokeHttp(),
    )
    assert len(monitoring.urls) == len(METRICS)
    assert gcp_fakes.calls(fakes) == EXPECTED
    assert urls == OUTPUTS["function_urls"]
    text = "\n".join(lines)
    for url in OUTPUTS["function_urls"].values():
        assert url in text
    assert "gcloud auth print-identity-token" in text


@pytest.mark.integration
def test_auto_approve_reaches_terraform_apply(fakes: Path) -> None:
    gcp_deploy.deploy(
        gcp_deploy.Runner(out=lambda _: None),
        tag="v7",
        auto_approve=True,
        python="fakepython",
        monitoring_session=FakeMonitoring(),
        http=SmokeHttp(),
    )
    apply = next(c for c in gcp_fakes.calls(fakes) if "apply" in c)
    assert apply[-1] == "-auto-approve" and apply[-2] == f"-var=image_digest={DIGEST}"
    assert ["git", "rev-parse", "--short=12", "HEAD"] not in gcp_fakes.calls(fakes)


@pytest.mark.integration
def test_dry_run_prints_every_command_and_runs_only_the_read_only_ones(
    fakes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["gcp", "deploy", "--dry-run"]) == 0
    assert gcp_fakes.calls(fakes) == [EXPECTED[0], EXPECTED[1]]  # terraform output, git rev-parse
    out = capsys.readouterr().out
    printed = [line.split("+ ", 1)[1] for line in out.splitlines() if "+ " in line]
    assert printed[:4] == [
        " ".join(EXPECTED[0]),
        " ".join(EXPECTED[1]),
        " ".join(EXPECTED[2]),
        shlex.join(EXPECTED[3]),
    ]
    assert (
        "terraform -chdir=terraform apply -input=false "
        "'-var=image_digest=<digest of the pushed image>'" in printed
    )
    assert any(
        p.endswith(
            f"-m potability.cli pipeline publish --host={TEMPLATE} "
            f"'--image={REPO}/potability@<digest of the pushed image>'"
        )
        for p in printed
    )
    assert (
        "gcloud run jobs execute '<migration_job output>' "
        "--project=demo --region=europe-west1 --wait" in printed
    )
    # 7 steps, the smoke account's two tokens; the smoke calls themselves are only described
    assert sum(line.startswith("(dry run) + ") for line in out.splitlines()) == 8
    assert sum("gcloud auth print-identity-token" in line for line in printed) == 2
    assert "(dry run) would call predict, add_sample and the status page" in out


@pytest.mark.integration
def test_make_gcp_deploy_dry_run_uses_the_module(fakes: Path) -> None:
    res = subprocess.run(
        ["make", "-n", "gcp-deploy", "DRY_RUN=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ".venv/bin/potability gcp deploy --dry-run" in res.stdout


@pytest.mark.integration
def test_a_failing_step_stops_with_the_command_and_nothing_after_it(
    fakes: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_FAIL", "gcloud")
    assert cli.main(["gcp", "deploy", "--tag", "v1"]) == 1
    assert [c[0] for c in gcp_fakes.calls(fakes)] == ["terraform", "gcloud"]
    assert "`gcloud builds submit --project=demo" in capsys.readouterr().err


@pytest.mark.integration
def test_missing_terraform_outputs_say_to_apply_first(
    fakes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "outputs.json").write_text(json.dumps({"project_id": "demo"}))
    assert cli.main(["gcp", "deploy"]) == 1
    err = capsys.readouterr().err
    assert (
        "lacks region, image_repository, pipeline_template_uri, image_build_service_account,"
        " build_source_staging_dir"
    ) in err
    assert "terraform apply" in err


def test_the_build_config_builds_the_dockerfile_and_logs_to_cloud_logging_only() -> None:
    """A user-specified build account cannot write to the default logs bucket (Google:
    build/docs/securing-builds/configure-user-specified-service-accounts): without
    CLOUD_LOGGING_ONLY (or a logs bucket) the build is refused."""
    import yaml

    config = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    assert config["options"]["logging"] == "CLOUD_LOGGING_ONLY"
    assert config["steps"] == [
        {"name": "gcr.io/cloud-builders/docker", "args": ["build", "--tag", "${_IMAGE}", "."]}
    ]
    assert config["images"] == ["${_IMAGE}"]


def test_alert_policies_wait_until_monitoring_knows_their_metrics() -> None:
    """A policy created right after its log-based metric is refused (404 "Cannot find
    metric(s)"): gcp-deploy polls metricDescriptors.get - the exact URL Google's monitoring v3
    discovery document describes - until every metric is known, before the apply that creates
    the policies."""
    import re

    from gcp_discovery import method

    spec = method("monitoring", "v3", "monitoring.projects.metricDescriptors.get")
    assert spec["httpMethod"] == "GET" and spec["path"] == "v3/{+name}"
    pattern = re.compile(spec["parameters"]["name"]["pattern"])
    monitoring, sleeps = FakeMonitoring(unknown_for=2), []
    gcp_deploy.wait_for_metrics(
        "demo", METRICS, monitoring, sleep=sleeps.append, out=lambda _: None
    )
    assert len(sleeps) == 2 and len(monitoring.urls) == 3 * len(METRICS)
    for url in monitoring.urls:
        assert url.startswith("https://monitoring.googleapis.com/v3/")
        assert pattern.match(url.removeprefix("https://monitoring.googleapis.com/v3/"))
    assert monitoring.urls[:2] == [
        f"https://monitoring.googleapis.com/v3/projects/demo/metricDescriptors/{m}" for m in METRICS
    ]
    clock = iter(range(0, 10_000, 100))
    with pytest.raises(gcp_deploy.DeployError, match="does not know"):
        gcp_deploy.wait_for_metrics(
            "demo",
            METRICS,
            FakeMonitoring(unknown_for=99),
            timeout=250,
            sleep=lambda _: None,
            clock=lambda: next(clock),
            out=lambda _: None,
        )
