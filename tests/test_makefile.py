"""``make help`` lists every target with a whole line: the first line of the comment above each
rule, a sentence of its own (read from the Makefile, as the help's awk reads it)."""

from __future__ import annotations

import re
from pathlib import Path

MAKEFILE = (Path(__file__).resolve().parents[1] / "Makefile").read_text()


def test_every_target_has_a_one_line_summary() -> None:
    (phony,) = re.findall(r"^\.PHONY: (.+)$", MAKEFILE, re.M)
    rules = re.findall(r"((?:^# .*\n)*)^([a-z][a-z-]*):", MAKEFILE, re.M)
    assert sorted(target for _, target in rules) == sorted(phony.split())
    for comment, target in rules:
        assert comment, f"make {target} has no comment: `make help` would not list it"
        first = comment.splitlines()[0].removeprefix("# ")
        assert first.endswith(".") and len(first) <= 100, f"make {target}: {first!r}"
