"""The project image, tested without docker: its environment built exactly as the Dockerfile
builds it, then every command the cloud runs, run from that environment alone.

The Dockerfile is read, not copied: its ``COPY`` sources go into a scratch build context and its
``RUN uv sync ...`` lines run there in order, with their own flags (``--frozen --no-dev
--no-editable``) and ``UV_PROJECT_ENVIRONMENT`` pointed at a scratch venv; uv's cache is the warm
one of ``make env``. Two differences, neither changes what is installed: no bytecode is compiled
ahead (``UV_COMPILE_BYTECODE``; the processes below compile what they import) and uv links files
from its cache instead of copying them (``UV_LINK_MODE``). Then the build context is DELETED and
each command runs from an empty directory with a clean environment, so anything that still reads
the source checkout or the build context fails here:

- the migration job: ``args`` of terraform/migrate.tf against a fresh database - every migration
  of sql/ applied, the data set seeded, nothing done on the second run (issue 19: the installed
  copy once found no sql/ and reported "up to date");
- a pipeline step through KFP's executor entry point, as the compiled YAML states it (command and
  args of ``exec-export-component``), reading the rows the job seeded;
- the model server as the image's ``CMD`` starts it, answering the Vertex health route.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from potability import db, migrations
from potability.config import Settings
from potability.local import services
from potability.seed import load_dataset

ROOT = Path(__file__).resolve().parent.parent
UV = ROOT / ".venv-uv" / "bin" / "uv"
IMAGE = "europe-west1-docker.pkg.dev/demo/potability/potability@sha256:" + "0" * 64
# What the .dockerignore keeps out of the context, as far as the copied folders are concerned.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "training_pipeline.yaml")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def migration_job_args() -> list[str]:
    """The container args of the Cloud Run migration job (terraform/migrate.tf)."""
    match = re.search(
        r"^\s*args\s*=\s*(\[[^\]]*\])",
        (ROOT / "terraform" / "migrate.tf").read_text(),
        re.MULTILINE,
    )
    assert match, "terraform/migrate.tf has no args = [...]"
    return json.loads(match[1])


class ImageEnv:
    def __init__(self, venv: Path, workdir: Path) -> None:
        self.venv, self.workdir = venv, workdir
        self.bin = venv / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment: the image's PATH (venv first), nothing pointing at the checkout."""
        keep = {
            k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
        }
        return {
            **keep,
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "PYTHONUNBUFFERED": "1",
            "POTABILITY_HOME": str(self.workdir / "home"),
            **extra,
        }

    def run(self, argv: list[str], timeout: float = 300, **extra: str) -> str:
        res = subprocess.run(
            argv,
            cwd=self.workdir,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert res.returncode == 0, (
            f"{shlex.join(argv)}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
        )
        return res.stdout


@pytest.fixture(scope="module")
def image_env(tmp_path_factory: pytest.TempPathFactory) -> ImageEnv:
    assert UV.exists(), f"{UV} is missing: run `make env`"
    scratch = tmp_path_factory.mktemp("image")
    context, venv, workdir = scratch / "app", scratch / "venv", scratch / "elsewhere"
    context.mkdir()
    workdir.mkdir()
    uv_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV", "PYTHON"))
    }
    uv_env.update(
        UV_PROJECT_ENVIRONMENT=str(venv),
        UV_PYTHON=sys._base_executable,
        UV_LINK_MODE="hardlink",
        UV_COMPILE_BYTECODE="0",
    )
    syncs: list[str] = []
    for word, rest in dockerfile_instructions():
        if word == "COPY":
            *sources, _dest = rest.split()
            for source in sources:
                src = ROOT / source.rstrip("/")
                if src.is_dir():
                    shutil.copytree(src, context / src.name, ignore=IGNORED)
                else:
                    shutil.copy2(src, context / src.name)
        elif word == "RUN" and rest.startswith("uv sync"):
            argv = [str(UV), *shlex.split(rest)[1:]]
            res = subprocess.run(
                argv, cwd=context, env=uv_env, capture_output=True, text=True, timeout=900
            )
            assert res.returncode == 0, f"{shlex.join(argv)}:\n{res.stderr}"
            syncs.append(rest)
    assert len(syncs) == 2, "the Dockerfile installs dependencies, then the project: two uv syncs"
    assert {"--frozen", "--no-dev", "--no-editable"} <= set(syncs[-1].split())
    shutil.rmtree(context)  # nothing may need the build context (or the checkout) from now on
    return ImageEnv(venv, workdir)


def test_the_image_runs_pipeline_steps_as_root() -> None:
    """Every pipeline step writes under Vertex's /gcs mount; non-root writes there are not
    documented (kubeflow/pipelines #5673): the image keeps the root user (Dockerfile)."""
    users = [rest for word, rest in dockerfile_instructions() if word == "USER"]
    assert users in ([], ["root"]), users


def test_the_image_runs_from_elsewhere_than_its_build_directory() -> None:
    workdirs = [rest for word, rest in dockerfile_instructions() if word == "WORKDIR"]
    assert workdirs[0] == "/app" and workdirs[-1] != "/app", (
        "the image must not run in its build context: `python -m` would import the source copy"
    )


@pytest.mark.e2e
def test_every_package_and_its_data_is_installed(image_env: ImageEnv) -> None:
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))
    out = image_env.run(
        [
            "python",
            "-c",
            (
                "import importlib, json, sys\n"
                f"names = {packages!r}\n"
                "from potability import migrations, seed\n"
                "from functions import status_page\n"
                "print(json.dumps({'files': "
                "{n: importlib.import_module(n).__file__ for n in names},"
                " 'sql': str(migrations.SQL_DIR), 'csv': str(seed.DATA_CSV),"
                " 'templates': sorted(p.name for p in status_page.TEMPLATES.glob('status/*')),"
                " 'outage_page': status_page.render_error_html(5),"
                " 'migrations': [m.version for m in migrations.discover()], 'path': sys.path}))"
            ),
        ]
    )
    found = json.loads(out)
    site = str(image_env.venv)
    assert all(f.startswith(site) for f in found["files"].values()), found["files"]
    assert found["sql"].startswith(site) and found["csv"].startswith(site)
    assert found["migrations"] == [m.version for m in migrations.discover(ROOT / "sql")]
    # the status page's templates are package data (pyproject.toml), rendered from site-packages
    shipped = sorted(p.name for p in (ROOT / "functions" / "templates" / "status").iterdir())
    assert found["templates"] == shipped and "try again in 5 seconds" in found["outage_page"]
    assert not any(p.startswith(str(ROOT)) for p in found["path"]), found["path"]


@pytest.fixture(scope="module")
def job_runs(image_env: ImageEnv, module_fresh_db: str) -> list[str]:
    """The migration job's command, run twice against a fresh database."""
    argv = migration_job_args()
    return [image_env.run(argv, DATABASE_URL=module_fresh_db) for _ in range(2)]


@pytest.mark.e2e
def test_the_migration_job_applies_every_migration_and_seeds_once(
    job_runs: list[str], module_fresh_db: str
) -> None:
    versions = [m.version for m in migrations.discover(ROOT / "sql")]
    first, second = job_runs
    assert f"applied: {', '.join(versions)}" in first
    rows = len(load_dataset())
    assert f"seeded {rows} new rows" in first
    assert "applied: none (up to date)" in second and "seeded 0 new rows" in second
    conn = db.connect(Settings(database_url=module_fresh_db))
    try:
        assert migrations.pending(conn, ROOT / "sql") == []
        cur = conn.cursor()
        cur.execute(
            "SELECT count(*), count(DISTINCT sample_id) FROM water.water_potability "
            "WHERE source = 'seed'"
        )
        assert list(cur.fetchone()) == [rows, rows]
        cur.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'water'"
        )
        assert [r[0] for r in cur.fetchall()] == ["water_owner"]
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.e2e
def test_a_pipeline_step_runs_through_kfp_executor_as_compiled(
    image_env: ImageEnv, job_runs: list[str], module_fresh_db: str, tmp_path: Path
) -> None:
    from pipelines.training_pipeline import compile_pipeline

    spec = yaml.safe_load(compile_pipeline(tmp_path / "pipeline.yaml", IMAGE).read_text())
    container = spec["deploymentSpec"]["executors"]["exec-export-component"]["container"]
    assert container["image"] == IMAGE
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    run_id = "water-potability-training-image-test"
    executor_input = {
        "inputs": {
            "parameterValues": {
                "run_id": run_id,
                "database": {
                    "url": module_fresh_db,
                    "cloud_sql_instance": "",
                    "name": "",
                    "user": "",
                },
            }
        },
        "outputs": {
            "artifacts": {
                "dataset": {
                    "artifacts": [
                        {
                            "name": "dataset",
                            "type": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"},
                            "uri": str(outputs / "dataset"),
                            "metadata": {},
                        }
                    ]
                }
            },
            "parameters": {
                "rows": {"outputFile": str(outputs / "rows")},
                "sha256": {"outputFile": str(outputs / "sha256")},
            },
            "outputFile": str(outputs / "executor_output.json"),
        },
    }
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    assert all("{{" not in a for a in args), args
    image_env.run([*container["command"], *args])
    rows = len(load_dataset())
    executor_output = json.loads((outputs / "executor_output.json").read_text())
    assert executor_output["parameterValues"]["rows"] == rows
    assert len((outputs / "dataset").read_text().splitlines()) == rows + 1  # header
    conn = db.connect(Settings(database_url=module_fresh_db))
    try:
        cur = conn.cursor()
        cur.execute("SELECT training_rows FROM water.pipeline_runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone()[0] == rows
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.e2e
def test_the_model_server_answers_health_as_the_image_cmd_starts_it(
    image_env: ImageEnv, tiny_model_dir: Path
) -> None:
    cmd = [rest for word, rest in dockerfile_instructions() if word == "CMD"][-1]
    env = {
        k: v
        for word, rest in dockerfile_instructions()
        if word == "ENV"
        for k, v in (item.split("=", 1) for item in shlex.split(rest))
    }
    port = services.free_port()
    proc = subprocess.Popen(
        json.loads(cmd),
        cwd=image_env.workdir,
        env=image_env.env(
            AIP_HTTP_PORT=str(port),
            AIP_HEALTH_ROUTE=env["AIP_HEALTH_ROUTE"],
            AIP_PREDICT_ROUTE=env["AIP_PREDICT_ROUTE"],
            AIP_STORAGE_URI=str(tiny_model_dir),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}{env['AIP_HEALTH_ROUTE']}"
        deadline, answer = time.monotonic() + 180, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    answer = (response.status, json.loads(response.read()))
                    break
            except OSError:
                time.sleep(0.5)
        assert answer is not None, (
            f"no /health answer (exit {proc.poll()}): "
            f"{proc.stderr.read() if proc.poll() is not None else ''}"
        )
        assert answer[0] == 200
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
