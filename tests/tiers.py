"""The three test tiers, assigned at collection and enforced (docs/testing.md, "Tiers").

Every test gets exactly one of the markers ``unit``, ``integration`` and ``e2e``:

- an explicit marker on the test (or its module's ``pytestmark``) wins;
- ``e2e``: a test in an end-to-end folder (:data:`E2E_FOLDERS`) or one requesting an
  end-to-end fixture (:data:`E2E_FIXTURES`: a Terraform rendering, the emulated Cloud Run,
  Chromium, a PostgreSQL server of the test's own...);
- ``integration``: a test requesting, directly or through another fixture, one of the real
  services of tests/conftest.py and the folders' conftests (:data:`SERVICE_FIXTURES`);
- ``unit``: everything else.

The unit tier is enforced, not assumed: while a unit test runs, opening a network or Unix
socket (connect or bind) and starting a process raise :class:`TierViolation`, and the test fails
with what it did and how to classify it - even when the code under test swallows the exception.
Registered from tests/conftest.py (``pytest_plugins``); tests/test_tiers.py checks it.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

TIERS = ("unit", "integration", "e2e")

# Whole runs: the status page in Chromium, the Terraform checks, fault injection on real
# processes, the notebook executed end to end.
E2E_FOLDERS = frozenset({"browser", "terraform", "faults", "notebooks"})

# Fixtures that stand up a whole deployment-like thing: Terraform rendered or initialised, the
# functions as shipped behind the emulated Cloud Run front end, Chromium, servers of the
# test's own for fault injection.
E2E_FIXTURES = frozenset(
    {
        "rendered",  # tests/cloud_run: terraform console over terraform/
        "deployed_source",
        "cloud_run",
        "initialised",  # tests/terraform
        "terraform_bin",
        "stand_ins",
        "checkov_bin",
        "chromium",  # tests/browser
        "function_factory",  # tests/faults
        "private_database",
    }
)

# The real services of the session (tests/conftest.py and the folders' conftests): PostgreSQL
# and the databases on it, MLflow, our model server, the functions' servers and contexts, an
# HTTP receiver, a refused port.
SERVICE_FIXTURES = frozenset(
    {
        "stack_home",  # tests/conftest.py
        "database_url",
        "fresh_db",
        "module_fresh_db",
        "seeded_db",
        "runs_db",
        "runs_template",
        "mlflow_uri",
        "settings",
        "conn",
        "clean_db",
        "no_alerts",
        "tiny_model_dir",
        "model_server_url",
        "local_functions",
        "webhook",
        "dead_port",
        "dead_database_url",
        "fn_settings",  # tests/functions
        "fn_context",
        "client",
        "step_chain",  # tests/components
    }
)


class TierViolation(BaseException):
    """Raised inside a unit test that opens a socket or starts a process. A BaseException, so
    that ``except Exception`` in the code under test does not hide it."""


def tier_of(item: pytest.Item) -> str:
    """The tier of ``item`` by the rules above; a UsageError where they contradict."""
    explicit = {m.name for m in item.iter_markers() if m.name in TIERS}
    if len(explicit) > 1:
        raise pytest.UsageError(f"{item.nodeid}: more than one tier marker {sorted(explicit)}")
    names = set(getattr(item, "fixturenames", ()))
    services = sorted(names & (SERVICE_FIXTURES | E2E_FIXTURES))
    if explicit:
        tier = explicit.pop()
        if tier == "unit" and services:
            raise pytest.UsageError(
                f"{item.nodeid} is marked unit but requests {', '.join(services)}"
            )
        return tier
    folders = set(item.path.relative_to(item.config.rootpath).parts[:-1])
    if folders & E2E_FOLDERS or names & E2E_FIXTURES:
        return "e2e"
    if services:
        return "integration"
    return "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(tier)


def _refuse(item: pytest.Item, violations: list[str], what: str) -> None:
    message = (
        f"a unit test must not {what}: give it the fixture of the service it uses "
        f"(tests/tiers.py SERVICE_FIXTURES) or mark it integration / e2e ({item.nodeid})"
    )
    violations.append(message)
    raise TierViolation(message)


@pytest.fixture(autouse=True)
def _unit_tier_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """For unit tests: sockets' connect/bind and process starts raise; the test fails."""
    item = request.node
    if not isinstance(item, pytest.Item) or not item.get_closest_marker("unit"):
        yield
        return
    # Libraries' probes of the machine, not the test's processes: each runs a command once
    # and caches the answer, so they are asked here, before the refusals. scikit-learn asks
    # joblib for the physical cores (`lscpu`); MLflow's model metadata asks platform for
    # the processor (`uname -p`).
    if "joblib" in sys.modules:
        sys.modules["joblib"].cpu_count(only_physical_cores=True)
    platform.processor()
    violations: list[str] = []
    patch = pytest.MonkeyPatch()

    def refuse_socket(verb: str) -> Any:
        def refused(self: socket.socket, address: Any, *args: Any) -> Any:
            _refuse(item, violations, f"{verb} a socket ({address!r})")

        return refused

    def refused_popen(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
        _refuse(item, violations, f"start a process ({args!r})")

    def refused_call(name: str) -> Any:
        def refused(*args: Any, **kw: Any) -> Any:
            _refuse(item, violations, f"start a process (os.{name}{args!r})")

        return refused

    patch.setattr(socket.socket, "connect", refuse_socket("connect"))
    patch.setattr(socket.socket, "connect_ex", refuse_socket("connect"))
    patch.setattr(socket.socket, "bind", refuse_socket("bind"))
    patch.setattr(subprocess.Popen, "__init__", refused_popen)
    for name in ("system", "fork", "posix_spawn", "posix_spawnp"):
        patch.setattr(os, name, refused_call(name))
    item.stash[_VIOLATIONS] = violations
    try:
        yield
    finally:
        patch.undo()


_VIOLATIONS = pytest.StashKey[list[str]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A unit test whose code swallowed a :class:`TierViolation` fails all the same."""
    result = yield
    violations = item.stash.get(_VIOLATIONS, [])
    if violations:
        pytest.fail(f"{violations[0]} (the code under test caught the refusal)", pytrace=False)
    return result
