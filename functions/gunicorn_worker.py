"""How a function process serves HTTP: gunicorn's threaded worker, hardened against clients.

functions-framework serves a function with gunicorn's ``gthread`` worker: a fixed pool of
``THREADS`` threads, each of which reads a request from its socket *blocking*. A client that
sends its headers and part of a body and then waits holds a thread until it gives up, so a
few dozen such clients (the "slowloris" attack) starve every other caller. And what gunicorn
refuses itself (oversized headers, a malformed request line) it answers with an HTML page,
outside our JSON error contract.

:class:`BufferingThreadWorker` changes both, and nothing else:

* A connection reaches a serving thread only once a **whole request** (head and body, by
  ``Content-Length`` or chunked framing) has arrived. Until then its bytes are read by the
  worker's event loop, which costs a stalled client one buffer and no thread. A request that
  is not complete ``REQUEST_READ_SECONDS`` after its connection opened (or, on a kept-alive
  connection, after its first byte) is answered ``408`` and closed.
* Refusals below the application are JSON like every other error (``{"error", "field"}``):
  headers over ``MAX_HEAD_BYTES`` -> 431 (before the head is even parsed), a declared body
  over ``MAX_BODY_BYTES`` -> 413 (before it is read), a malformed request line or header ->
  400, a request line over ``LIMIT_REQUEST_LINE`` -> 414, one header over
  ``LIMIT_REQUEST_FIELD_SIZE`` -> 431, a transfer coding we do not speak -> 501. Each leaves
  one request log line, as the application's answers do.

:func:`install` makes functions-framework use this worker. Cloud Run functions start the
process with the same ``functions-framework --target ...`` command as ``potability
functions`` does locally (the Python buildpack's entrypoint), and that command imports
``functions/main.py`` - which calls :func:`install` - before it builds its gunicorn
application, so the one mechanism protects both. (functions-framework offers no option for
the worker class; :func:`install` substitutes a subclass of its ``GunicornApplication`` that
sets it, a narrow hook checked by ``tests/faults/test_hostile_clients.py`` against the pinned
version.)
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
import selectors
import socket
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import TConn, ThreadWorker

from functions import request_log
from functions.http import PROBLEM_JSON, problem
from potability.config import load_settings

REQUEST_READ_SECONDS = 10.0
"""How long a client may take to send one whole request (head and body). 1 MiB in 10 s is
100 kB/s: far slower than any sensor link we serve, far shorter than a thread's worth of
patience."""
MAX_HEAD_BYTES = 32 * 1024
"""Request line plus headers. Ours need a few hundred bytes (an ID token ~1-2 kB)."""
LIMIT_REQUEST_LINE = 8190
LIMIT_REQUEST_FIELDS = 100
LIMIT_REQUEST_FIELD_SIZE = 8190
"""gunicorn's own parser limits (its defaults; functions-framework lifts the request-line
limit, we restore it): one header line over 8190 bytes is a 431."""
_RECV = 64 * 1024
DRAIN_SECONDS = 2.0
DRAIN_MAX_BYTES = 2 * 1024 * 1024
"""After a refusal the rest of the request is read and discarded for a moment before the
socket closes: closing with unread bytes makes the kernel send a reset, which can destroy the
refusal before the client reads it (RFC 9112 section 9.6)."""
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_DECIMAL = re.compile(r"[0-9]+")
"""Content-Length is 1*DIGIT, ASCII only (RFC 9110 section 8.6): ``str.isdigit`` also accepts
'²' or '٣', which ``int`` then refuses - in the event loop, where an exception kills the worker."""
_HEX = re.compile(rb"[0-9A-Fa-f]+")
"""chunk-size is 1*HEXDIG (RFC 9112 section 7.1): ``int(x, 16)`` also takes '+1', '0x1', '1_0'."""
_MAX_LENGTH_DIGITS = 18
"""More digits than any body we accept: refused 413 without converting (``int`` refuses over
4300 digits, by raising)."""


@dataclass(frozen=True)
class Refusal:
    """A request refused before any application code ran."""

    status: int
    reason: str
    field: str
    message: str


def _head_fields(head: bytes) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            key = name.strip().decode("latin-1").lower()
            fields.setdefault(key, []).append(value.strip().decode("latin-1"))
    return fields


MAX_TRAILER_BYTES = MAX_HEAD_BYTES
"""The trailer section after a chunked body's last chunk is field lines like a head, and
bounded like one: without a bound a client could stream trailers forever into our buffer."""
MAX_CHUNK_LINE_BYTES = 1024
"""A chunk-size line (hex size and extensions) longer than this is refused."""


class Framer:
    """Where the first whole request in a growing buffer ends, found **incrementally**.

    :meth:`feed` is called with the connection's buffer after each read and resumes where the
    previous call stopped: the head's end is searched only in bytes not searched before, the
    head is parsed once, and a chunked body is walked chunk by chunk from the first chunk not
    yet complete. So the work per connection is linear in its bytes however the client slices
    them (a body of 1-byte chunks sent one read at a time cost quadratic time when every read
    re-framed the whole buffer: 96 KiB, 3-4.5 s of the event loop). The buffer must only grow
    between calls (bytes are appended, never removed) until the request is whole.
    """

    def __init__(self, max_head: int = MAX_HEAD_BYTES, max_body: int = 1024 * 1024) -> None:
        self.max_head = max_head
        self.max_body = max_body
        self.expects_continue = False
        self._scanned = 0  # bytes already searched for the end of the head (or trailers)
        self._head_end: int | None = None
        self._end: int | None = None  # known end of the request (Content-Length framing)
        self._refusal: Refusal | None = None
        self._chunk: int | None = None  # chunked: where the next chunk-size line starts
        self._body = 0  # chunked: bytes of chunk data accepted so far
        self._trailers = False  # chunked: the last chunk is in, the trailer section follows

    def feed(self, buf: bytes | bytearray) -> int | Refusal | None:
        """The request's length once ``buf`` holds all of it, ``None`` while more is needed,
        a :class:`Refusal` as soon as it can be refused."""
        if self._head_end is None:
            refusal = self._find_head(buf)
            if refusal is not None or self._head_end is None:
                return refusal
        if self._refusal is not None:
            return self._refusal
        if self._end is not None:
            return self._end if len(buf) >= self._end else None
        return self._chunks(buf)

    def _find_head(self, buf: bytes | bytearray) -> Refusal | None:
        end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0 or end + 4 > self.max_head:
            if end < 0 and len(buf) <= self.max_head:
                self._scanned = len(buf)
                return None
            return Refusal(
                431,
                "Request Header Fields Too Large",
                "headers",
                f"request line and headers larger than {self.max_head} bytes",
            )
        self._head_end = end + 4
        fields = _head_fields(bytes(buf[:end]))
        self.expects_continue = "100-continue" in ",".join(fields.get("expect", [])).lower()
        self._frame(fields)
        return None

    def _frame(self, fields: dict[str, list[str]]) -> None:
        """How the body is framed, from the head's fields (RFC 9112 section 6)."""
        assert self._head_end is not None
        head_end = self._head_end
        lengths = fields.get("content-length", [])
        codings = ",".join(fields.get("transfer-encoding", [])).lower()
        if codings:
            if lengths:  # which one frames the body? (request smuggling: RFC 9112 section 6.1)
                self._refusal = Refusal(
                    400,
                    "Bad Request",
                    "Content-Length",
                    "Content-Length together with Transfer-Encoding",
                )
            elif codings.replace(" ", "").split(",")[-1] != "chunked":
                self._end = head_end  # a coding we do not speak: gunicorn refuses it (501)
            else:
                self._chunk = head_end
            return
        if not lengths:
            self._end = head_end
            return
        if len(lengths) > 1:
            self._refusal = Refusal(
                400, "Bad Request", "Content-Length", "more than one Content-Length"
            )
            return
        text = lengths[0]
        if not _DECIMAL.fullmatch(text):
            self._refusal = Refusal(
                400, "Bad Request", "Content-Length", "invalid Content-Length: must be ASCII digits"
            )
        elif len(text.lstrip("0")) > _MAX_LENGTH_DIGITS or int(text) > self.max_body:
            self._refusal = self._too_big()
        else:
            self._end = head_end + int(text)

    def _chunks(self, buf: bytes | bytearray) -> int | Refusal | None:
        assert self._chunk is not None
        while not self._trailers:
            pos = self._chunk
            eol = buf.find(b"\r\n", pos, pos + MAX_CHUNK_LINE_BYTES + 2)
            if eol < 0:
                if len(buf) - pos <= MAX_CHUNK_LINE_BYTES:
                    return None
                return Refusal(400, "Bad Request", "body", "malformed chunked body")
            size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                return Refusal(400, "Bad Request", "body", "malformed chunk size")
            if len(size_text.lstrip(b"0")) > _MAX_LENGTH_DIGITS:
                return self._too_big()
            size = int(size_text, 16)
            if self._body + size > self.max_body:
                return self._too_big()
            if size == 0:
                self._trailers = True
                self._chunk = self._scanned = eol + 2
                break
            if len(buf) < eol + 2 + size + 2:
                return None  # resumes at this chunk's size line: a few bytes, not the body
            self._body += size
            self._chunk = eol + 2 + size + 2
        start = self._chunk
        if buf[start : start + 2] == b"\r\n":  # no trailer fields: the body ends here
            return start + 2
        end = buf.find(b"\r\n\r\n", max(start, self._scanned - 3))
        if end < 0:
            if len(buf) - start <= MAX_TRAILER_BYTES:
                self._scanned = len(buf)
                return None
        elif end + 4 - start <= MAX_TRAILER_BYTES:
            return end + 4
        return Refusal(
            431,
            "Request Header Fields Too Large",
            "trailers",
            f"trailer section larger than {MAX_TRAILER_BYTES} bytes",
        )

    def _too_big(self) -> Refusal:
        return Refusal(413, "Content Too Large", "body", f"body larger than {self.max_body} bytes")


def complete_request(
    buf: bytes, max_head: int = MAX_HEAD_BYTES, max_body: int = 1024 * 1024
) -> int | Refusal | None:
    """The length of the first whole HTTP/1.x request in ``buf``; ``None`` if more bytes are
    needed; a :class:`Refusal` if it can already be refused (pure, so it is tested alone).

    Only framing is checked here; the request line and headers are parsed, and refused if
    malformed, by gunicorn's parser in the serving thread.
    """
    return Framer(max_head, max_body).feed(buf)


def error_bytes(refusal: Refusal) -> bytes:
    """A complete error response that closes the connection: problem details, as the
    application's errors (:func:`functions.http.problem`)."""
    body = json.dumps(
        problem(refusal.status, refusal.field, refusal.message), separators=(",", ":")
    ).encode()
    head = (
        f"HTTP/1.1 {refusal.status} {refusal.reason}\r\nConnection: close\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def refusal_for(exc: BaseException) -> Refusal:
    """The JSON refusal for what gunicorn's parser raised (its own HTML page otherwise)."""
    text = str(exc)[:200]
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return Refusal(431, "Request Header Fields Too Large", "headers", text)
    if isinstance(exc, http_errors.LimitRequestLine):
        return Refusal(414, "URI Too Long", "url", text)
    if isinstance(exc, http_errors.UnsupportedTransferCoding):
        return Refusal(501, "Not Implemented", "Transfer-Encoding", text)
    if isinstance(exc, http_errors.ExpectationFailed):
        return Refusal(417, "Expectation Failed", "Expect", text)
    if isinstance(
        exc, (http_errors.InvalidHeader, http_errors.InvalidHeaderName, http_errors.ObsoleteFolding)
    ):
        return Refusal(400, "Bad Request", "headers", f"malformed header: {text}")
    if isinstance(
        exc,
        (
            http_errors.InvalidRequestLine,
            http_errors.InvalidRequestMethod,
            http_errors.InvalidHTTPVersion,
        ),
    ):
        return Refusal(400, "Bad Request", "request line", f"malformed request line: {text}")
    if isinstance(
        exc,
        (
            http_errors.ParseException,
            http_errors.InvalidChunkSize,
            http_errors.ChunkMissingTerminator,
            http_errors.InvalidChunkExtension,
        ),
    ):
        return Refusal(400, "Bad Request", "request", f"malformed request: {text}")
    return Refusal(500, "Internal Server Error", "server", "internal error; nothing was written")


def _recv_ready(sock: socket.socket) -> bytes | None:
    """What a readable non-blocking socket holds: ``b""`` when the client is gone (closed or
    reset), ``None`` when nothing is there after all (a spurious wake-up)."""
    try:
        return sock.recv(_RECV)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


def _send_nonblocking(sock: socket.socket, data: bytes) -> None:
    try:
        sock.setblocking(False)
        sock.send(data)
    except OSError:
        pass  # the client is gone or not reading: nothing more to do for it


class BufferedConn(TConn):
    """gunicorn's connection with the bytes read of its next request, until it is whole."""

    prebuffer: bytearray
    """Bytes read and not yet handed to a thread: the next request, and any pipelined after it."""
    framer: Framer
    """Where the request at the start of ``prebuffer`` ends, found as its bytes arrive."""
    request: bytes
    """One whole request, handed to the serving thread (and nothing after it)."""


class BufferingThreadWorker(ThreadWorker):
    """gunicorn's ``gthread`` worker that hands a connection to a thread only with a whole
    request buffered, and answers its own refusals in JSON (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.buffering: dict[Any, float] = {}  # connection -> deadline (monotonic)
        self.draining: dict[Any, float] = {}  # refused connection -> when to close it
        self.max_body = load_settings().max_body_bytes

    # --- connections arrive: read them in the event loop, not in a thread ----------------

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = BufferedConn(self.cfg, client_sock, client_addr, listener.getsockname())
        conn.prebuffer = bytearray()
        conn.request = b""
        self._buffer(conn, time.monotonic() + REQUEST_READ_SECONDS)

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection sends its next request: buffer that one too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._buffer(conn, time.monotonic() + REQUEST_READ_SECONDS)

    def finish_request(self, conn: Any, fs: Any) -> None:
        """gunicorn's, and then: a request the client pipelined behind the one just answered
        is already in our buffer - frame it here, under the same deadline, instead of waiting
        for the socket to become readable (it may never) or letting gunicorn's parser read it
        in a thread (where a partial body would hold that thread without a deadline)."""
        super().finish_request(conn, fs)
        if getattr(conn, "prebuffer", None) and conn in self.keepalived_conns:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)
            self.keepalived_conns.remove(conn)
            self._buffer(conn, time.monotonic() + REQUEST_READ_SECONDS)
            self._frame(conn)

    def _buffer(self, conn: Any, deadline: float) -> None:
        conn.sock.setblocking(False)
        conn.framer = Framer(MAX_HEAD_BYTES, self.max_body)
        conn.continued = False
        self.buffering[conn] = deadline
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, conn))

    def _readable(self, conn: Any, client: Any) -> None:
        """Runs in the event loop: an exception here would end the worker and every
        connection it holds, so none may escape (a bug answers that request 400, logged)."""
        try:
            self._read_more(conn)
        except Exception:  # see the docstring
            self.log.exception("framing check failed; refusing the request")
            self._stop_buffering(conn)
            try:
                self._refuse(conn, Refusal(400, "Bad Request", "request", "malformed request"))
            except Exception:  # noqa: BLE001 - the worker outlives any one connection
                self.draining.pop(conn, None)
                conn.close()

    def _read_more(self, conn: Any) -> None:
        data = _recv_ready(conn.sock)
        if data is None:
            return
        if not data:  # the client closed (or half-closed) before sending a whole request
            if conn.prebuffer.strip():
                self._stop_buffering(conn)
                self._refuse(
                    conn,
                    Refusal(
                        400,
                        "Bad Request",
                        "request",
                        "the connection ended before the whole request",
                    ),
                )
            else:
                self._drop(conn)
            return
        conn.prebuffer += data
        self._frame(conn)

    def _frame(self, conn: Any) -> None:
        """Hand the connection to a thread once its first buffered request is whole: that
        request alone - bytes after it stay buffered for the next round."""
        outcome = conn.framer.feed(conn.prebuffer)
        if outcome is None:
            if conn.framer.expects_continue and not conn.continued:
                conn.continued = True
                _send_nonblocking(conn.sock, _CONTINUE)
            return
        self._stop_buffering(conn)
        if isinstance(outcome, Refusal):
            self._refuse(conn, outcome)
            return
        conn.request = bytes(conn.prebuffer[:outcome])
        del conn.prebuffer[:outcome]
        conn.data_ready = True
        self.enqueue_req(conn)

    def _stop_buffering(self, conn: Any) -> None:
        self.buffering.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _drop(self, conn: Any) -> None:
        self._stop_buffering(conn)
        self.nr_conns -= 1
        conn.close()

    def _refuse(self, conn: Any, refusal: Refusal) -> None:
        """Answer ``refusal``, then half-close and discard what the client still sends."""
        _send_nonblocking(conn.sock, error_bytes(refusal))
        self._log_refusal(refusal, conn.client)
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.nr_conns -= 1
            conn.close()
            return
        conn.drained = 0
        self.draining[conn] = time.monotonic() + DRAIN_SECONDS
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._drain, conn))

    def _drain(self, conn: Any, client: Any) -> None:
        data = _recv_ready(conn.sock)
        if data is None:
            return
        conn.drained += len(data)
        if not data or conn.drained > DRAIN_MAX_BYTES:
            self._close_drained(conn)

    def _close_drained(self, conn: Any) -> None:
        self.draining.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Also refuse the connections whose request did not arrive in time (408), and close
        refused ones whose drain time is up."""
        super().murder_pending()
        now = time.monotonic()
        for conn, deadline in list(self.buffering.items()):
            if deadline <= now:
                self._stop_buffering(conn)
                self._refuse(
                    conn,
                    Refusal(
                        408,
                        "Request Timeout",
                        "request",
                        f"the request did not arrive within {REQUEST_READ_SECONDS:g} s",
                    ),
                )
        for conn, deadline in list(self.draining.items()):
            if deadline <= now:
                self._close_drained(conn)

    # --- in the serving thread: parse from the buffer -------------------------------------

    def handle(self, conn: Any) -> Any:
        data = getattr(conn, "request", b"")
        conn.request = b""
        conn.sock.setblocking(True)
        conn.init()
        if data:
            unreader = conn.parser.unreader
            unreader.unread(unreader.take_buffered() + data)
        return super().handle(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """What gunicorn's parser refused, as JSON (gunicorn writes an HTML page)."""
        refusal = refusal_for(exc)
        if refusal.status >= 500:
            self.log.exception("Error handling request")
        with contextlib.suppress(OSError):
            client.sendall(error_bytes(refusal))
        self._log_refusal(refusal, addr)

    def _log_refusal(self, refusal: Refusal, addr: Any) -> None:
        remote = addr[0] if isinstance(addr, tuple) and addr else None
        request_log.emit(
            request_log.entry(
                function=str(getattr(self.wsgi, "name", "") or "function"),
                method="",
                url="",
                status=refusal.status,
                latency_s=0.0,
                request_id=None,
                trace=None,
                message=f"refused by the server layer: {refusal.status} {refusal.field}: "
                f"{refusal.message}",
                remote_ip=remote,
                extra={"layer": "server"},
            )
        )


GUNICORN_OPTIONS: dict[str, Any] = {
    "worker_class": f"{__name__}.BufferingThreadWorker",
    "limit_request_line": LIMIT_REQUEST_LINE,
    "limit_request_fields": LIMIT_REQUEST_FIELDS,
    "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
}


def install() -> None:
    """Make functions-framework's gunicorn run :class:`BufferingThreadWorker` (idempotent)."""
    from functions_framework._http import gunicorn as ff_gunicorn

    base = ff_gunicorn.GunicornApplication
    if getattr(base, "potability_hardened", False):
        return

    # a base class known only at run time (whatever the framework installed): mypy needs it static
    class HardenedGunicornApplication(base):  # type: ignore[misc, valid-type]
        potability_hardened = True

        def load_config(self) -> None:
            super().load_config()
            for key, value in GUNICORN_OPTIONS.items():
                self.cfg.set(key, value)

    # Replacing the framework's class is the point: its stubs declare a class, not a slot.
    ff_gunicorn.GunicornApplication = HardenedGunicornApplication  # type: ignore[misc]
