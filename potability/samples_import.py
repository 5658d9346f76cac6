"""``potability samples import FILE.csv``: a regulator's lab results, posted to add_sample.

The CSV has a header row naming the nine measurements (``ph``, ``Hardness``, ..., as in the
data set and the API; case and the database's snake_case spellings are accepted too),
``potability``, ``sample_id``, ``sampled_at`` and optionally ``sensor_id``. An empty cell is
"not measured" (null). Values are sent as the function's contract says (numbers as numbers,
``potability`` as an integer) and otherwise as written, so the function - the one place that
validates a sample - judges every row and names what is wrong.

Rows go in batches (``{"samples": [...]}``, at most ``SAMPLES_MAX_BATCH``). The function takes
a batch all or nothing, so when it refuses one (400 or 409 naming ``samples[i].field``; a 400
lists every bad row's fields at once in ``errors[]``) the import reports those rows with their
CSV line numbers and posts the rest of the batch again: every good row is recorded, every bad
one reported. Re-running is safe: the sample id makes the
function answer ``already recorded`` for a row it has (with identical values), which the
import counts as such. A 503 or a connection failure is retried with a pause (the function
loses nothing); a refused token stops the import at once. Exit status: 0 when every row is
recorded or already recorded, 1 when any row was refused or the function stayed unavailable,
2 when the file or the token is unusable.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import requests

from potability.features import FEATURE_COLUMNS, FEATURE_NAMES, TARGET

REQUIRED = ("sample_id", "sampled_at", TARGET)
OPTIONAL = ("sensor_id",)
DEFAULT_BATCH = 100
RETRIES = 5
"""Attempts per batch while the function answers 503 or cannot be reached."""


class ImportAborted(Exception):
    """The import cannot go on (bad file, refused token, function unavailable)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Row:
    line: int
    """Line number in the CSV (the header is line 1)."""
    record: dict[str, Any]


@dataclass
class Outcome:
    recorded: int = 0
    already_recorded: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    """(CSV line, reason), in line order."""

    @property
    def total(self) -> int:
        return self.recorded + self.already_recorded + len(self.refused)


def _canonical_names() -> dict[str, str]:
    names = {n.lower(): n for n in (*FEATURE_NAMES, *REQUIRED, *OPTIONAL)}
    names.update({c.lower(): n for c, n in zip(FEATURE_COLUMNS, FEATURE_NAMES, strict=False)})
    return names


def _value(name: str, text: str) -> Any:
    """A cell as the API wants it: null when empty, a number for measurements, an integer
    label; anything else stays the string it is, for the function to refuse by name."""
    text = text.strip()
    if name in FEATURE_NAMES:
        if text == "":
            return None
        try:
            return float(text)
        except ValueError:
            return text
    if name == TARGET:
        return int(text) if text in ("0", "1") else text
    if name == "sensor_id" and text == "":
        return None
    return text


def read_rows(handle: TextIO) -> list[Row]:
    """The CSV's rows as API records, each with its line number; raise on a bad header."""
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportAborted("the file is empty (a header row is required)", 2) from None
    names = _canonical_names()
    known = [names.get(h.strip().lower()) for h in header]
    unknown = [h for h, c in zip(header, known, strict=False) if c is None]
    if unknown:
        raise ImportAborted(
            f"unknown column(s) {unknown}; expected the nine measurements "
            f"{list(FEATURE_NAMES)}, {list(REQUIRED)} and optionally "
            f"{list(OPTIONAL)}",
            2,
        )
    columns = [c for c in known if c is not None]  # all of them: none is unknown
    missing = [n for n in (*FEATURE_NAMES, *REQUIRED) if n not in columns]
    if missing:
        raise ImportAborted(f"missing column(s) {missing}", 2)
    if len(set(columns)) != len(columns):
        raise ImportAborted(f"a column appears twice in the header {header}", 2)
    rows = []
    start = reader.line_num
    for cells in reader:
        line, start = start + 1, reader.line_num
        if not any(c.strip() for c in cells):
            continue  # blank lines (spreadsheets end files with them)
        if len(cells) != len(columns):
            rows.append(
                Row(line, {"__cells__": f"has {len(cells)} cells, the header {len(columns)}"})
            )
            continue
        rows.append(Row(line, {c: _value(c, v) for c, v in zip(columns, cells, strict=False)}))
    return rows


def _index(field_name: str) -> int | None:
    """``samples[3].ph`` -> 3 (None when the error names no row)."""
    if field_name.startswith("samples[") and "]" in field_name:
        try:
            return int(field_name[len("samples[") : field_name.index("]")])
        except ValueError:
            return None
    return None


def _refusals(body: dict[str, Any], rows: int) -> dict[int, list[str]] | None:
    """The rows a refusal names, each with its reasons (``field: detail``, the field without
    its ``samples[i].``), from the answer's ``errors[]`` - every bad row of the batch at once -
    or its ``field`` / ``error``; None when an error names no row of the batch (the batch as a
    whole was refused: it cannot be fixed by leaving rows out)."""
    errors = body.get("errors") or [{"field": body.get("field", ""), "detail": body.get("error")}]
    named: dict[int, list[str]] = {}
    for error in errors:
        where = str(error.get("field", ""))
        i = _index(where)
        if i is None or i >= rows:
            return None
        named.setdefault(i, []).append(f"{where.split('.', 1)[-1]}: {error.get('detail')}")
    return named


@dataclass
class Poster:
    """POSTs batches to add_sample; retries what is retryable."""

    url: str
    token: str
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)

    def post(self, records: Sequence[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"}
        last = ""
        for attempt in range(RETRIES):
            try:
                response = self.session.post(
                    self.url, json={"samples": list(records)}, headers=headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code != 503:
                    try:
                        return response.status_code, response.json()
                    except ValueError:
                        return response.status_code, {"error": response.text[:200]}
                last = f"503 {response.text[:200]}"
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    self.sleep(min(float(retry_after), 30.0))
                    continue
            self.sleep(min(2.0**attempt, 30.0))
        raise ImportAborted(
            f"add_sample at {self.url} is unavailable after {RETRIES} attempts "
            f"({last}); nothing is lost: run the import again later",
            1,
        )


def _line_of(rows: Sequence[Row], i: int) -> str:
    return f"line {rows[i].line}" if 0 <= i < len(rows) else f"samples[{i}]"


def import_rows(
    rows: Sequence[Row],
    poster: Poster,
    batch_size: int = DEFAULT_BATCH,
    report: Callable[[str], None] = print,
) -> Outcome:
    """Post every row; report progress and each refused row as it is known."""
    outcome = Outcome()
    for start in range(0, len(rows), batch_size):
        pending = []
        for row in rows[start : start + batch_size]:
            if "__cells__" in row.record:
                outcome.refused.append((row.line, row.record["__cells__"]))
                report(f"  line {row.line}: refused - {row.record['__cells__']}")
            else:
                pending.append(row)
        while pending:
            status, body = poster.post([r.record for r in pending])
            if status in (200, 201):
                states = [s.get("status") for s in body.get("samples", [])]
                outcome.recorded += states.count("recorded")
                outcome.already_recorded += states.count("already recorded")
                break
            if status in (401, 403):
                raise ImportAborted(
                    f"add_sample refused the regulator token ({status}: {body.get('error')})", 2
                )
            named = _refusals(body, len(pending)) if status in (400, 409, 422) else None
            if not named:
                raise ImportAborted(f"add_sample answered {status}: {body}", 1)

            def line_of(match: re.Match[str], rows: Sequence[Row] = pending) -> str:
                return _line_of(rows, int(match.group(1)))

            for i in sorted(named, reverse=True):
                bad = pending.pop(i)
                reason = "; ".join(re.sub(r"samples\[(\d+)\]", line_of, r) for r in named[i])
                outcome.refused.append((bad.line, reason))
                report(f"  line {bad.line}: refused - {reason}")
        done = min(start + batch_size, len(rows))
        report(
            f"rows {start + 1}-{done} of {len(rows)}: {outcome.recorded} recorded, "
            f"{outcome.already_recorded} already recorded, {len(outcome.refused)} refused"
        )
    outcome.refused.sort()
    return outcome


def import_csv(
    path: Path,
    url: str,
    token: str,
    batch_size: int = DEFAULT_BATCH,
    report: Callable[[str], None] = print,
    poster: Poster | None = None,
) -> Outcome:
    """Read ``path`` and import it (see the module docstring)."""
    if not url:
        raise ImportAborted(
            "no add_sample URL: start the functions (`potability functions`) "
            "or pass --url / set ADD_SAMPLE_URL",
            2,
        )
    if not token:
        raise ImportAborted("no regulator token: pass --token-file or set REGULATOR_TOKEN", 2)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = read_rows(handle)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ImportAborted(f"cannot read {path}: {exc}", 2) from None
    return import_rows(rows, poster or Poster(url, token), batch_size, report)


def summary(outcome: Outcome) -> Iterable[str]:
    yield (
        f"{outcome.total} rows: {outcome.recorded} recorded, {outcome.already_recorded} "
        f"already recorded, {len(outcome.refused)} refused"
    )
    for line, reason in outcome.refused:
        yield f"  line {line}: {reason}"
