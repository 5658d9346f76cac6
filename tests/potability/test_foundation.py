"""The foundation against the real embedded PostgreSQL: schema, constraints, migrations, seed."""

from __future__ import annotations

import math

import pg8000.dbapi
import pytest

from potability import db, migrations, seed
from potability.features import (
    FEATURE_COLUMNS,
    FEATURE_NAMES,
    FEATURES,
    ValidationError,
    check_value,
    column,
    validate_features,
)

LAB = {
    "sample_id": "lab-x",
    "potability": 1,
    "sampled_at": "2026-01-01T00:00:00Z",
    "submitted_by": "tester",
    "source": "lab",
}


def _insert_sample(conn: db.Connection, **overrides: object) -> None:
    row = {**LAB, **dict.fromkeys(FEATURE_COLUMNS, 1.0), "ph": 7.0, **overrides}
    cols = list(row)
    conn.cursor().execute(
        f"INSERT INTO water.water_potability ({', '.join(cols)}) "
        f"VALUES ({', '.join(['%s'] * len(cols))})",
        [row[c] for c in cols],
    )


def _count(conn: db.Connection, where: str = "true") -> int:
    cur = conn.cursor()
    cur.execute(f"SELECT count(*) FROM water.water_potability WHERE {where}")
    return cur.fetchone()[0]


def test_seed_loaded_every_row(conn):
    assert _count(conn, "source = 'seed'") == 3276
    assert _count(conn, "source = 'seed' AND potability = 1") == 1278
    assert _count(conn, "source = 'seed' AND ph IS NULL") == 491
    assert _count(conn, "source = 'seed' AND sulfate IS NULL") == 781
    assert _count(conn, "source = 'seed' AND trihalomethanes IS NULL") == 162


def test_seed_is_idempotent(conn):
    assert seed.seed(conn) == 0
    assert _count(conn, "source = 'seed'") == 3276


def test_migrations_are_idempotent_and_recorded(conn):
    assert migrations.apply_migrations(conn) == []
    cur = conn.cursor()
    cur.execute("SELECT version FROM water.schema_migrations ORDER BY version")
    assert [r[0] for r in cur.fetchall()] == [m.version for m in migrations.discover()]


def test_edited_migration_is_refused(conn, tmp_path):
    for m in migrations.discover():
        (tmp_path / f"{m.version}_{m.name}.sql").write_text(m.sql)
    first = migrations.discover()[0]
    (tmp_path / f"{first.version}_{first.name}.sql").write_text(first.sql + "\n-- edited\n")
    with pytest.raises(RuntimeError, match="edited after it was applied"):
        migrations.apply_migrations(conn, tmp_path)


@pytest.mark.parametrize(
    "overrides",
    [{"ph": 15.0}, {"solids": -1.0}, {"potability": 2}, {"source": "web"}],
    ids=["ph 15", "negative Solids", "potability 2", "unknown source"],
)
def test_constraints_reject_bad_rows_and_write_nothing(clean_db, overrides):
    before = _count(clean_db)
    with pytest.raises(pg8000.dbapi.DatabaseError, match="23514"):  # check_violation
        _insert_sample(clean_db, **overrides)
    clean_db.rollback()
    assert _count(clean_db) == before


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f.name)
def test_sql_ranges_match_the_feature_schema(clean_db, feature):
    """Every bound in sql/ is the bound in potability.features: inclusive, and no wider."""
    col = column(feature.name)
    for i, value in enumerate([feature.minimum, feature.maximum]):
        _insert_sample(clean_db, sample_id=f"bound-{col}-{i}", **{col: value})
    clean_db.commit()
    for value in [feature.minimum - 1e-6, feature.maximum + 1e-6]:
        with pytest.raises(pg8000.dbapi.DatabaseError, match="23514"):
            _insert_sample(clean_db, sample_id=f"out-{col}", **{col: value})
        clean_db.rollback()
    for table in ["water_inferences"]:
        cur = clean_db.cursor()
        cur.execute(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid "
            "WHERE t.relname = %s AND pg_get_constraintdef(c.oid) LIKE %s",
            (table, f"CHECK ((({col} >= %"),
        )
        (definition,) = cur.fetchone()
        assert f"{col} >= {feature.minimum:g}" in definition.replace("(", "").replace(
            ")", ""
        ).replace("::double precision", "")
        assert f"{col} <= {feature.maximum:g}" in definition.replace("(", "").replace(
            ")", ""
        ).replace("::double precision", "")


def test_missing_values_are_legal(clean_db):
    _insert_sample(clean_db, sample_id="nulls", ph=None, sulfate=None, trihalomethanes=None)
    clean_db.commit()
    assert _count(clean_db, "sample_id = 'nulls' AND ph IS NULL") == 1


def test_validation_accepts_null_and_rejects_nonsense():
    reading = dict.fromkeys(FEATURE_NAMES, 1.0) | {"ph": None}
    assert validate_features(reading)["ph"] is None
    for bad, field in [
        ({**reading, "ph": 15}, "ph"),
        ({**reading, "Solids": -1}, "Solids"),
        ({**reading, "ph": "7"}, "ph"),
        ({**reading, "ph": math.nan}, "ph"),
        ({**reading, "ph": math.inf}, "ph"),
        ({**reading, "ph": True}, "ph"),
        ({**reading, "extra": 1}, "extra"),
        ({k: v for k, v in reading.items() if k != "Turbidity"}, "Turbidity"),
    ]:
        with pytest.raises(ValidationError) as err:
            validate_features(bad)
        assert err.value.field == field
    assert check_value("ph", 14) == 14.0


def test_dataset_checksum_is_enforced(tmp_path):
    copy = tmp_path / "w.csv"
    copy.write_bytes(seed.DATA_CSV.read_bytes() + b"\n")
    with pytest.raises(ValueError, match="sha256"):
        seed.load_dataset(copy)
    assert len(seed.load_dataset()) == 3276


def test_database_url_forms():
    assert db.parse_database_url("postgresql://postgres:@/potability?host=/tmp/x") == {
        "user": "postgres",
        "database": "potability",
        "unix_sock": "/tmp/x/.s.PGSQL.5432",
    }
    assert db.parse_database_url("postgresql://u:p%40ss@db.example:6543/app") == {
        "user": "u",
        "password": "p@ss",
        "database": "app",
        "host": "db.example",
        "port": 6543,
    }
    assert db.sqlalchemy_url("postgresql://postgres:@/potability?host=/tmp/x") == (
        "postgresql+pg8000://postgres@/potability?unix_sock=/tmp/x/.s.PGSQL.5432"
    )


def test_unreachable_database_is_reported_as_unavailable(dead_database_url):
    from potability.config import Settings

    with pytest.raises(db.DatabaseUnavailable):
        db.connect(Settings(database_url=dead_database_url))
