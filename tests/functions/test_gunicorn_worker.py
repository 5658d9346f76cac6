"""The worker's framing rules and refusals, as data (the worker itself runs in tests/faults)."""

from __future__ import annotations

import json

import pytest
from gunicorn.http import errors as http_errors

from functions import gunicorn_worker as gw

HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def test_a_request_is_complete_only_with_its_whole_body() -> None:
    body = b'{"a": 1}'
    request = HEAD + b"Content-Length: 8\r\n\r\n" + body
    for cut in range(len(request)):
        assert gw.complete_request(request[:cut]) is None
    assert gw.complete_request(request) == len(request)
    assert gw.complete_request(request + b"GET / HTTP/1.1\r\n") == len(request)  # pipelined
    get = b"GET /?format=json HTTP/1.1\r\nHost: x\r\n\r\n"
    assert gw.complete_request(get) == len(get)


def test_chunked_bodies_are_framed_by_their_chunks() -> None:
    request = HEAD + b"Transfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n"
    for cut in range(len(request)):
        assert gw.complete_request(request[:cut]) is None
    assert gw.complete_request(request) == len(request)
    trailers = HEAD + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: 1\r\n\r\n"
    assert gw.complete_request(trailers) == len(trailers)
    bad = gw.complete_request(HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert isinstance(bad, gw.Refusal) and bad.status == 400


def test_oversized_heads_and_declared_bodies_are_refused_before_they_are_read() -> None:
    huge = HEAD + b"Authorization: Bearer " + b"t" * (gw.MAX_HEAD_BYTES + 10)
    refusal = gw.complete_request(huge)  # no end of headers yet: refused all the same
    assert isinstance(refusal, gw.Refusal) and (refusal.status, refusal.field) == (431, "headers")
    too_big = gw.complete_request(HEAD + b"Content-Length: 2000000\r\n\r\n", max_body=1024)
    assert isinstance(too_big, gw.Refusal) and (too_big.status, too_big.field) == (413, "body")
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    over = gw.complete_request(
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 2, max_body=1500
    )
    assert isinstance(over, gw.Refusal) and over.status == 413
    for value in (b"abc", b"-1", b"1, 2"):
        bad = gw.complete_request(HEAD + b"Content-Length: " + value + b"\r\n\r\n")
        assert isinstance(bad, gw.Refusal) and bad.field == "Content-Length"


def test_expect_100_continue_is_seen() -> None:
    asking, plain = gw.Framer(), gw.Framer()
    assert asking.feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 9\r\n\r\n") is None
    assert plain.feed(HEAD + b"Content-Length: 9\r\n\r\n") is None
    assert asking.expects_continue and not plain.expects_continue


def test_error_responses_are_complete_json_and_close() -> None:
    raw = gw.error_bytes(gw.Refusal(431, "Request Header Fields Too Large", "headers", "big"))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"Connection: close" in head and b"Content-Type: application/problem+json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {
        "type": "about:blank",
        "title": "Request Header Fields Too Large",
        "status": 431,
        "detail": "big",
        "errors": [{"detail": "big", "field": "headers"}],  # a header: no pointer into the body
        "error": "big",
        "field": "headers",
    }


@pytest.mark.parametrize(
    ("exc", "status", "field"),
    [
        (http_errors.LimitRequestHeaders("too large"), 431, "headers"),
        (http_errors.LimitRequestLine(9000, 8190), 414, "url"),
        (http_errors.InvalidRequestLine("GARBAGE"), 400, "request line"),
        (http_errors.InvalidRequestMethod("G3T"), 400, "request line"),
        (http_errors.InvalidHTTPVersion("HTTP/9"), 400, "request line"),
        (http_errors.InvalidHeaderName("bad name"), 400, "headers"),
        (http_errors.UnsupportedTransferCoding("gzip"), 501, "Transfer-Encoding"),
        (ValueError("a bug"), 500, "server"),
    ],
)
def test_parser_refusals_map_to_json_statuses(exc: BaseException, status: int, field: str) -> None:
    refusal = gw.refusal_for(exc)
    assert (refusal.status, refusal.field) == (status, field)


@pytest.mark.parametrize(
    "value",
    [
        b"\xb2",
        b"1\xb9",
        "²".encode(),
        "５".encode(),  # latin-1 '²', '¹': str.isdigit() says yes
        b"-1",
        b"+5",
        b" ",
        b"",
        b"0x10",
        b"1_000",
        b"1.0",
        b"1, 1",
        b"9" * 5000,  # > int's 4300 digits
    ],
)
def test_any_malformed_content_length_is_a_400_never_an_exception(value: bytes) -> None:
    refusal = gw.complete_request(HEAD + b"Content-Length: " + value + b"\r\n\r\n")
    assert isinstance(refusal, gw.Refusal), value
    assert (refusal.status, refusal.field) in {(400, "Content-Length"), (413, "body")}


def test_huge_declared_lengths_are_413_and_duplicates_or_te_with_cl_are_400() -> None:
    huge = gw.complete_request(HEAD + b"Content-Length: 99999999999999999999999999\r\n\r\n")
    assert isinstance(huge, gw.Refusal) and (huge.status, huge.field) == (413, "body")
    twice = gw.complete_request(HEAD + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nab")
    assert isinstance(twice, gw.Refusal) and (twice.status, twice.field) == (400, "Content-Length")
    both = gw.complete_request(
        HEAD + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert isinstance(both, gw.Refusal) and both.status == 400
    for size in ("²".encode(), b"-1", b"+1", b"1_0", b"f" * 5000):
        bad = gw.complete_request(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\n")
        assert isinstance(bad, gw.Refusal) and bad.status in (400, 413), size


def one_byte_chunks(body: bytes) -> bytes:
    return b"".join(b"1\r\n" + body[i : i + 1] + b"\r\n" for i in range(len(body))) + b"0\r\n\r\n"


def test_the_framer_resumes_instead_of_reframing_what_it_has_seen() -> None:
    """Fed a growing buffer, each call starts where the last one stopped: bytes already
    framed are never looked at again (here they are overwritten with garbage after being
    framed, and the end is still found). Re-framing the whole buffer on every read made a
    body of 1-byte chunks quadratic (bench/framing_bench.py measures both sizes)."""
    body = b'{"sensor_id": "s"}' * 20
    head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    request = head + one_byte_chunks(body)
    framer = gw.Framer()
    rescanned: list[object] = []
    buf = bytearray()
    for i in range(0, len(request), 6):  # a chunk a read, as a trickling client sends them
        buf += request[i : i + 6]
        outcome = framer.feed(buf)
        rescanned.append(gw.Framer().feed(buf))  # what framing it all again finds
        if i + 6 < len(request):
            assert outcome is None
            framed = max(framer._chunk or 0, len(head))
            buf[len(head) : framed] = b"z" * (framed - len(head))  # not a chunk size
    assert outcome == len(request)
    assert isinstance(rescanned[-1], gw.Refusal)  # the garbage is there: it was not re-read


def test_a_body_of_one_byte_chunks_is_one_request() -> None:
    body = b'{"a": 1}' * 100
    request = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + one_byte_chunks(body)
    assert gw.complete_request(request) == len(request)


def test_trailers_are_bounded_like_a_head() -> None:
    start = HEAD + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
    fields = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 100) for i in range(400))  # ~44 kB
    refusal = gw.complete_request(start + fields)  # not even ended: refused all the same
    assert isinstance(refusal, gw.Refusal)
    assert (refusal.status, refusal.field) == (431, "trailers")
    ended = gw.complete_request(start + fields + b"\r\n")
    assert isinstance(ended, gw.Refusal) and ended.field == "trailers"
    small = start + b"X-T: 1\r\n\r\n"
    assert gw.complete_request(small) == len(small)
    framer = gw.Framer()  # a trailer arriving a byte at a time is still found
    buf = bytearray()
    outcomes = []
    for byte in small:
        buf.append(byte)
        outcomes.append(framer.feed(buf))
    assert outcomes[-1] == len(small) and set(outcomes[:-1]) == {None}


def test_a_pipelined_request_is_framed_on_its_own() -> None:
    """The framer ends at the first request: what follows is the next one's, framed (and
    timed) afresh by the worker, never read by a serving thread as part of the first."""
    first = HEAD + b"Content-Length: 2\r\n\r\n{}"
    second_head = HEAD + b"Content-Length: 4000\r\n\r\n"
    buf = first + second_head + b'{"partial'
    assert gw.complete_request(buf) == len(first)
    assert gw.complete_request(buf[len(first) :]) is None  # the second waits for its body
