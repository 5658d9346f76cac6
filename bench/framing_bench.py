"""Framing cost of a chunked body sent as 1-byte chunks, one chunk a read.

The worker frames each connection in its event loop as bytes arrive. Re-framing the whole
buffer on every read (what it did before ``Framer``) costs quadratic time in the body's size;
resuming costs linear time. Prints the event-loop time of both (the re-framing
figure is ``complete_request`` on the whole buffer after each read, which is what the worker
did) and, for each, the ratio of its largest to its middle size (2 is linear, 4 quadratic).

    .venv/bin/python bench/framing_bench.py
"""

from __future__ import annotations

import time

from functions.gunicorn_worker import Framer, complete_request

HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def request(kib: int) -> bytes:
    body = b"x" * (kib * 1024)
    return (
        HEAD
        + b"".join(b"1\r\n" + body[i : i + 1] + b"\r\n" for i in range(len(body)))
        + (b"0\r\n\r\n")
    )


def reads(raw: bytes) -> list[bytes]:
    """The head in one read, then one 6-byte chunk a read (a client with TCP_NODELAY)."""
    return [raw[: len(HEAD)]] + [raw[i : i + 6] for i in range(len(HEAD), len(raw), 6)]


def resumed(parts: list[bytes]) -> float:
    framer, buf = Framer(max_body=1 << 30), bytearray()
    started = time.perf_counter()
    for part in parts:
        buf += part
        outcome = framer.feed(buf)
    assert outcome == len(buf)
    return time.perf_counter() - started


def reframed(parts: list[bytes]) -> float:
    buf = bytearray()
    started = time.perf_counter()
    for part in parts:
        buf += part
        outcome = complete_request(bytes(buf), max_body=1 << 30)
    assert outcome == len(buf)
    return time.perf_counter() - started


def main() -> None:
    """Resumed framing at 24-96 KiB (best of three: the machine is shared); re-framing only at
    2-8 KiB (at 24 KiB it took minutes)."""
    for name, frame, sizes in (
        ("resumed", resumed, (24, 48, 96)),
        ("re-framed", reframed, (2, 4, 8)),
    ):
        seconds = {}
        for kib in sizes:
            parts = reads(request(kib))
            seconds[kib] = min(frame(parts) for _ in range(3 if frame is resumed else 1))
            print(f"{name:9s} {kib:3d} KiB, {len(parts):6d} reads: {seconds[kib] * 1000:10.1f} ms")
        big, mid = sizes[2], sizes[1]
        print(
            f"{name:9s} ratio {big}/{mid} KiB: {seconds[big] / seconds[mid]:.1f}"
            " (2 linear, 4 quadratic)"
        )


if __name__ == "__main__":
    main()
