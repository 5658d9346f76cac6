"""``make gcp-model``: the exact ``gcloud run jobs execute`` command for the operators' Cloud Run
job, its ``--args`` split back by gcloud's own list parser (the Cloud SDK's ``ArgList``, the type
of ``gcloud run jobs execute --args``) whatever the reason contains, and the run with fake
``terraform`` and ``gcloud`` first on PATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gcp_fakes
import pytest

from potability import cli
from potability.gcp import model_job
from potability.gcp.deploy import DeployError

ROOT = Path(__file__).resolve().parents[3]
SDK = Path("/usr/lib/google-cloud-sdk")
OUTPUTS = {"project_id": "demo", "region": "europe-west1", "model_job": "potability-model"}

FAKE = r"""#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps([name, *sys.argv[1:]]) + "\n")
if name == "terraform":
    outputs = json.load(open(os.environ["FAKE_OUTPUTS"]))
    print(json.dumps({{k: {{"value": v, "sensitive": False}} for k, v in outputs.items()}}))
elif os.environ.get("FAKE_JOB_EXIT"):
    sys.exit(int(os.environ["FAKE_JOB_EXIT"]))
"""


def test_the_command_executes_the_job_with_the_operators_arguments_and_waits() -> None:
    cmd = model_job.execute_command(
        "demo", "europe-west1", "potability-model", ["rollback", "--reason", "precision fell"]
    )
    assert cmd == [
        "gcloud",
        "run",
        "jobs",
        "execute",
        "potability-model",
        "--project=demo",
        "--region=europe-west1",
        "--args=potability,model,rollback,--reason,precision fell",
        "--wait",
    ]


def test_a_reason_with_commas_switches_to_a_delimiter_it_does_not_contain() -> None:
    assert model_job.gcloud_list(["a", "b, c"]) == "^|^a|b, c"
    assert model_job.gcloud_list(["a|b", "c, d"]) == "^~^a|b~c, d"
    with pytest.raises(DeployError, match="delimiter"):
        model_job.gcloud_list([",", "".join(model_job.DELIMITERS)])


def test_nothing_to_do_is_refused_before_anything_runs() -> None:
    with pytest.raises(DeployError, match="say what to do"):
        model_job.execute_command("demo", "europe-west1", "potability-model", [])


def _sdk_python() -> Path:
    python = SDK / "platform" / "bundledpythonunix" / "bin" / "python3"
    if not (SDK / "lib" / "googlecloudsdk" / "calliope" / "arg_parsers.py").exists():
        pytest.skip("the Google Cloud SDK is not installed at /usr/lib/google-cloud-sdk")
    return python if python.exists() else Path(sys.executable)


REASONS = [
    "live precision fell to 41% on lab samples",
    "lab review, week 48: precision 0.41, recall 0.62",
    "a|b, c~d",
    "quotes ' and \" and ^carets^",
]


@pytest.mark.integration  # starts a process (make, gcloud's parser, fake tools)
@pytest.mark.parametrize("reason", REASONS)
def test_gcloud_splits_the_args_back_into_exactly_the_command(reason: str, tmp_path: Path) -> None:
    """The value goes through the SDK's own ``arg_parsers.ArgList`` (command_lib/run/flags.py
    declares ``--args`` with it): what the container receives is the operator's command."""
    python = _sdk_python()
    args = ["potability", "model", "rollback", "4", "--reason", reason]
    value = model_job.gcloud_list(args)
    home = tmp_path / "gcloud"
    res = subprocess.run(
        [
            str(python),
            "-c",
            "import json, sys\n"
            "from googlecloudsdk.calliope import arg_parsers\n"
            "print(json.dumps(arg_parsers.ArgList()(sys.argv[1])))",
            value,
        ],
        capture_output=True,
        text=True,
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "CLOUDSDK_CONFIG": str(home),
            "PYTHONPATH": f"{SDK / 'lib'}:{SDK / 'lib' / 'third_party'}",
        },
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == args


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return gcp_fakes.install(tmp_path, monkeypatch, FAKE.format(python=sys.executable), OUTPUTS)


@pytest.mark.integration  # starts a process (make, gcloud's parser, fake tools)
def test_make_gcp_model_runs_the_job_from_terraforms_outputs(
    fakes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["gcp", "model", "hold", "--reason", "lab review"]) == 0
    assert gcp_fakes.calls(fakes) == [
        ["terraform", "-chdir=terraform", "output", "-json"],
        model_job.execute_command(
            "demo", "europe-west1", "potability-model", ["hold", "--reason", "lab review"]
        ),
    ]
    assert 'resource.labels.job_name="potability-model"' in capsys.readouterr().out


@pytest.mark.integration  # starts a process (make, gcloud's parser, fake tools)
def test_a_refused_or_failed_command_fails_with_where_its_output_is(
    fakes: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_JOB_EXIT", "1")  # gcloud: the execution failed
    assert cli.main(["gcp", "model", "rollback", "--reason", "x"]) == 1
    out = capsys.readouterr()
    assert "gcloud run jobs execute" in out.err and "gcloud logging read" in out.out


@pytest.mark.integration  # starts a process (make, gcloud's parser, fake tools)
def test_without_the_job_it_says_what_creates_it(
    fakes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "outputs.json").write_text(json.dumps({**OUTPUTS, "model_job": ""}))
    assert cli.main(["gcp", "model", "status"]) == 1
    assert "operators" in capsys.readouterr().err
    assert len(gcp_fakes.calls(fakes)) == 1  # only terraform output


@pytest.mark.integration  # starts a process (make, gcloud's parser, fake tools)
def test_make_gcp_model_passes_the_arguments_through() -> None:
    res = subprocess.run(
        ["make", "-n", "gcp-model", "ARGS=rollback --reason x", "DRY_RUN=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ".venv/bin/potability gcp model --dry-run rollback --reason x" in (res.stdout)
