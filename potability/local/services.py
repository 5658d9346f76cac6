"""Start, find and stop the local stack's background processes, by pid file.

Each service is one process group started in its own session, its pid in
``<home>/run/<name>.pid`` and its output in ``<home>/logs/<name>.log``, so ``potability down``
stops exactly what ``up`` started and ``up`` twice finds what is already running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from potability.config import child_environment


def pid_file(home: Path, name: str) -> Path:
    return home / "run" / f"{name}.pid"


def log_file(home: Path, name: str) -> Path:
    return home / "logs" / f"{name}.log"


def runs_log_dir(home: Path) -> Path:
    """Where each local pipeline run's log is written (``<run id>.log``)."""
    return home / "logs" / "pipeline-runs"


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not reaped) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return True


def running_pid(home: Path, name: str) -> int | None:
    """The pid of a running service, or None (stale pid files are removed)."""
    path = pid_file(home, name)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if is_alive(pid):
        return pid
    path.unlink(missing_ok=True)
    return None


def free_port(preferred: int = 0, host: str = "127.0.0.1") -> int:
    """``preferred`` if it is free, else any free port on ``host``."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind((host, candidate))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def can_listen(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now: no other socket listens there.

    With ``SO_REUSEADDR``, as servers (gunicorn) bind: connections of a server that just died
    linger in TIME_WAIT on its port, which fails a plain bind but not a server's."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def start(
    home: Path,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` in the background unless already running; return its pid."""
    pid = running_pid(home, name)
    if pid is not None:
        return pid
    for folder in (pid_file(home, name).parent, log_file(home, name).parent):
        folder.mkdir(parents=True, exist_ok=True)
    with open(log_file(home, name), "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_environment(env),
            cwd=cwd,
            start_new_session=True,
        )
    pid_file(home, name).write_text(str(proc.pid))
    return proc.pid


def wait_http(
    url: str, timeout: float = 120.0, pid: int | None = None, *, any_answer: bool = False
) -> None:
    """Wait until ``url`` answers 200 - or, with ``any_answer``, answers HTTP at all (a
    function may refuse a GET with 405 and be up); fail early if the process ``pid`` died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if pid is not None and not is_alive(pid):
            raise RuntimeError(
                f"process {pid} exited before {url} answered (see its log under <home>/logs/)"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if any_answer or response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if any_answer:
                return
            last = exc
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s ({last})")


def stop(home: Path, name: str, timeout: float = 15.0) -> bool:
    """Stop a service's process group (SIGTERM, then SIGKILL); True if it was running."""
    pid = running_pid(home, name)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and is_alive(pid):
        time.sleep(0.1)
    if is_alive(pid):
        _signal_group(pid, signal.SIGKILL)
    pid_file(home, name).unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
