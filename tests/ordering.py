"""The order in which test files reach pytest-xdist's workers: the longest first.

`make test` runs two workers with ``--dist loadfile --no-loadscope-reorder``: each file goes
whole to the next worker that runs short of work, in collection order. xdist's own order (files
with the most tests first, its ``--loadscope-reorder`` default) put the few long files - a
handful of tests behind a pipeline run or a Terraform plan each - last, so one worker ran the
tail alone while the other had finished. Longest first is the classic schedule for two
machines: the many short files at the end even out the finish (docs/testing.md, "Where the
time goes").

:data:`LONGEST` is measured, not guessed: seconds per file (setup + call + teardown) in CI's way
of running the suite (a fresh clone, ``bash .ci/run``, 2026-12-07, quiet machine; the full
table at load 11 ranks them alike). It is only an order: a file missing from it runs after
them, end-to-end files before integration before unit, and a stale entry costs nothing.
"""

from __future__ import annotations

import pytest

LONGEST = (
    "tests/pipelines/test_local_run.py",  # 98 s: two KFP local runs, the first the scheduler's
    "tests/faults/test_pipeline_faults.py",  # 50 s
    "tests/terraform/test_terraform_offline.py",  # 49 s: terraform test, 41 run blocks
    "tests/terraform/test_mlflow_startup.py",  # 49 s
    "tests/components/test_promote_step.py",  # 46 s
    "tests/training/test_promotion.py",  # 40 s
    "tests/training/test_promotion_control.py",  # 30 s
    "tests/components/test_train_step.py",  # 25 s
    "tests/faults/test_hostile_clients.py",  # 24 s
    "tests/cloud_run/test_behind_cloud_run.py",  # 24 s
    "tests/browser/test_trends_browser.py",  # 23 s
    "tests/functions/test_function_servers.py",  # 19 s
    "tests/faults/test_dependency_restarts.py",  # 18 s
    "tests/training/test_footprint.py",  # 15 s
    "tests/potability/inference/test_backlog.py",  # 13 s
)

TIER_ORDER = {"e2e": 0, "integration": 1, "unit": 2}


def file_order(items: list[pytest.Item]) -> list[pytest.Item]:
    """``items`` with whole files reordered: :data:`LONGEST` first, then by tier; a file's own
    tests keep their order, and so do files of equal rank."""
    rank = {path: i for i, path in enumerate(LONGEST)}
    keys: dict[str, tuple[int, int, int]] = {}
    for index, item in enumerate(items):
        path = item.nodeid.split("::", 1)[0]
        tier = next((m.name for m in item.iter_markers() if m.name in TIER_ORDER), "unit")
        key = (rank.get(path, len(rank)), TIER_ORDER[tier], index)
        keys[path] = min(keys.get(path, key), key)
    position = {id(item): i for i, item in enumerate(items)}
    return sorted(items, key=lambda item: (keys[item.nodeid.split("::", 1)[0]], position[id(item)]))


@pytest.hookimpl(trylast=True)  # after tests/tiers.py has given every test its tier
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items[:] = file_order(items)
