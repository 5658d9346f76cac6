"""The one feature schema: the nine measurements, their units and physically valid ranges.

Everything that touches a measurement - the SQL CHECK constraints (verified against this
module by the tests), the functions' request models (generated from :data:`FEATURES`:
functions/validation.py) and so the OpenAPI document, the model server and training - reads it
from here, so a range can never disagree between the database and the API.

Ranges are *physical* plausibility bounds, deliberately generous (the data set's documented
observations sit well inside them): they catch unit mistakes and broken sensors, not unusual
water. Missing values are legal everywhere (the data set has NaN in ph, Sulfate and
Trihalomethanes); the model imputes them.

Subnormal values (0 < |x| < 2.2e-308, e.g. 5e-324) are accepted, deliberately (issue 29). As
measurements they are not plausible - no instrument resolves 1e-308 ppm, the figure is a zero
that went through some float arithmetic (a unit conversion, a calibration offset) - but they
are *indistinguishable* from the legal reading 0.0 for every purpose the reading serves: the
model sees 0 (it scales and thresholds in float64, where a subnormal behaves as 0 to ~300
digits), the drift grid puts it in cell 0 like 0.0. Refusing it would throw away the other
eight measurements of a real reading for no safety gain, and a 400 would teach nothing to a
sensor whose firmware produces it. What mattered was that a stored reading, any reading the
API accepts, can never stop a job: ``water.drift_cell`` and
:func:`potability.quality.drift.cells_of` place every float in the ranges below - subnormals,
the minimum normal, both edges, their neighbours, negative zero - without an error (sql/018,
tests/potability/quality/test_float_classes.py), and a reading a job still cannot process is
quarantined, not allowed to block the rest (:mod:`potability.jobs`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Feature:
    """One measurement: its column name, unit, and inclusive valid range."""

    name: str
    unit: str
    minimum: float
    maximum: float
    description: str


FEATURES: tuple[Feature, ...] = (
    Feature("ph", "pH", 0.0, 14.0, "acid-base balance"),
    Feature("Hardness", "mg/L", 0.0, 2000.0, "calcium and magnesium salts"),
    Feature("Solids", "ppm", 0.0, 100000.0, "total dissolved solids"),
    Feature("Chloramines", "ppm", 0.0, 50.0, "chloramine concentration"),
    Feature("Sulfate", "mg/L", 0.0, 2000.0, "sulfate concentration"),
    Feature("Conductivity", "uS/cm", 0.0, 5000.0, "electrical conductivity"),
    Feature("Organic_carbon", "ppm", 0.0, 100.0, "total organic carbon"),
    Feature("Trihalomethanes", "ug/L", 0.0, 1000.0, "trihalomethane concentration"),
    Feature("Turbidity", "NTU", 0.0, 100.0, "cloudiness"),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)

SMOKE_SENSOR_PREFIX = "smoke-"
"""Sensor ids of the deploy smoke test (``potability.gcp.smoke``): its readings and lab samples
are real rows, written through the real path, and are left out of what describes the water -
the training export, quality control's matching and the status page's figures. Terraform binds
only the smoke-test account to such an id, so no real sensor can write one."""
SMOKE_SENSOR_LIKE = SMOKE_SENSOR_PREFIX + "%"
"""The SQL ``LIKE`` pattern of :data:`SMOKE_SENSOR_PREFIX` (it has no ``%`` or ``_``)."""
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
TARGET = "potability"
"""Target column name in the database; the CSV spells it ``Potability``."""


def column(feature_name: str) -> str:
    """SQL column for a feature: lower case, so no identifier ever needs quoting."""
    return feature_name.lower()


FEATURE_COLUMNS: tuple[str, ...] = tuple(column(n) for n in FEATURE_NAMES)


class ValidationError(ValueError):
    """A request or record that does not fit the schema; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_value(name: str, value: Any, field: str | None = None) -> float | None:
    """Return the measurement as a float (or None when missing), or raise ValidationError.

    Only an explicit JSON null means "missing": NaN/Infinity (as numbers or strings) and
    strings such as "7.1" are rejected so a broken sensor can never pass as a reading.
    """
    where = field or name
    feature = FEATURES_BY_NAME[name]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(where, f"must be a number or null, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(where, "must be finite (use null for a missing value)")
    if not feature.minimum <= number <= feature.maximum:
        raise ValidationError(
            where,
            f"{number:g} {feature.unit} is outside the valid range "
            f"[{feature.minimum:g}, {feature.maximum:g}]",
        )
    return number


def validate_features(
    record: Mapping[str, Any], *, where: str = "", allow_extra: frozenset[str] = frozenset()
) -> dict[str, float | None]:
    """Validate one reading: all nine names present, nothing unknown, each value in range.

    ``allow_extra`` lists the other keys the caller handles itself (e.g. ``potability``).
    """
    if not isinstance(record, Mapping):
        raise ValidationError(where or "reading", "must be a JSON object")
    unknown = sorted(set(record) - set(FEATURE_NAMES) - allow_extra)
    if unknown:
        raise ValidationError(f"{where}{unknown[0]}", "unknown field")
    missing = [n for n in FEATURE_NAMES if n not in record]
    if missing:
        raise ValidationError(
            f"{where}{missing[0]}", "is required (send null for a missing measurement)"
        )
    return {n: check_value(n, record[n], f"{where}{n}") for n in FEATURE_NAMES}
