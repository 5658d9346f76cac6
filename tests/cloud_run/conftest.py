"""Fixtures: the functions as shipped, behind the emulated Cloud Run front end
(cloud_run_support.py says what is built, started and overridden, and why)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import rendered_terraform
from cloud_run_support import (
    HUMAN_REGULATOR,
    OUTPUTS,
    REGULATOR,
    UV,
    VARIABLES,
    CloudRun,
    build_function_zip,
    frontend_module,
    start_function,
)

from potability.local import services


@pytest.fixture(scope="session")
def frontend() -> ModuleType:
    return frontend_module()


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return rendered_terraform.render(tmp_path_factory.mktemp("render"), OUTPUTS, VARIABLES)


@pytest.fixture(scope="session")
def deployed_source(rendered: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The function zip, unpacked, installed and compiled as the buildpack does."""
    work = tmp_path_factory.mktemp("function")
    archive = build_function_zip(rendered["source_files"], work / "function-source.zip")
    source = work / "workspace"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(source)
    venv = work / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "--quiet",
            "--require-hashes",
            "--python",
            str(venv / "bin" / "python"),
            "-r",
            str(source / "requirements.txt"),
        ],
        check=True,
        timeout=600,
    )
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "compileall", "-f", "-q", "."],
        cwd=source,
        check=True,
    )
    return source


@pytest.fixture(scope="session")
def cloud_run(
    rendered: dict[str, Any],
    deployed_source: Path,
    frontend: ModuleType,
    database_url: str,
    model_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CloudRun]:
    logs = tmp_path_factory.mktemp("function-logs")
    procs: list[subprocess.Popen[bytes]] = []
    upstream: dict[str, str] = {}
    envs: dict[str, dict[str, str]] = {}
    try:
        for key, fn in rendered["functions"].items():
            env = {
                **{k: str(v) for k, v in fn["env"].items()},
                "CLOUD_SQL_INSTANCE": "",
                "DB_IAM_AUTH": "false",
                "DATABASE_URL": database_url,
                "ENDPOINT_MODE": "local",
                "MODEL_SERVER_URL": model_server_url,
            }
            envs[key] = env
            proc, upstream[key] = start_function(deployed_source, fn, env, logs / f"{key}.log")
            procs.append(proc)
        for proc, url in zip(procs, upstream.values(), strict=True):
            services.wait_http(url, timeout=90, pid=proc.pid, any_answer=True)
        names = {key: fn["name"] for key, fn in rendered["functions"].items()}
        invokers: dict[str, set[str]] = {}
        for binding in rendered["invokers"]:
            assert binding["role"] == "roles/run.invoker"
            invokers.setdefault(binding["service"], set()).add(binding["member"])
        audiences = {
            key: frontend.service_urls(
                name,
                rendered_terraform.PROJECT,
                rendered_terraform.PROJECT_NUMBER,
                rendered_terraform.REGION,
            )
            for key, name in names.items()
        }
        issuer = frontend.Issuer()
        directory = frontend.Directory({"regulator@example.com": {REGULATOR, HUMAN_REGULATOR}})
        front = frontend.FrontEnd(
            [
                frontend.Service(
                    names[key],
                    upstream[key],
                    audiences[key],
                    frozenset(invokers.get(names[key], ())),
                )
                for key in names
            ],
            issuer.certs(),
            directory,
        )
        local = front.start()
        try:
            yield CloudRun(
                urls={key: local[names[key]] for key in names},
                audiences=audiences,
                issuer=issuer,
                front=front,
                env=envs,
                functions=rendered["functions"],
                invokers={key: frozenset(invokers.get(names[key], ())) for key in names},
                logs=logs,
                smoke_account=rendered["smoke_account"],
            )
        finally:
            front.stop()
    except BaseException:
        for path in sorted(logs.glob("*.log")):
            sys.stderr.write(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}\n")
        raise
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(deployed_source / "__pycache__", ignore_errors=True)
