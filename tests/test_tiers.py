"""The tiers (tests/tiers.py) on sessions of their own (pytester, in this process): a pure test
is unit, one requesting the database - directly or through another fixture - is integration,
one in an end-to-end folder is e2e, an explicit marker wins; a unit test that starts a process
or opens a socket fails, even when the code under test swallows the refusal."""

from __future__ import annotations

import pytest

SERVICES = """
import pytest

@pytest.fixture
def database_url():
    return "postgresql://postgres@/nowhere"

@pytest.fixture
def settings(database_url):
    return {"database_url": database_url}
"""


def _collected(pytester: pytest.Pytester, tier: str) -> set[str]:
    result = pytester.runpytest("-p", "tiers", "--collect-only", "-q", "-m", tier)
    return {line for line in result.outlines if "::" in line}


def test_tiers_follow_the_fixtures_the_folder_and_the_markers(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SERVICES)
    pytester.makepyfile(
        test_pure="def test_pure():\n    assert sorted([2, 1]) == [1, 2]\n",
        test_db="def test_db(database_url):\n    assert database_url\n",
        test_indirect="def test_indirect(settings):\n    assert settings\n",
        test_marked=(
            "import pytest\n\n@pytest.mark.integration\ndef test_marked():\n    pass\n\n"
            "@pytest.mark.e2e\ndef test_whole(database_url):\n    pass\n"
        ),
    )
    pytester.mkdir("browser")
    pytester.path.joinpath("browser", "test_page.py").write_text("def test_page():\n    pass\n")
    assert _collected(pytester, "unit") == {"test_pure.py::test_pure"}
    assert _collected(pytester, "integration") == {
        "test_db.py::test_db",
        "test_indirect.py::test_indirect",
        "test_marked.py::test_marked",
    }
    assert _collected(pytester, "e2e") == {
        "browser/test_page.py::test_page",
        "test_marked.py::test_whole",
    }


def test_a_unit_marker_on_a_test_of_the_database_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SERVICES)
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.unit\ndef test_db(database_url):\n    pass\n"
    )
    result = pytester.runpytest("-p", "tiers", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "is marked unit but requests database_url" in result.stderr.str()


def test_two_tier_markers_are_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest\n\n@pytest.mark.unit\n@pytest.mark.e2e\ndef test_both():\n    pass\n"
    )
    result = pytester.runpytest("-p", "tiers", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "more than one tier marker" in result.stderr.str()


def test_a_unit_test_that_starts_a_process_or_opens_a_socket_fails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(SERVICES)
    pytester.makepyfile(
        test_unit="""
import os
import socket
import subprocess

def test_process():
    subprocess.run(["true"], check=True)

def test_shell():
    os.system("true")

def test_connect():
    socket.create_connection(("127.0.0.1", 9), timeout=1)

def test_bind():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))

def test_swallowed():
    try:
        subprocess.run(["true"], check=True)
    except BaseException:
        pass

def test_pure():
    assert int("7") == 7
""",
        test_integration="""
def test_db(database_url):
    assert database_url.startswith("postgresql://")
""",
    )
    result = pytester.runpytest("-p", "tiers", "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=5)
    text = result.stdout.str()
    assert text.count("a unit test must not start a process") >= 3
    assert "a unit test must not connect a socket (('127.0.0.1', 9))" in text
    assert "a unit test must not bind a socket (('127.0.0.1', 0))" in text
    assert "the code under test caught the refusal" in text
    for name in ("process", "shell", "connect", "bind", "swallowed"):
        assert f"FAILED test_unit.py::test_{name}" in text
