"""The owner of ``water.pipeline_runs`` on a real PostgreSQL: the steps' writes, then the
questions the rest of the system asks - a run by id, the latest run, the current champion (and
when it was trained), staleness - answered as typed rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from potability import alerts, db
from potability.config import Settings
from potability.governance import run_record
from potability.governance.run_record import ChampionRecord, PipelineRun


def _decide(settings: Settings, run_id: str, decision: str, version: str, precision: float) -> None:
    run_record.record_decision(
        settings,
        run_id,
        {
            "decision": decision,
            "model_name": "wp",
            "champion_version": version,
            "champion_family": "random_forest",
            "champion_precision": precision,
            "champion_precision_low": precision - 0.05,
            "champion_precision_high": precision + 0.05,
            "champion_recall": 0.3,
            "champion_threshold": 0.6,
            "recall_floor": 0.2,
        },
        {"alias_moved": decision != "champion_kept", "previous_champion_version": None},
    )


def _succeeded(
    settings: Settings, run_id: str, decision: str, version: str, precision: float
) -> None:
    run_record.start_run(settings, run_id, "ab" * 32, 3000)
    _decide(settings, run_id, decision, version, precision)
    run_record.finish_run(settings, run_id)


def test_the_readers_answer_from_the_steps_writes(runs_db: Settings) -> None:
    settings = runs_db
    conn = db.connect(settings)
    try:
        assert run_record.last_run(conn) is None
        assert run_record.current_champion(conn) is None
        assert run_record.find_run(conn, "rr-1") is None

        _succeeded(settings, "rr-1", "first_champion", "1", 0.66)
        _succeeded(settings, "rr-2", "champion_kept", "1", 0.67)
        run_record.start_run(settings, "rr-3", "cd" * 32, 3010)
        _decide(settings, "rr-3", "challenger_wins", "2", 0.70)
        details = run_record.mark_failed(settings, "rr-3", "deploy: OSError: unreachable")
        assert details == {"alias_moved": True, "previous_champion_version": None}

        first = run_record.read_run(settings, "rr-1")
        assert isinstance(first, PipelineRun)
        assert (
            first.status,
            first.decision,
            first.champion_version,
            first.training_rows,
            first.data_sha256,
        ) == ("succeeded", "first_champion", "1", 3000, "ab" * 32)
        assert first.champion_precision == pytest.approx(0.66)
        assert first.finished_at > first.started_at

        last = run_record.last_run(conn)
        assert (last.run_id, last.status, last.error) == (
            "rr-3",
            "failed",
            "deploy: OSError: unreachable",
        )
        assert last.details["alias_moved"] is True  # jsonb arrives as a dict

        # The failed run's challenger is not the champion; the run that kept version 1
        # confirms it, and version 1 was trained by the run that first promoted it.
        champion = run_record.current_champion(conn)
        assert isinstance(champion, ChampionRecord)
        assert (champion.version, champion.run.run_id) == ("1", "rr-2")
        assert champion.run.champion_precision_low == pytest.approx(0.62)
        assert champion.trained_at == first.started_at

        _succeeded(settings, "rr-4", "challenger_wins", "2", 0.71)
        champion = run_record.current_champion(conn)
        assert (champion.version, champion.run.decision) == ("2", "challenger_wins")
        assert champion.trained_at == run_record.find_run(conn, "rr-4").started_at
        assert run_record.last_run(conn).run_id == "rr-4"
    finally:
        conn.close()


def test_a_decision_with_a_column_that_is_not_one_is_refused(runs_db: Settings) -> None:
    with pytest.raises(ValueError, match="not decision columns: \\['status'\\]"):
        run_record.record_decision(runs_db, "rr-x", {"status": "succeeded"}, {})
    assert run_record.read_run(runs_db, "rr-x") is None


def test_staleness_is_raised_once_and_resolved_by_the_next_success(runs_db: Settings) -> None:
    settings = runs_db.with_(alert_stale_hours=36)
    conn = db.connect(settings)
    try:
        now = datetime.now(UTC)
        assert run_record.check_stale(conn, settings, now) == []  # no run yet: nothing stale
        _succeeded(settings, "rr-old", "first_champion", "1", 0.66)
        assert run_record.check_stale(conn, settings, now + timedelta(hours=35)) == []
        later = now + timedelta(hours=50)
        raised = run_record.check_stale(conn, settings, later)
        assert [(a.event, a.model_version) for a in raised] == [(alerts.PIPELINE_STALE, "1")]
        assert run_record.check_stale(conn, settings, later + timedelta(minutes=1)) == []
        assert [a["event"] for a in alerts.open_alerts(conn)] == [alerts.PIPELINE_STALE]
        conn.commit()
        _succeeded(settings, "rr-new", "champion_kept", "1", 0.66)
        assert alerts.open_alerts(conn) == []
    finally:
        conn.close()


def test_a_run_that_fails_every_day_becomes_stale(runs_db: Settings) -> None:
    """Staleness is measured from the last success by whoever records a failure too, not only
    by the export (which a run failing earlier never reaches)."""
    settings = runs_db.with_(alert_stale_hours=36)
    _succeeded(settings, "rr-long-ago", "first_champion", "1", 0.66)
    conn = db.connect(settings)
    try:
        conn.cursor().execute(
            "UPDATE water.pipeline_runs SET finished_at = now() - interval '3 days',"
            " started_at = now() - interval '3 days'"
        )
        conn.commit()
        run_record.mark_failed(settings, "rr-fails", "train: ValueError: no rows")
        assert sorted(a["event"] for a in alerts.open_alerts(conn)) == sorted(
            [alerts.PIPELINE_RUN_FAILED, alerts.PIPELINE_STALE]
        )
    finally:
        conn.close()


def test_mark_failed_delivers_its_alert_when_the_database_is_down(
    dead_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failure is most likely the database's on GCP: the alert still leaves (log line for
    Cloud Monitoring's log-based metric), and the step still fails with the database's error."""
    import json

    settings = Settings(env="local", database_url=f"postgresql://postgres@127.0.0.1:{dead_port}/x")
    with pytest.raises(db.DatabaseUnavailable):
        run_record.mark_failed(settings, "rr-db-down", "export: DatabaseUnavailable: refused")
    assert alerts.notifier(settings).flush(timeout=10)
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    [line] = [x for x in lines if x.get("alert") == alerts.PIPELINE_RUN_FAILED]
    assert line["occurrence"] == "rr-db-down" and "database is unavailable" in json.dumps(line)


def test_the_split_of_the_run_that_installed_a_version_is_found(runs_db: Settings) -> None:
    """sql/016: the train step records its split; the version's training ids are those of the
    run that installed it, not of a later run that kept it."""
    settings = runs_db
    run_record.start_run(settings, "split-1", "ab" * 32, 5)
    run_record.record_split(settings, "split-1", 42, 0.2, ["1", "2", "3", "4"], ["5"])
    _decide(settings, "split-1", "first_champion", "1", 0.7)
    run_record.finish_run(settings, "split-1")
    run_record.start_run(settings, "split-2", "ab" * 32, 6)
    run_record.record_split(settings, "split-2", 42, 0.2, ["1", "2", "3", "6"], ["4", "5"])
    run_record.record_split(
        settings, "split-2", 42, 0.2, ["1", "2", "3", "4", "6"], ["5"]
    )  # a retry
    _decide(settings, "split-2", "champion_kept", "1", 0.7)
    run_record.finish_run(settings, "split-2")
    conn = db.connect(settings)
    try:
        assert run_record.training_sample_ids(conn, "1") == ["1", "2", "3", "4"]
        assert run_record.training_sample_ids(conn, "9") is None  # never installed
        cur = conn.cursor()
        cur.execute(
            "SELECT training_sample_ids, held_out_sample_ids FROM water.pipeline_run_samples "
            "WHERE run_id = 'split-2'"
        )
        assert list(cur.fetchone()) == [["1", "2", "3", "4", "6"], ["5"]]
    finally:
        conn.close()


def test_samples_a_promotion_tested_are_recorded_once_with_their_count(runs_db: Settings) -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    run_record.record_tested_samples(runs_db, ["s1", "s2", "s2"], at)
    run_record.record_tested_samples(runs_db, ["s2", "s3"], at + timedelta(days=1))
    run_record.record_tested_samples(runs_db, [], at + timedelta(days=2))  # nothing to record
    conn = db.connect(runs_db)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT sample_id, first_tested_at, last_tested_at, tests "
            "FROM water.promotion_tested_samples ORDER BY sample_id"
        )
        assert [tuple(r) for r in cur.fetchall()] == [
            ("s1", at, at, 1),
            ("s2", at, at + timedelta(days=1), 2),
            ("s3", at + timedelta(days=1), at + timedelta(days=1), 1),
        ]
    finally:
        conn.close()
