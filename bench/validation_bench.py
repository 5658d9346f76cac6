"""Request validation cost per call: predict's single reading and a batch of 100, add_sample's
sample, in CPU microseconds (median of repeats), each as the function pays it - the strict JSON
parse of the body (``functions.http.parse_json``) and then validation - and validation alone.

Run it on the tree to measure; to compare with another revision, put that revision's
``functions`` and ``potability`` first on the path (the script only calls ``parse_json``,
``parse_predict`` and ``parse_samples``, whose signatures did not change):

    .venv/bin/python bench/validation_bench.py
    git archive <rev> functions potability | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old .venv/bin/python bench/validation_bench.py
"""

from __future__ import annotations

import functools
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from functions_bench import READING  # bench/, beside this script: one reading for all benches

import functions.validation as validation
from functions.http import ApiError, parse_json
from functions.validation import parse_predict, parse_samples

SINGLE = {"sensor_id": "plant-7", "request_id": "req-0001", "reading": READING}
BATCH = {"sensor_id": "plant-7", "readings": [dict(READING, ph=6 + i / 100) for i in range(100)]}
SAMPLE = {
    **READING,
    "potability": 1,
    "sample_id": "lab-2024-0001",
    "sampled_at": "2024-05-01T09:30:00Z",
    "sensor_id": "plant-7",
}
BAD = {"sensor_id": "plant-7", "readings": [dict(READING, ph=15.0, Solids="x")] * 10}
WORST = {"sensor_id": "plant-7", "readings": [dict.fromkeys(READING, "x")] * 500}
"""Every measurement of a 500-reading batch wrong: the most errors one body can carry."""
NOW = datetime(2025, 1, 1, tzinfo=UTC)
REPEATS = 9


def per_call_us(call: Callable[[], Any], calls: int) -> float:
    """Median over :data:`REPEATS` runs of ``calls`` calls, in microseconds of this process's
    CPU per call (CPU rather than wall time: the machine is shared, and a busy neighbour
    stretches wall time, not the work done)."""
    call()  # warm: caches, adapters built on first use
    runs = []
    for _ in range(REPEATS):
        started = time.process_time()
        for _ in range(calls):
            call()
        runs.append((time.process_time() - started) / calls * 1e6)
    return statistics.median(runs)


def _parsed(validate: Callable[[Any], Any], data: bytes) -> Any:
    return validate(parse_json(data))


def refused(body: Any) -> Callable[[], None]:
    def call() -> None:
        try:
            parse_predict(body, None, 500, NOW)
        except ApiError:
            return
        raise AssertionError("the bad body was accepted")

    return call


def main() -> None:
    cases: list[tuple[str, Any, Callable[[Any], Any], int]] = [
        ("predict, one reading", SINGLE, lambda b: parse_predict(b, "req-0001", 500, NOW), 20000),
        ("predict, batch of 100", BATCH, lambda b: parse_predict(b, None, 500, NOW), 300),
        ("add_sample, one sample", SAMPLE, lambda b: parse_samples(b, 500, NOW), 20000),
    ]
    print(f"validation ({validation.__file__})")
    print(f"{'case':<26} {'parse+validate us':>18} {'validate only us':>17}")
    for name, body, validate, calls in cases:
        data = json.dumps(body).encode()
        both = per_call_us(functools.partial(_parsed, validate, data), calls)
        only = per_call_us(functools.partial(validate, body), calls)
        print(f"{name:<26} {both:>18.1f} {only:>17.1f}")
    bad = per_call_us(refused(BAD), 2000)
    print(f"{'refused, 10 bad readings':<26} {'':>18} {bad:>17.1f}")
    worst = per_call_us(refused(WORST), 10)
    print(f"{'refused, 500 x 9 errors':<26} {'':>18} {worst:>17.1f}")
    adapter = getattr(validation, "predict_adapter", None)
    if adapter is not None:  # pydantic's own JSON parser, for comparison (not used: see docs)
        for name, body, calls in (("one reading", SINGLE, 20000), ("batch of 100", BATCH, 300)):
            data = json.dumps(body).encode()
            fast = per_call_us(functools.partial(adapter(500).validate_json, data), calls)
            print(f"{'validate_json, ' + name:<26} {fast:>18.1f}")


if __name__ == "__main__":
    main()
