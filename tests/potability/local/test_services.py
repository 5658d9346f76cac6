"""potability/local/services.wait_http: the one wait for a local server to come up."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from potability.local import services

pytestmark = pytest.mark.integration  # a loopback HTTP server and a child process


class _Refusing(http.server.BaseHTTPRequestHandler):
    """200 on /ok, 405 elsewhere: a function refusing a GET is up all the same."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_refusal_is_up_only_when_any_answer_will_do(server: str) -> None:
    services.wait_http(f"{server}/ok", timeout=5)
    services.wait_http(f"{server}/predict", timeout=5, any_answer=True)
    with pytest.raises(TimeoutError, match="did not answer within 1s .*405"):
        services.wait_http(f"{server}/predict", timeout=1)


def test_a_process_that_died_fails_the_wait_at_once() -> None:
    port = services.free_port()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with pytest.raises(RuntimeError, match=f"process {dead.pid} exited before"):
        services.wait_http(f"http://127.0.0.1:{port}/", timeout=30, pid=dead.pid, any_answer=True)
