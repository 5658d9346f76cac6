"""Fixtures for the offline Terraform checks (terraform/ against schema-only stand-in providers).

These tests run with the project's pytest but drive external tools by subprocess:
``terraform`` (on PATH), ``.venv-tf`` (stand-in providers) and ``.venv-checkov``,
both created by ``bash tools/setup-tf-tools.sh``. A missing tool skips the test with that
instruction on a developer's machine and fails it under CI (``require_tool``, tests/conftest.py).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "terraform"
SCHEMA_TOOLS = ROOT / "tools" / "terraform_schema"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"tf_tools_{name}", SCHEMA_TOOLS / f"{name}.py")
    assert spec and spec.loader, f"cannot load {name}.py from {SCHEMA_TOOLS}"
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def offline() -> ModuleType:
    return _load("offline_terraform")


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    return _load("generate_schema")


@pytest.fixture(scope="session")
def terraform_bin(require_tool: Callable[..., str]) -> str:
    return require_tool(
        "terraform",
        "install Terraform >= 1.11 (terraform/versions.tf) from HashiCorp's release zip or apt "
        "repository; no package registry here has it",
    )


@pytest.fixture(scope="session")
def stand_ins(offline: ModuleType, require_tool: Callable[..., str]) -> str:
    """The Python of ``.venv-tf``, which runs the schema-only stand-in providers."""
    return require_tool(
        "the stand-in providers' .venv-tf",
        "run `bash tools/setup-tf-tools.sh`",
        path=offline.TF_VENV_PYTHON,
    )


@pytest.fixture(scope="session")
def initialised(
    offline: ModuleType,
    terraform_bin: str,
    stand_ins: str,
    tmp_path_factory: pytest.TempPathFactory,
):
    """A scratch copy of terraform/ (plus the repo folders it reads), `terraform init`-ed
    offline."""
    try:
        tf = offline.OfflineTerraform(tmp_path_factory.mktemp("tf"), TF_DIR)
        tf.init()
    except offline.OfflineError as exc:
        pytest.fail(str(exc))
    yield tf
    tf.close()


@pytest.fixture(scope="session")
def checkov_bin(require_tool: Callable[..., str]) -> Path:
    return Path(
        require_tool(
            "checkov",
            "run `bash tools/setup-tf-tools.sh` (checkov lives in its own venv)",
            path=ROOT / ".venv-checkov" / "bin" / "checkov",
        )
    )


def tf_files() -> list[Path]:
    return sorted(TF_DIR.glob("*.tf"))


__all__ = ["ROOT", "TF_DIR", "SCHEMA_TOOLS", "tf_files", "shutil"]
