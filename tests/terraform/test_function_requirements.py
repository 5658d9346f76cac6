"""The Cloud Functions' requirements.txt is uv.lock's pins for the ``functions`` group, and
covers what their code imports.

Terraform zips ``potability/``, ``functions/`` and ``sql/`` with
``terraform/function_source/requirements.txt``; the buildpack installs only that file. It is
generated (``make function-requirements``: ``uv export --frozen --only-group functions
--no-emit-project``), so each deploy installs exactly the versions the tests ran, hash-checked.
Here: the file is what that command prints now (stale after a dependency change: regenerate);
every requirement is pinned (``==``, with hashes) to uv.lock's version; the ``functions`` group
repeats [project] ranges, never others; and every third-party import (also the lazy ones
inside functions) of every module ``functions.main`` loads comes from a distribution the
requirements pull in - a module missing from the file would first fail in production.
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
FIRST_PARTY = {"potability", "training", "functions", "components", "pipelines"}


UV = ROOT / ".venv-uv" / "bin" / "uv"
EXPORT = [
    str(UV),
    "export",
    "--frozen",
    "--only-group",
    "functions",
    "--no-emit-project",
    "--quiet",
]


def requirement_entries() -> list[tuple[Requirement, list[str]]]:
    """(requirement, its --hash values) per entry of the exported file (continuation lines)."""
    text = REQUIREMENTS.read_text().replace("\\\n", " ")
    entries = []
    for line in (
        x.split("#", 1)[0].strip() if not x.lstrip().startswith("--hash") else x.strip()
        for x in text.splitlines()
    ):
        if not line:
            continue
        spec, *options = line.split(" --hash=")
        entries.append((Requirement(spec.strip()), [o.strip() for o in options]))
    return entries


def requirements() -> list[Requirement]:
    return [req for req, _ in requirement_entries()]


def locked_versions() -> dict[str, set[str]]:
    """Name -> the versions uv.lock pins (several when the resolution forks by marker)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions: dict[str, set[str]] = {}
    for p in lock["package"]:
        if "version" in p:
            versions.setdefault(canonicalize_name(p["name"]), set()).add(p["version"])
    return versions


def loaded_source_files() -> list[Path]:
    """The first-party files ``functions.main`` (the deployed entry point) loads."""
    code = (
        "import sys, functions.main\n"
        "for m in list(sys.modules.values()):\n"
        "    f = getattr(m, '__file__', None)\n"
        "    if f: print(f)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
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
    if any(
        os.path.isdir(f"{root}/{'/'.join(parts)}")
        and not os.path.exists(f"{root}/{'/'.join(parts)}/__init__.py")
        for root in roots
    ):
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
        owner_of_file.update(
            (os.path.normpath(dist.locate_file(f)), name)
            for f in dist.files or []
            if f.suffix in (".py", ".so")
        )
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
    todo = [(r.name, frozenset(r.extras)) for r in reqs if r.marker is None or r.marker.evaluate()]
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


def test_the_file_is_exported_from_the_lock_now() -> None:
    assert UV.exists(), f"{UV} is missing: run `make env`"
    fresh = subprocess.run(EXPORT, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert REQUIREMENTS.read_text() == fresh, (
        "terraform/function_source/requirements.txt is stale: run `make function-requirements`"
    )
    assert "uv export --frozen --only-group functions --no-emit-project" in fresh.splitlines()[1]


def test_every_requirement_is_pinned_with_hashes_to_the_locked_version() -> None:
    locked = locked_versions()
    entries = requirement_entries()
    assert len(entries) > 20  # the whole closure, not only the direct dependencies
    for req, hashes in entries:
        versions = locked.get(canonicalize_name(req.name))
        assert versions, f"{req.name} is not in uv.lock"
        pinned = str(req.specifier)
        assert pinned.startswith("==") and pinned[2:] in versions, (
            f"{req.name}: {pinned}, uv.lock pins {sorted(versions)}"
        )
        assert hashes and all(h.startswith("sha256:") for h in hashes), f"{req.name}: no hashes"


def test_the_functions_group_only_repeats_project_ranges() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = {
        canonicalize_name(Requirement(r).name): Requirement(r)
        for r in pyproject["project"]["dependencies"]
    }
    for text in pyproject["dependency-groups"]["functions"]:
        req = Requirement(text)
        same = project.get(canonicalize_name(req.name))
        assert same is not None, f"{req.name} is in the functions group but not a dependency"
        assert (same.specifier, same.extras) == (req.specifier, req.extras), (
            f"{req.name}: the functions group says {req}, [project] says {same}"
        )


def test_requirements_provide_every_import_of_the_deployed_functions() -> None:
    files = loaded_source_files()
    assert ROOT / "functions" / "main.py" in files and ROOT / "potability" / "db.py" in files
    needed = distributions_of(imported_modules(files))
    assert {"flask", "pg8000", "cloud-sql-python-connector"} <= needed  # the check sees imports
    missing = needed - closure(requirements())
    assert not missing, f"imported by the functions but not in requirements.txt: {sorted(missing)}"
