"""The Cloud Functions' hand-kept requirements.txt covers what their code imports, at the
versions we test with.

Terraform zips ``potability/``, ``functions/`` and ``sql/`` with
``terraform/function_source/requirements.txt``; the buildpack installs only that file. A module
the functions import but the file does not provide would first fail in production, so: every
third-party import (also the lazy ones inside functions) of every module ``functions.main``
loads must come from a distribution the requirements pull in, and every range must admit the
version ``uv.lock`` pins (the one the tests ran).
"""

from __future__ import annotations

import ast
import glob
import os
import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "terraform" / "function_source" / "requirements.txt"
FIRST_PARTY = {"potability", "functions", "components", "pipelines"}


def requirements() -> list[Requirement]:
    lines = REQUIREMENTS.read_text().splitlines()
    return [Requirement(line) for line in (x.split("#")[0].strip() for x in lines) if line]


def locked_versions() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {canonicalize_name(p["name"]): p["version"] for p in lock["package"] if "version" in p}


def loaded_source_files() -> list[Path]:
    """The first-party files ``functions.main`` (the deployed entry point) loads."""
    code = ("import sys, functions.main\n"
            "for m in list(sys.modules.values()):\n"
            "    f = getattr(m, '__file__', None)\n"
            "    if f: print(f)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.split()
    files = {Path(f).resolve() for f in out}
    return sorted(f for f in files if f.is_relative_to(ROOT) and ".venv" not in f.parts)


def imported_modules(files: list[Path]) -> set[str]:
    """Every module imported anywhere in ``files`` (lazy imports included); for ``from a
    import b`` both ``a`` and ``a.b`` (``b`` may be a submodule, e.g. ``google.cloud``)."""
    names: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


NAMESPACE = "<namespace package>"


def module_file(module: str) -> str | None:
    """The installed file of ``module``'s longest non-namespace prefix, found on disk (importing
    google.cloud.aiplatform just to ask where it lives takes seconds)."""
    roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    parts = module.split(".")
    if any(os.path.isdir(f"{root}/{'/'.join(parts)}") and not os.path.exists(
            f"{root}/{'/'.join(parts)}/__init__.py") for root in roots):
        return NAMESPACE
    for n in range(len(parts), 0, -1):
        base = "/".join(parts[:n])
        for root in roots:
            for candidate in (f"{root}/{base}/__init__.py", f"{root}/{base}.py"):
                if os.path.exists(candidate):
                    return os.path.normpath(candidate)
            extensions = glob.glob(f"{root}/{base}.*.so")
            if extensions:
                return os.path.normpath(extensions[0])
    return None


def distributions_of(modules: set[str]) -> set[str]:
    """The installed distributions whose files provide the third-party ``modules``."""
    owner_of_file: dict[str, str] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        owner_of_file.update((os.path.normpath(dist.locate_file(f)), name)
                             for f in dist.files or [] if f.suffix in (".py", ".so"))
    dists: set[str] = set()
    for module in sorted(modules):
        top = module.split(".")[0]
        if top in FIRST_PARTY or top in sys.stdlib_module_names or top == "__future__":
            continue
        path = module_file(module)
        assert path, f"{module} is not installed"
        if path == NAMESPACE:  # google, google.cloud: shared by many distributions
            continue
        owner = owner_of_file.get(path)
        assert owner, f"{module}: no installed distribution provides {path}"
        dists.add(owner)
    return dists


def closure(reqs: list[Requirement]) -> set[str]:
    """The requirements and everything they depend on (markers evaluated here)."""
    visited: set[tuple[str, frozenset[str]]] = set()  # (name, extras): extras add deps
    todo = [(r.name, frozenset(r.extras)) for r in reqs]
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), extras)
        if key in visited:
            continue
        visited.add(key)
        for text in metadata.requires(name) or []:
            dep = Requirement(text)
            if dep.marker and not any(dep.marker.evaluate({"extra": e}) for e in extras or {""}):
                continue
            todo.append((dep.name, frozenset(dep.extras)))
    return {name for name, _ in visited}


def test_every_range_admits_the_locked_version() -> None:
    locked = locked_versions()
    for req in requirements():
        version = locked.get(canonicalize_name(req.name))
        assert version, f"{req.name} is not in uv.lock"
        assert req.specifier.contains(version, prereleases=True), (
            f"{req.name}: requirements.txt says {req.specifier}, uv.lock pins {version}")


def test_requirements_provide_every_import_of_the_deployed_functions() -> None:
    files = loaded_source_files()
    assert ROOT / "functions" / "main.py" in files and ROOT / "potability" / "db.py" in files
    needed = distributions_of(imported_modules(files))
    assert {"flask", "pg8000", "cloud-sql-python-connector"} <= needed  # the check sees imports
    missing = needed - closure(requirements())
    assert not missing, f"imported by the functions but not in requirements.txt: {sorted(missing)}"
