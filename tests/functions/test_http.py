"""functions/http.py's body decoding: orjson's fast answer is json's checked one, always.

``parse_json`` takes orjson's result only when it can prove nothing was lost (no duplicate
key, no integer json reads as a float); otherwise it decodes again by ``parse_json_checked``.
So the two must agree on every body: the same value, or the same refusal.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from functions.http import ApiError, parse_json, parse_json_checked


def _outcome(decode: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "value", decode(data)
    except ApiError as exc:
        return "refused", (exc.status, exc.field, exc.message)


def _same(data: bytes) -> None:
    fast, checked = _outcome(parse_json, data), _outcome(parse_json_checked, data)
    assert fast == checked, data
    if fast[0] == "value":  # equal, and equal in kind: 1 is not 1.0, -0.0 is not 0.0
        assert repr(fast[1]) == repr(checked[1]), data


READING = '{"ph": 7.1, "Hardness": 204.9, "Sulfate": null, "Turbidity": 3}'


@pytest.mark.parametrize(
    "text",
    [
        f'{{"sensor_id": "plant-7", "readings": [{READING}, {READING}]}}',
        # duplicates, at the top, in a reading, hidden behind colons in strings
        '{"sensor_id": "a", "sensor_id": "b"}',
        '{"readings": [{"ph": 7, "ph": 8}]}',
        '{"a": "x:y", "a": 2}',
        '{"a:b": 1, "a:b": 2, "c": "::"}',
        '{"a" : 1 , "a" : 2}',
        '{"a": "\\":", "a": 1}',
        # an escaped colon makes a key that looks unique to a byte count
        '{"a\\u003a": 1, "b": 2, "b": 3, "c": ":"}',
        '{"a\\u003A": 1}',
        '{"\\\\u003a": 1}',
        # integers json reads as floats, and beyond orjson's 64 bits
        '{"ph": 999999999999999999}',
        '{"ph": 1000000000000000000}',
        '{"ph": -99999999999999999}',
        '{"ph": -100000000000000000}',
        '{"ph": 18446744073709551616}',
        "[" + "9" * 40 + "]",
        # what neither accepts, or only json does
        '{"ph": NaN}',
        '{"ph": -Infinity}',
        '{"ph": 1e400}',
        '"\\ud800"',
        '{"a": 1,}',
        "[" * 2000 + "]" * 2000,
        "",
        "\ufeff{}",
        '{"a": true, "b": false, "c": null, "d": -0.0, "e": 5e-324, "f": [[], {}]}',
    ],
)
def test_the_fast_decoding_answers_what_the_checked_one_answers(text: str) -> None:
    _same(text.encode())


def test_a_body_that_is_not_utf8_is_refused_by_both() -> None:
    _same(b'{"sensor_id": "\xff"}')
    assert _outcome(parse_json, b'{"a": "\xff"}')[1][2] == "body is not valid UTF-8"


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab:"\\\u2028\U0001f600'), max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(st.tuples(st.text(alphabet="ab:", max_size=3), inner), max_size=4)
    ),
    max_leaves=20,
)


def _write(value: Any, ascii_only: bool) -> str:
    """JSON text of ``value``; a list of pairs becomes an object, its repeated keys kept."""
    if isinstance(value, list) and value and all(isinstance(v, tuple) for v in value):
        pairs = (
            f"{json.dumps(k, ensure_ascii=ascii_only)}: {_write(v, ascii_only)}" for k, v in value
        )
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_write(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


@hyp_settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(_JSON, st.booleans())
def test_generated_bodies_with_repeated_keys_decode_alike(value: Any, ascii_only: bool) -> None:
    _same(_write(value, ascii_only).encode())


def test_a_plain_body_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path is taken for what sensors send, colons in strings included: json's
    decoding is for the bodies orjson cannot vouch for."""
    import functions.http

    def never(data: bytes) -> Any:
        raise AssertionError(f"decoded twice: {data!r}")

    monkeypatch.setattr(functions.http, "parse_json_checked", never)
    body = f'{{"sensor_id": "plant:7", "request_id": "a:b:c", "readings": [{READING}]}}'
    assert parse_json(body.encode())["sensor_id"] == "plant:7"
    assert parse_json(b'{"ph": 999999999999999999, "t": "12:00:00"}')["t"] == "12:00:00"
