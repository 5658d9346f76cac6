"""The floors of the house, read from the code: every import (lazy ones inside functions too)
of every first-party module, parsed with ``ast``, must point down or sideways, never up.

    core (potability/)  <  training/  <  components/  <  pipelines/ | functions/  <  cli

* core: the shared domain (``potability.*`` except ``potability.cli``) imports no other floor;
* training: the training library (``training.*``) imports only the core;
* components: the KFP step bodies over the training library. A step file never imports another
  step file; the step runtime and the deploy / vertex adapters import no step;
* pipelines and functions: the pipeline definition and local runs, the deployed functions -
  neither imports the other;
* cli: ``potability.cli``, the console command, is the top floor. It may use pipelines
  (``potability up`` starts the local scheduler) but only inside a command, lazily, so that
  ``potability`` does not load kfp and the components to answer ``potability env``; it never
  imports the deployed functions (it starts them as processes).

Inside the core, the sub-packages are rooms on floors of their own, and the same rule holds:

    base (potability/*.py: config, db, features, model, alerts, ...)  <  inference | gcp
        <  local  <  serving  <  governance  <  quality

(the inference log is written by everyone above it; the local stack supervises processes and
keeps the log's partitions; the model server starts itself through the local supervisor; model
control switches the served model; quality control reads the champion and the rollups).

And the shipped forms hold every floor they need: the project image (Dockerfile) and the
installed package (pyproject) carry each floor; the function zip (terraform/functions.tf)
carries every first-party package the functions import.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("potability", "training", "components", "pipelines", "functions")
CLI = "potability.cli"
FLOOR = {"core": 0, "training": 1, "components": 2, "pipelines": 3, "functions": 3, "cli": 4}
ADAPTERS = {"components.runtime", "components.vertex", "components.deploy_step", "components"}
"""What a step may import from components/ (deploy is both the deploy adapter and its step)."""


def floor_of(module: str) -> str | None:
    """The floor of a first-party module, None for anything else (stdlib, third party)."""
    top = module.split(".")[0]
    if module == CLI or module.startswith(CLI + "."):
        return "cli"
    return {
        "potability": "core",
        "training": "training",
        "components": "components",
        "pipelines": "pipelines",
        "functions": "functions",
    }.get(top)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, lazily - inside a function) for every import in ``path``. For ``from a
    import b`` the module is ``a.b`` when ``a/b.py`` exists (a submodule), else ``a``."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, lazy) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    sub = f"{child.module}.{alias.name}"
                    is_sub = (ROOT / Path(*sub.split("."))).with_suffix(".py").exists() or (
                        ROOT / Path(*sub.split(".")) / "__init__.py"
                    ).exists()
                    found.append((sub if is_sub else child.module, lazy))
            visit(child, inner)

    visit(tree, False)
    return found


def first_party_modules() -> dict[str, Path]:
    return {
        module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = first_party_modules()


def test_the_rule_sees_the_modules_and_their_imports() -> None:
    """The check cannot pass by reading nothing."""
    assert {
        "potability.config",
        "training.modeling",
        "components.train_step",
        "pipelines.local_scheduler",
        "functions.main",
        CLI,
    } <= set(MODULES)
    assert ("training.promotion", True) in imports(MODULES["components.runtime"])
    assert ("pipelines.local_scheduler", True) in imports(MODULES[CLI])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_runs_up_a_floor(module: str) -> None:
    here = floor_of(module)
    assert here is not None
    for target, lazy in imports(MODULES[module]):
        there = floor_of(target)
        if there is None or there == here:
            continue
        if here == "cli":
            assert there != "functions", f"{module} imports {target}: start functions as processes"
            assert there in ("core", "training") or lazy, (
                f"{module} imports {target} at module level: only inside a command"
            )
            continue
        assert FLOOR[there] < FLOOR[here], (
            f"{module} ({here}) imports {target} ({there}): an arrow up or sideways "
            f"(core < training < components < pipelines | functions < cli)"
        )


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("components.")))
def test_no_step_imports_another_step(module: str) -> None:
    for target, _ in imports(MODULES[module]):
        if target.startswith("components") and target != module:
            assert target in ADAPTERS, f"{module} imports the step {target}"
            if module in ADAPTERS:
                assert target in ADAPTERS, f"the adapter {module} imports the step {target}"


ROOMS = {
    "base": 0,
    "inference": 1,
    "gcp": 1,
    "local": 2,
    "serving": 3,
    "governance": 4,
    "quality": 5,
}


def room_of(module: str) -> str | None:
    """The core's room of a module (``potability.quality.job`` -> quality), None outside
    the core (and for the CLI, the top floor)."""
    parts = module.split(".")
    if floor_of(module) != "core":
        return None
    return parts[1] if len(parts) > 2 and parts[1] in ROOMS else "base"


def test_every_room_of_the_core_is_named() -> None:
    rooms = {p.parent.name for p in (ROOT / "potability").glob("*/__init__.py")} - {"_sql", "_data"}
    assert rooms == set(ROOMS) - {"base"}, "a sub-package of potability/ without a floor in ROOMS"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if room_of(m)))
def test_no_import_runs_up_a_room_of_the_core(module: str) -> None:
    here = room_of(module)
    for target, _ in imports(MODULES[module]):
        there = room_of(target)
        if there is None or there == here:
            continue
        assert ROOMS[there] < ROOMS[here], (
            f"{module} ({here}) imports {target} ({there}): an arrow up or sideways "
            f"(base < inference | gcp < local < serving < governance < quality)"
        )


def test_the_image_and_the_package_carry_every_floor() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", dockerfile, re.M))
    included = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]
    for package in PACKAGES:
        assert package in copied, f"the Dockerfile does not COPY {package}/"
        assert package in included, f"pyproject's packages do not list {package}"
    for init in sorted(ROOT.glob("*/**/__init__.py")):
        package = module_name(init)
        if package.split(".")[0] in PACKAGES:
            assert package in included, f"pyproject's packages do not list {package}"


def test_the_function_zip_carries_every_package_the_functions_import() -> None:
    zipped = re.search(
        r'fileset\(local\.repo_root, "\{([\w,]+)\}/\*\*"\)',
        (ROOT / "terraform" / "functions.tf").read_text(),
    )
    assert zipped, "terraform/functions.tf: the zip's fileset pattern was not found"
    packages = set(zipped.group(1).split(","))
    needed, todo = set(), [m for m in MODULES if m.startswith("functions.")]
    while todo:  # the first-party closure of what the functions import
        module = todo.pop()
        if module in needed:
            continue
        needed.add(module)
        todo.extend(t for t, _ in imports(MODULES[module]) if t in MODULES)
    missing = {m.split(".")[0] for m in needed} - packages
    assert not missing, f"the functions import {sorted(missing)}, which the zip leaves out"
