"""The files' order for the workers (tests/ordering.py): the longest first, then by tier."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from ordering import LONGEST, file_order


@dataclass
class Item:
    """What file_order reads of a pytest item: its id and its markers' names."""

    nodeid: str
    tier: str

    def iter_markers(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(name="parametrize"), SimpleNamespace(name=self.tier)]


def test_the_longest_files_first_then_end_to_end_integration_unit_each_file_whole() -> None:
    longest, second = LONGEST[0], LONGEST[1]
    items = [
        Item("tests/a/test_pure.py::test_one", "unit"),
        Item("tests/b/test_db.py::test_one", "integration"),
        Item(f"{second}::test_one", "integration"),
        Item("tests/a/test_pure.py::test_two", "unit"),
        Item("tests/c/test_mixed.py::test_unit", "unit"),
        Item("tests/c/test_mixed.py::test_browser", "e2e"),
        Item(f"{longest}::test_first", "e2e"),
        Item(f"{longest}::test_second", "e2e"),
        Item("tests/b/test_db.py::test_two", "integration"),
    ]
    ordered = [i.nodeid for i in file_order(items)]  # type: ignore[arg-type]
    assert ordered == [
        f"{longest}::test_first",
        f"{longest}::test_second",
        f"{second}::test_one",
        "tests/c/test_mixed.py::test_unit",  # a file's own order kept; its tier is its highest
        "tests/c/test_mixed.py::test_browser",
        "tests/b/test_db.py::test_one",
        "tests/b/test_db.py::test_two",
        "tests/a/test_pure.py::test_one",
        "tests/a/test_pure.py::test_two",
    ]


def test_every_listed_file_exists() -> None:
    """A renamed file would silently lose its place: the list names files that exist."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert [p for p in LONGEST if not (root / p).is_file()] == []
