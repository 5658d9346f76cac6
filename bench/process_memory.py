"""What the benchmarks share: the resident memory of a process tree.

Imported by the scripts beside it (``python bench/<name>.py`` puts this folder first on
``sys.path``).
"""

from __future__ import annotations

import psutil


def tree_rss(pid: int | None) -> int:
    """Resident bytes of ``pid`` and all its descendants (a pipeline run's component
    subprocesses, gunicorn's worker, PostgreSQL's backends); 0 if it is gone. A child that
    exits while it is being measured is skipped."""
    if pid is None:
        return 0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total
