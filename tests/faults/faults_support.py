"""Helpers shared by the fault tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from potability.local import services

ROOT = Path(__file__).resolve().parents[2]

GOOD_READING: dict[str, float | None] = {
    "ph": 7.08,
    "Hardness": 196.4,
    "Solids": 21000.0,
    "Chloramines": 7.1,
    "Sulfate": 333.0,
    "Conductivity": 421.0,
    "Organic_carbon": 14.2,
    "Trihalomethanes": 66.4,
    "Turbidity": 3.9,
}


@dataclass
class FunctionProcess:
    home: Path
    service: str
    url: str
    pid: int

    def stop(self) -> None:
        services.stop(self.home, self.service)

    def log(self) -> str:
        path = services.log_file(self.home, self.service)
        return path.read_text(errors="replace") if path.exists() else ""


def start_function(
    home: Path, target: str, env: dict[str, str], threads: int = 4, timeout: float = 60.0
) -> FunctionProcess:
    """``functions-framework --target <target>`` on a free loopback port (the buildpack's
    command on Cloud Run), waiting until it answers HTTP."""

    port = services.free_port()
    service = f"fn-{target}-{port}"
    argv = [
        sys.executable,
        "-m",
        "functions_framework",
        "--source",
        str(ROOT / "functions" / "main.py"),
        "--target",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    pid = services.start(
        home,
        service,
        argv,
        cwd=ROOT,
        env={
            **env,
            "THREADS": str(threads),
            "WORKERS": "1",
            "PYTHONUNBUFFERED": "1",
            "POTABILITY_HOME": str(home),
        },
    )
    url = f"http://127.0.0.1:{port}"
    services.wait_http(url, timeout=timeout, pid=pid, any_answer=True)
    return FunctionProcess(home, service, url, pid)


def deadline(seconds: float) -> Callable[[], float]:
    """Seconds left before a test's own deadline (raises once it has passed)."""
    end = time.monotonic() + seconds

    def left() -> float:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the test's {seconds:g} s deadline passed")
        return remaining

    return left


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length framed, as ours always are) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    if status == 100:  # an interim answer: the real one follows
        sock_rest = rest
        assert not sock_rest
        return read_response(sock)
    return status, headers, rest[:length]
