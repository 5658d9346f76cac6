"""Hostile clients against a real function process (functions-framework, as on Cloud Run):
stalled clients cannot starve it, and what the server layer refuses is JSON too."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.request
from typing import Any

import pytest
from faults_support import GOOD_READING, FunctionProcess, deadline, read_response

from functions import gunicorn_worker

THREADS = 4


@pytest.fixture
def predict_fn(function_factory, database_url: str, model_server_url: str) -> FunctionProcess:
    return function_factory(
        "predict",
        {
            "DATABASE_URL": database_url,
            "MODEL_SERVER_URL": model_server_url,
            "ENDPOINT_MODE": "local",
        },
        threads=THREADS,
    )


def predict_once(url: str, key: str, timeout: float = 10.0) -> tuple[int, float]:
    body = json.dumps({"sensor_id": "hostile-test", "reading": GOOD_READING}).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": key},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()
        return response.status, time.perf_counter() - started


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def stalled_connection(port: int) -> socket.socket:
    """Headers and part of the body, then nothing (the connection stays open)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4000\r\n\r\n" + b'{"sensor_id": "slow", "reading": {'
    )
    return sock


def test_stalled_clients_at_4x_the_threads_cannot_starve_predict(predict_fn, clean_db) -> None:
    left = deadline(60)
    status, _ = predict_once(predict_fn.url, "hostile-warmup")  # pool and endpoint session
    assert status == 200
    stalled = [stalled_connection(port_of(predict_fn.url)) for _ in range(4 * THREADS)]
    try:
        time.sleep(0.5)  # every stalled request has reached the server
        for i in range(3):
            status, seconds = predict_once(
                predict_fn.url, f"hostile-normal-{i}", timeout=min(10, left())
            )
            assert status == 200 and seconds < 1.0, (i, seconds)
        # the stalled ones are answered 408 (JSON) once their time to send is up
        time.sleep(max(0.0, gunicorn_worker.REQUEST_READ_SECONDS - 0.5))
        for sock in stalled:
            sock.settimeout(min(5, left()))
            status, headers, body = read_response(sock)
            assert status == 408 and headers["content-type"] == "application/json"
            assert json.loads(body)["field"] == "request"
    finally:
        for sock in stalled:
            sock.close()


def raw_exchange(
    port: int, request: bytes, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` (from a thread: the server may answer before it has all of it) and
    read the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sender = threading.Thread(target=_send_quietly, args=(sock, request), daemon=True)
    sender.start()
    try:
        return read_response(sock)
    finally:
        sender.join(timeout=timeout)
        sock.close()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # refused early and closed: the answer is what counts
        sock.sendall(data)


def _json_error(port: int, request: bytes) -> tuple[int, dict[str, Any]]:
    status, headers, body = raw_exchange(port, request)
    assert headers["content-type"] == "application/json", (status, body[:200])
    return status, json.loads(body)


def test_errors_of_the_server_layer_are_json(predict_fn) -> None:
    left = deadline(60)
    port = port_of(predict_fn.url)
    post = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    body = json.dumps({"sensor_id": "s", "reading": GOOD_READING}).encode()
    length = b"Content-Length: " + str(len(body)).encode() + b"\r\n"

    # a 10 kB Idempotency-Key: one header over gunicorn's field limit
    status, error = _json_error(
        port, post + b"Idempotency-Key: " + b"k" * 10_000 + b"\r\n" + length + b"\r\n" + body
    )
    assert (status, error["field"]) == (431, "headers")
    # a 1 MB bearer token: refused at the head limit, before it is all read
    status, error = _json_error(
        port,
        post + b"Authorization: Bearer " + b"t" * 1_000_000 + b"\r\n" + length + b"\r\n" + body,
    )
    assert (status, error["field"]) == (431, "headers")
    left()
    # garbage instead of a request line
    status, error = _json_error(port, b"GARBAGE\r\n\r\n")
    assert (status, error["field"]) == (400, "request line")
    status, error = _json_error(port, b"GET / HTTP/9.9\r\nHost: x\r\n\r\n")
    assert status == 400
    # an URL over the request-line limit
    status, error = _json_error(port, b"GET /?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, error["field"]) == (414, "url")
    # a declared body over the limit, refused before it is sent
    status, error = _json_error(port, post + b"Content-Length: 50000000\r\n\r\n")
    assert (status, error["field"]) == (413, "body")
    # a malformed header line
    status, error = _json_error(port, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert status == 400
    left()
    # and the function still serves normal requests
    request = urllib.request.Request(
        predict_fn.url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    log = predict_fn.log()
    assert "<html" not in log.lower()
    assert log.count('"layer":"server"') >= 7  # one request log line per refusal


def test_keep_alive_and_chunked_requests_still_work(predict_fn, clean_db) -> None:
    deadline(30)
    port = port_of(predict_fn.url)
    body = json.dumps({"sensor_id": "s", "reading": GOOD_READING}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        for i in range(3):  # three requests on one kept-alive connection
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Idempotency-Key: keepalive-{i}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status, headers, answer = read_response(sock)
            assert status == 200, answer
        chunked = (
            b"".join(
                f"{len(body[i : i + 50]):x}\r\n".encode() + body[i : i + 50] + b"\r\n"
                for i in range(0, len(body), 50)
            )
            + b"0\r\n\r\n"
        )
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunked
        )
        status, headers, answer = read_response(sock)
        assert status == 200, answer
    finally:
        sock.close()


def predict_request(key: str) -> bytes:
    body = json.dumps({"sensor_id": "hostile-test", "reading": GOOD_READING}).encode()
    return (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Idempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def test_a_partial_request_pipelined_behind_a_whole_one_cannot_hold_a_thread(
    predict_fn, clean_db
) -> None:
    """A whole request and, in the same write, the head and part of the body of a second:
    the first is answered, the second is framed in the event loop like any other and
    answered 408 when its time is up. When the second went to gunicorn's parser with the
    first, its body was read in the serving thread with no deadline: 4x the threads of such
    connections left predict without a thread to answer."""
    left = deadline(60)
    port = port_of(predict_fn.url)
    assert predict_once(predict_fn.url, "pipelined-warmup")[0] == 200
    partial = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4000\r\n\r\n" + b'{"sensor_id": "slow", "reading": {'
    )
    socks = []
    try:
        for i in range(4 * THREADS):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(sock)
            sock.sendall(predict_request(f"pipelined-{i}") + partial)
        for sock in socks:  # every first request is answered
            status, _, answer = read_response(sock)
            assert status == 200, answer
        for i in range(3):  # and the second ones hold no thread
            status, _ = predict_once(predict_fn.url, f"pipelined-normal-{i}", timeout=5)
            assert status == 200
        for sock in socks:
            sock.settimeout(min(gunicorn_worker.REQUEST_READ_SECONDS + 5, left()))
            status, headers, body = read_response(sock)
            assert status == 408 and headers["content-type"] == "application/json"
            assert json.loads(body)["field"] == "request"
    finally:
        for sock in socks:
            sock.close()


def receive(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the server closed the connection before every answer")
    return data


def test_whole_pipelined_requests_are_all_answered_in_order(predict_fn, clean_db) -> None:
    deadline(30)
    sock = socket.create_connection(("127.0.0.1", port_of(predict_fn.url)), timeout=10)
    try:
        sock.sendall(b"".join(predict_request(f"in-order-{i}") for i in range(3)))
        buffered = b""
        answers = []
        while len(answers) < 3:  # three responses, possibly in one read
            while b"\r\n\r\n" not in buffered:
                buffered += receive(sock)
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(buffered) < length:
                buffered += receive(sock)
            answers.append((int(head.split()[1]), json.loads(buffered[:length])))
            buffered = buffered[length:]
        assert [status for status, _ in answers] == [200, 200, 200]
    finally:
        sock.close()


def test_a_body_of_one_byte_chunks_sent_a_chunk_a_write_is_served(predict_fn, clean_db) -> None:
    deadline(60)
    body = json.dumps({"sensor_id": "s", "reading": GOOD_READING}).encode()
    sock = socket.create_connection(("127.0.0.1", port_of(predict_fn.url)), timeout=20)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Idempotency-Key: one-byte-chunks\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for i in range(len(body)):
            sock.sendall(b"1\r\n" + body[i : i + 1] + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        status, _, answer = read_response(sock)
        assert status == 200, answer
    finally:
        sock.close()


def test_an_endless_trailer_section_is_refused_at_the_head_limit(predict_fn) -> None:
    """Trailers after the last chunk were buffered without bound (27 MiB in 10 s on one
    connection against a 1 MiB body limit); now they count like a head."""
    deadline(30)
    flood = b"".join(b"X-Trailer-%d: %s\r\n" % (i, b"v" * 1000) for i in range(1000))  # ~1 MB
    status, error = _json_error(
        port_of(predict_fn.url),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n" + flood + b"\r\n",
    )
    assert (status, error["field"]) == (431, "trailers")


# --- any header bytes: always an answer, never a dead worker --------------------------------


def worker_pids(arbiter_pid: int) -> set[int]:
    """The gunicorn worker processes under a function's arbiter (it replaces dead ones)."""
    import psutil

    return {child.pid for child in psutil.Process(arbiter_pid).children()}


def answer_to(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send ``request``, half-close, read what comes back until the server closes or its
    first response is complete."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # refused early and closed: what it answered is still readable
        data = b""
        while b"\r\n\r\n" not in data or data.startswith(b"HTTP/1.1 100 "):
            if data.startswith(b"HTTP/1.1 100 ") and b"\r\n\r\n" in data:
                data = data.split(b"\r\n\r\n", 1)[1]  # an interim answer: the real one follows
                continue
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data
    finally:
        sock.close()


NASTY_LENGTHS = [
    b"\xb2",
    b"1\xb9",
    "²".encode(),
    b"-1",
    b"+3",
    b"",
    b" 3 ",
    b"3, 3",
    b"0x3",
    b"9" * 5000,
    b"99999999999999999999999",
    b"3\x00",
    b"\xff\xfe",
]
NASTY_CODINGS = [
    b"chunked",
    b"chunked, chunked",
    b"gzip",
    b"gzip, chunked",
    b"chunked, gzip",
    b"CHUNKED",
    b"chunked\x00",
    b" chunked",
    b"identity",
    b"\xb2",
]


def test_any_header_bytes_get_an_answer_and_the_worker_survives(predict_fn) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    left = deadline(120)
    port = port_of(predict_fn.url)
    workers = worker_pids(predict_fn.pid)
    assert workers
    header_line = st.one_of(
        st.binary(max_size=80),
        st.sampled_from(NASTY_LENGTHS).map(lambda v: b"Content-Length: " + v),
        st.sampled_from(NASTY_CODINGS).map(lambda v: b"Transfer-Encoding: " + v),
        st.sampled_from(
            [
                b"Expect: 100-continue",
                b"Connection: keep-alive",
                b"Content-Type: application/json",
                b"Host: x",
            ]
        ),
    )

    @settings(
        max_examples=120,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        start=st.sampled_from([b"POST / HTTP/1.1", b"GET / HTTP/1.1", b"POST / HTTP/1.0"]),
        lines=st.lists(header_line, max_size=6),
        body=st.binary(max_size=40),
    )
    def exchange(start: bytes, lines: list[bytes], body: bytes) -> None:
        left()
        request = start + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body
        answer = answer_to(port, request, timeout=min(15, left()))
        assert answer.startswith(b"HTTP/1."), (request[:300], answer[:300])
        head = answer.split(b"\r\n\r\n", 1)[0].lower()
        assert b"content-type: application/json" in head, (request[:300], answer[:300])
        assert int(answer.split()[1]) != 500, (request[:300], answer[:300])
        assert worker_pids(predict_fn.pid) == workers, request[:300]

    exchange()
    assert "Worker exiting" not in predict_fn.log()
