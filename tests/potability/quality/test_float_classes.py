"""Every float the API accepts has a drift cell, in SQL and in Python alike (issue 29).

``water.drift_cell`` once raised 22003 (underflow) on Solids = 5e-324, a subnormal the API
accepts, and stopped the hourly cell rollup and ``potability qc`` for a week. Here both cell
functions are fed every float class on every feature's grid - zero and negative zero, the
smallest subnormal and the largest, the minimum normal and its neighbours, the range's edges
and the float on either side of each, tiny values far below a cell - plus values drawn across
the whole exponent range by Hypothesis; SQL must answer, and answer what Python answers."""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from potability import db
from potability.features import FEATURES, ValidationError, check_value
from potability.quality import drift

MIN_NORMAL = sys.float_info.min  # 2.2250738585072014e-308
SMALLEST_SUBNORMAL = math.nextafter(0.0, 1.0)  # 5e-324


def float_classes(lo: float, hi: float) -> list[float]:
    """The named float classes around a range [lo, hi] (some outside it: the clamp)."""
    values = [
        0.0,
        -0.0,
        SMALLEST_SUBNORMAL,
        -SMALLEST_SUBNORMAL,
        math.nextafter(MIN_NORMAL, 0.0),  # the largest subnormal
        MIN_NORMAL,
        math.nextafter(MIN_NORMAL, 1.0),
        1e-300,
        1e-200,
        1e-20,
        lo,
        math.nextafter(lo, -math.inf),
        math.nextafter(lo, math.inf),
        hi,
        math.nextafter(hi, -math.inf),
        math.nextafter(hi, math.inf),
    ]
    width = (hi - lo) / drift.GRID_CELLS
    for cell in (1, 2, drift.GRID_CELLS - 1):  # cell boundaries near both ends
        edge = lo + cell * width
        values += [edge, math.nextafter(edge, -math.inf), math.nextafter(edge, math.inf)]
    return values


def _sql_cells(conn: db.Connection, lo: float, hi: float, values: list[float]) -> list[int]:
    cur = conn.cursor()
    cur.execute(
        "SELECT water.drift_cell(v, %s, %s) FROM unnest(%s::float8[]) "
        "WITH ORDINALITY AS u(v, n) ORDER BY n",
        (lo, hi, values),
    )
    return [int(r[0]) for r in cur.fetchall()]


def test_every_float_class_has_the_same_cell_in_sql_and_python(conn: db.Connection) -> None:
    for spec in FEATURES:
        values = float_classes(spec.minimum, spec.maximum)
        in_python = drift.cells_of(spec.name, values).tolist()
        assert _sql_cells(conn, spec.minimum, spec.maximum, values) == in_python, spec.name
        # the subnormals and negative zero are legal readings, in the bottom cell
        for v in (-0.0, SMALLEST_SUBNORMAL, MIN_NORMAL, 1e-300):
            assert check_value(spec.name, v) == v
        assert in_python[:8] == [0] * 8
        assert in_python[13] == drift.GRID_CELLS - 1  # hi itself: the last cell


def test_the_reading_of_the_issue_is_in_cell_zero(conn: db.Connection) -> None:
    """Solids = 5e-324 (issue 29): 22003 underflow before sql/018."""
    cur = conn.cursor()
    cur.execute("SELECT water.drift_cell(5e-324::float8, 0, 100000)")
    assert cur.fetchone()[0] == 0


def test_values_outside_a_range_are_still_refused_at_the_api() -> None:
    for spec in FEATURES:
        for v in (math.nextafter(spec.maximum, math.inf), -SMALLEST_SUBNORMAL - 1.0):
            with pytest.raises(ValidationError) as refused:
                check_value(spec.name, v)
            assert refused.value.field == spec.name


_ANY_MAGNITUDE = st.one_of(
    st.floats(min_value=0.0, max_value=1e5, allow_subnormal=True),
    st.builds(
        lambda m, e: m * 10.0**e,
        st.floats(min_value=1.0, max_value=9.999),
        st.integers(min_value=-323, max_value=4),
    ),
    st.integers(min_value=1, max_value=2**52).map(lambda n: n * SMALLEST_SUBNORMAL),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(_ANY_MAGNITUDE, min_size=1, max_size=40))
def test_sql_and_python_agree_on_any_magnitude(conn: db.Connection, values: list[float]) -> None:
    for spec in FEATURES:
        legal = [min(v, spec.maximum) for v in values]
        expected = drift.cells_of(spec.name, legal).tolist()
        assert _sql_cells(conn, spec.minimum, spec.maximum, legal) == expected, spec.name
