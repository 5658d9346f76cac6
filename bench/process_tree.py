"""What the benchmarks share: a process and all its descendants (a pipeline run's component
subprocesses, gunicorn's worker, PostgreSQL's backends), and their resident memory.

Imported by the scripts beside it (``python bench/<name>.py`` puts this folder first on
``sys.path``).
"""

from __future__ import annotations

import contextlib

import psutil


def tree(pid: int | None) -> list[psutil.Process]:
    """``pid`` and all its descendants; empty if it is gone."""
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_pids(pid: int | None) -> list[int]:
    """The process ids of :func:`tree`."""
    return [proc.pid for proc in tree(pid)]


def tree_rss(pid: int | None) -> int:
    """Resident bytes of ``pid`` and all its descendants; 0 if it is gone. A child that exits
    while it is being measured is skipped."""
    total = 0
    for proc in tree(pid):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total
