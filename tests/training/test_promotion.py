"""Promotion on evidence: one test per branch (no champion / challenger wins with evidence /
too little evidence / champion misses the floor / challenger misses it), the paired bootstrap,
selection without the held-out rows, the self-comparison guard, and a failed run never moving
the alias.

Pure decisions are tested directly; the MLflow side runs against the session's real MLflow
server and the decision rows against the real PostgreSQL, each test with its own model name.
"""

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import make_pipeline

from components import runtime
from potability import db
from potability.config import Settings
from potability.features import FEATURE_NAMES, TARGET
from potability.governance import run_record
from potability.model import sklearn_save_kwargs
from potability.seed import load_training_rows
from training import decision, evaluation, promotion
from training.candidates import model_requirements
from training.evaluation import Evidence, Scores
from training.split import split

FLOOR = 0.2
FIRST_DAY = date(2026, 1, 5)


def scores(precision: float, recall: float) -> Scores:
    return Scores(
        precision=precision,
        recall=recall,
        f1=0.5,
        roc_auc=0.6,
        pr_auc=0.5,
        accuracy=0.6,
        threshold=0.5,
        predicted_positive=10,
        rows=100,
    )


# --- pure rules -------------------------------------------------------------------------------


def evidence(
    joint: float,
    challenger_meets: float = 1.0,
    champion_meets: float = 1.0,
    better: float | None = None,
) -> Evidence:
    return Evidence(
        difference=0.03,
        low=-0.05,
        high=0.11,
        probability=joint if better is None else better,
        resamples=2000,
        joint_probability=joint,
        challenger_meets_floor=challenger_meets,
        champion_meets_floor=champion_meets,
    )


def test_no_champion_makes_the_challenger_the_first_champion() -> None:
    assert decision.decide(scores(0.5, 0.1), None, None, FLOOR, 0.9) == decision.FIRST_CHAMPION
    # no look is needed to install something that serves
    assert (
        decision.decide(scores(0.5, 0.1), None, None, FLOOR, 0.9, look=False)
        == decision.FIRST_CHAMPION
    )


def test_challenger_wins_with_enough_evidence() -> None:
    assert (
        decision.decide(scores(0.75, 0.21), scores(0.70, 0.30), evidence(0.93), FLOOR, 0.9)
        == decision.CHALLENGER_WINS
    )
    assert (
        decision.decide(scores(0.75, 0.21), scores(0.70, 0.30), evidence(0.9), FLOOR, 0.9)
        == decision.CHALLENGER_WINS
    )


def test_too_little_evidence_keeps_the_champion_even_when_more_precise() -> None:
    assert (
        decision.decide(scores(0.75, 0.25), scores(0.70, 0.25), evidence(0.89), FLOOR, 0.9)
        == decision.CHAMPION_KEPT
    )
    # the confidence is a parameter: the same evidence is enough at 0.85
    assert (
        decision.decide(scores(0.75, 0.25), scores(0.70, 0.25), evidence(0.89), FLOOR, 0.85)
        == decision.CHALLENGER_WINS
    )


def test_the_recall_floor_is_judged_inside_the_same_resamples() -> None:
    # surely more precise, but its recall reaches the floor in only 60% of resamples (< 0.9,
    # decision.FLOOR_CONFIDENCE) - champion kept
    assert (
        decision.decide(
            scores(0.95, 0.21),
            scores(0.60, 0.30),
            evidence(0.6, challenger_meets=0.6, better=1.0),
            FLOOR,
            0.9,
        )
        == decision.CHAMPION_KEPT
    )
    # a held-out recall of 0.19 is no longer a verdict by itself: on evidence it may win
    assert (
        decision.decide(
            scores(0.95, 0.19),
            scores(0.60, 0.30),
            evidence(0.95, challenger_meets=0.95),
            FLOOR,
            0.9,
        )
        == decision.CHALLENGER_WINS
    )


def test_a_champion_under_the_floor_is_replaced_only_on_evidence() -> None:
    # the champion misses the floor in 95% of resamples, the challenger meets it in 70%
    assert (
        decision.decide(
            scores(0.55, 0.20),
            scores(0.90, 0.10),
            evidence(0.0, challenger_meets=0.7, champion_meets=0.05),
            FLOOR,
            0.9,
        )
        == decision.CHALLENGER_WINS
    )
    # a champion whose miss is noise (meets the floor in 30% of resamples) stays
    assert (
        decision.decide(
            scores(0.55, 0.20),
            scores(0.90, 0.19),
            evidence(0.0, challenger_meets=0.7, champion_meets=0.3),
            FLOOR,
            0.9,
        )
        == decision.CHAMPION_KEPT
    )
    # and a challenger that probably misses it too does not replace it
    assert (
        decision.decide(
            scores(0.55, 0.20),
            scores(0.90, 0.10),
            evidence(0.0, challenger_meets=0.4, champion_meets=0.0),
            FLOOR,
            0.9,
        )
        == decision.CHAMPION_KEPT
    )


def test_no_replacement_without_evidence_on_the_floor() -> None:
    judged = "a champion is replaced only on evidence that judges the recall floor"
    with pytest.raises(ValueError, match=judged):
        decision.decide(scores(0.9, 0.3), scores(0.5, 0.3), None, FLOOR, 0.9)
    legacy = Evidence(difference=0.1, low=0.0, high=0.2, probability=1.0, resamples=2000)
    with pytest.raises(ValueError, match=judged):
        decision.decide(scores(0.9, 0.3), scores(0.5, 0.3), legacy, FLOOR, 0.9)


def test_recall_evidence_in_the_bootstrap_by_construction() -> None:
    y = np.array([1] * 100 + [0] * 100)
    far_above = np.array([1] * 60 + [0] * 40 + [0] * 100)  # recall 0.6
    near = np.array([1] * 20 + [0] * 80 + [0] * 100)  # recall 0.2, on the floor
    found = evaluation.paired_bootstrap(y, far_above, near, recall_floor=FLOOR)
    assert found.challenger_meets_floor == 1.0
    assert 0.3 < found.champion_meets_floor < 0.7  # a coin toss, not a verdict
    assert found.joint_probability <= found.probability
    assert evaluation.recall_floor_evidence(y, far_above, FLOOR) == 1.0
    assert evaluation.recall_floor_evidence(y, np.zeros(200), FLOOR) == 0.0


def test_challenger_is_chosen_by_cross_validated_precision_not_held_out() -> None:
    def cand(family: str, cv: float, cv_recall: float, held_out: float) -> dict[str, Any]:
        return {
            "family": family,
            "cv_score": cv,
            "cv_recall": cv_recall,
            "cv_precision": cv,
            "scores": scores(held_out, 0.3).as_dict(),
        }

    scored = [cand("a", 0.70, 0.22, 0.80), cand("b", 0.72, 0.22, 0.65), cand("c", 0.0, 0.1, 0.9)]
    assert decision.choose_challenger(scored)["family"] == "b"
    none_meets = [cand("a", 0.0, 0.12, 0.9), cand("b", 0.0, 0.18, 0.5)]
    assert decision.choose_challenger(none_meets)["family"] == "b"  # best CV recall


def test_paired_bootstrap_of_identical_predictions_is_no_evidence() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 600)
    pred = rng.integers(0, 2, 600)
    ev = evaluation.paired_bootstrap(y, pred, pred)
    assert (ev.difference, ev.low, ev.high, ev.probability) == (0.0, 0.0, 0.0, 0.0)
    assert ev.resamples >= 2000


def test_paired_bootstrap_measures_a_real_difference_and_is_reproducible() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 600)
    champion = np.where(rng.random(600) < 0.3, 1 - y, y)  # ~70% right
    better = np.where(rng.random(600) < 0.1, 1 - y, y)  # ~90% right
    ev = evaluation.paired_bootstrap(y, better, champion)
    p_better = (better & y).sum() / better.sum()
    p_champion = (champion & y).sum() / champion.sum()
    assert ev.difference == pytest.approx(p_better - p_champion)
    assert 0 < ev.low < ev.difference < ev.high and ev.probability == 1.0
    assert evaluation.paired_bootstrap(y, better, champion) == ev  # fixed seed
    reverse = evaluation.paired_bootstrap(y, champion, better)
    assert reverse.probability == 0.0 and reverse.high < 0
    # A small difference on few rows: an interval spanning 0 and a probability short of 0.9.
    y_small, a, b = y[:80], better[:80].copy(), better[:80].copy()
    b[np.flatnonzero((b == 1) & (y_small == 1))[:1]] = 0  # the champion misses one hit
    b[np.flatnonzero((b == 0) & (y_small == 0))[:1]] = 1  # ... and adds one false alarm
    small = evaluation.paired_bootstrap(y_small, a, b)
    assert small.low <= 0 < small.high and 0.5 < small.probability < 0.99


def test_precision_interval_brackets_the_observed_precision() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 650)
    pred = np.where(rng.random(650) < 0.25, 1 - y, y) * (rng.random(650) < 0.3)
    observed = (pred & y).sum() / pred.sum()
    low, high = evaluation.precision_interval(y, pred)
    assert low < observed < high
    # ~100 potable calls: the interval is about +/- 0.08 wide, not a point
    assert 0.1 < high - low < 0.25


# --- against real MLflow and PostgreSQL -------------------------------------------------------

SEED, FRACTION = 3, 0.2


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split(load_training_rows(), FRACTION, SEED)


def _fit(train: pd.DataFrame, shuffle_labels: bool, seed: int = 0, threshold: float = 0.5) -> Any:
    """A small real model; with shuffled labels it is (much) worse on held-out data. (A forest:
    a linear model has almost no signal on this data set.) ``threshold``: its decision
    threshold (a high one makes it miss the recall floor)."""
    y = train[TARGET].sample(frac=1, random_state=0).to_numpy() if shuffle_labels else train[TARGET]
    model = FixedThresholdClassifier(
        make_pipeline(
            SimpleImputer(strategy="median"),
            RandomForestClassifier(
                n_estimators=60,
                min_samples_leaf=5,
                class_weight="balanced",
                random_state=seed,
                n_jobs=1,
            ),
        ),
        threshold=threshold,
        response_method="predict_proba",
    )
    return model.fit(train[list(FEATURE_NAMES)], y)


def _candidate(model: Any, family: str, test: pd.DataFrame, experiment: str) -> dict[str, Any]:
    """Log ``model`` as a candidate run, exactly the shape evaluate hands to promote."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=family) as run:
        info = mlflow.sklearn.log_model(
            model, name="model", pip_requirements=model_requirements(), **sklearn_save_kwargs(model)
        )
    return {
        "family": family,
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "cv_score": 0.7,
        "cv_recall": 0.25,
        "cv_precision": 0.7,
        "scores": evaluation.score_model(model, test).as_dict(),
    }


@pytest.fixture
def ctx(settings: Settings, mlflow_uri: str, conn: Any) -> Any:
    mlflow.set_tracking_uri(mlflow_uri)
    name = f"test-promote-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run(experiment_id=mlflow.set_experiment(name).experiment_id) as parent:
        pass
    step = settings.with_(mlflow_tracking_uri=mlflow_uri, model_name=name)
    runs: list[str] = []

    def run(
        scored: list[dict[str, Any]],
        test: pd.DataFrame,
        split_seed: int = SEED,
        confidence: float | None = 0.9,
        today: date | None = None,
    ) -> promotion.PromoteResult:
        run_id = f"{name}-{len(runs)}"
        today = today or FIRST_DAY + timedelta(days=7 * len(runs))  # default: every run a look
        runs.append(run_id)
        return promotion.promote(
            settings=step,
            run_id=run_id,
            scored=scored,
            test=test,
            recall_floor=FLOOR,
            parent_run_id=parent.info.run_id,
            training_rows=100,
            split_seed=split_seed,
            test_fraction=FRACTION,
            promotion_confidence=confidence,
            promotion_look_days=7,
            today=today,
        )

    yield type(
        "Ctx",
        (),
        {
            "name": name,
            "settings": step,
            "run": staticmethod(run),
            "runs": runs,
            "client": mlflow.MlflowClient(mlflow_uri),
        },
    )
    cur = conn.cursor()
    cur.execute("DELETE FROM water.pipeline_runs WHERE run_id LIKE %s", (f"{name}-%",))
    conn.commit()


def _alias(ctx: Any) -> str:
    return ctx.client.get_model_version_by_alias(ctx.name, "champion").version


def test_first_run_registers_version_1_as_champion_and_records_it(ctx: Any, data: Any) -> None:
    train, test = data
    good = _candidate(_fit(train, False), "logistic_regression", test, ctx.name)
    before = datetime.now(UTC)
    result = ctx.run([good], test)
    assert result == promotion.PromoteResult(decision.FIRST_CHAMPION, "1", True, "")
    assert _alias(ctx) == "1"
    row = run_record.read_run(ctx.settings, ctx.runs[0])
    assert row.decision == "first_champion" and row.champion_version == "1"
    assert row.champion_precision == pytest.approx(good["scores"]["precision"])
    assert row.challenger_family == "logistic_regression"
    assert row.details["previous_champion_version"] is None
    # the precision's 95% interval is recorded; there is nothing to compare with yet
    assert row.champion_precision_low < row.champion_precision < row.champion_precision_high
    assert row.probability_challenger_better is None and row.precision_difference is None
    assert 0 <= row.details["first_champion_meets_floor"] <= 1  # marked: on evidence or not
    # the share the deploy step's floor alert and the run summary read (issue 31)
    assert row.details["champion_meets_floor"] == row.details["first_champion_meets_floor"]
    assert row.details["champion_meets_floor"] == evaluation.recall_floor_evidence(
        *evaluation.predictions(mlflow.sklearn.load_model(good["model_uri"]), test), FLOOR
    )
    assert row.promotion_confidence == 0.9
    # the held-out rows this test used are recorded (sql/017): never "fresh" for the champion
    conn = db.connect(ctx.settings)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT sample_id FROM water.promotion_tested_samples WHERE last_tested_at >= %s",
            (before,),
        )
        tested = {r[0] for r in cur.fetchall()}
    finally:
        conn.close()
    assert tested == set(test["sample_id"])


def test_worse_challenger_keeps_the_champion(ctx: Any, data: Any) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, False), "good", test, ctx.name)], test)
    worse = _candidate(_fit(train, True), "worse", test, ctx.name)
    result = ctx.run([worse], test)
    assert result.decision == decision.CHAMPION_KEPT
    assert (result.champion_version, result.champion_changed) == ("1", False)
    assert _alias(ctx) == "1"
    assert [v.version for v in ctx.client.search_model_versions(f"name='{ctx.name}'")] == ["1"]
    row = run_record.read_run(ctx.settings, ctx.runs[1])
    assert row.champion_family == "good"
    assert row.challenger_precision == pytest.approx(worse["scores"]["precision"])
    assert row.champion_precision > row.challenger_precision


def test_equal_challenger_keeps_the_champion(ctx: Any, data: Any) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, False), "good", test, ctx.name)], test)
    same = _candidate(_fit(train, False), "good", test, ctx.name)  # retrained, identical
    assert ctx.run([same], test).decision == decision.CHAMPION_KEPT
    assert _alias(ctx) == "1"
    # nothing installed: no floor verdict for the deploy step to alert on
    assert run_record.read_run(ctx.settings, ctx.runs[1]).details["champion_meets_floor"] is None


def test_better_challenger_replaces_the_champion(ctx: Any, data: Any) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, True), "worse", test, ctx.name)], test)
    good_model = _fit(train, False)
    result = ctx.run([_candidate(good_model, "good", test, ctx.name)], test)
    assert result == promotion.PromoteResult(decision.CHALLENGER_WINS, "2", True, "1")
    assert _alias(ctx) == "2"
    row = run_record.read_run(ctx.settings, ctx.runs[1])
    assert row.details["previous_champion_version"] == "1"
    assert row.details["champion_before"]["version"] == "1"
    # the evidence: recorded in the row and the parent run, recomputable from the rows
    y, worse_pred = evaluation.predictions(mlflow.sklearn.load_model(f"models:/{ctx.name}/1"), test)
    expected = evaluation.paired_bootstrap(
        y, evaluation.predictions(good_model, test)[1], worse_pred, recall_floor=FLOOR
    )
    assert row.details["evidence"] == expected.as_dict()
    assert row.details["champion_meets_floor"] == expected.challenger_meets_floor
    assert row.probability_challenger_better == expected.probability >= 0.9
    assert row.precision_difference_low > 0 and row.precision_difference == pytest.approx(
        row.champion_precision - row.details["champion_before"]["scores"]["precision"]
    )
    parent = ctx.client.get_run(row.mlflow_run_id).data
    assert parent.metrics["promotion.probability_challenger_better"] == expected.probability
    assert parent.metrics["promotion.confidence_required"] == 0.9


def _tested_since(settings: Settings, since: datetime) -> int:
    conn = db.connect(settings)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT count(*) FROM water.promotion_tested_samples WHERE last_tested_at >= %s",
            (since,),
        )
        return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_the_champion_is_tested_only_on_looks_a_week_apart(ctx: Any, data: Any) -> None:
    """Issue 31: a clearly better challenger on a run between looks is not promoted (the rule
    before would have: P >= 0.9 on every daily run) and the run tests nothing; the next look,
    seven dates after the last, promotes it at the default look's level."""
    train, test = data
    day = FIRST_DAY
    ctx.run([_candidate(_fit(train, True), "worse", test, ctx.name)], test, today=day)
    same = _candidate(_fit(train, True), "worse", test, ctx.name)  # retrained, identical
    first_look = ctx.run([same], test, today=day + timedelta(days=1))
    assert first_look.decision == decision.CHAMPION_KEPT
    looked = run_record.read_run(ctx.settings, ctx.runs[1])
    assert looked.details["promotion_look"] is True
    assert looked.details["promotion_look_on"] == (day + timedelta(days=1)).isoformat()
    assert looked.details["looks_per_quarter"] == 13
    assert looked.probability_challenger_better is not None

    good_model = _fit(train, False)
    before = datetime.now(UTC)
    between = ctx.run(
        [_candidate(good_model, "good", test, ctx.name)],
        test,
        today=day + timedelta(days=7),
        confidence=None,
    )
    assert between == promotion.PromoteResult(decision.CHAMPION_KEPT, "1", False, "1")
    row = run_record.read_run(ctx.settings, ctx.runs[2])
    assert row.details["promotion_look"] is False and "promotion_look_on" not in row.details
    assert row.details["last_promotion_look_on"] == (day + timedelta(days=1)).isoformat()
    assert row.details["evidence"] is None and row.probability_challenger_better is None
    # the champion is still scored for the record (the page shows it), but nothing was tested
    assert row.champion_version == "1" and row.champion_precision is not None
    assert _tested_since(ctx.settings, before) == 0

    result = ctx.run(
        [_candidate(good_model, "good", test, ctx.name)],
        test,
        today=day + timedelta(days=8),
        confidence=None,
    )
    assert result == promotion.PromoteResult(decision.CHALLENGER_WINS, "2", True, "1")
    row = run_record.read_run(ctx.settings, ctx.runs[3])
    # the settings' default level: 5% a quarter over 13 looks
    assert row.promotion_confidence == pytest.approx(1 - 0.05 / 13)
    assert row.details["evidence"]["joint_probability"] >= row.promotion_confidence
    assert _tested_since(ctx.settings, before) == len(test)


def test_too_little_evidence_keeps_the_champion(ctx: Any, data: Any) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, False, seed=0), "forest-0", test, ctx.name)], test)
    other = _candidate(_fit(train, False, seed=1), "forest-1", test, ctx.name)
    assert ctx.run([other], test).decision == decision.CHAMPION_KEPT  # confidence 0.9
    row = run_record.read_run(ctx.settings, ctx.runs[1])
    probability = row.probability_challenger_better
    assert 0 < probability < 0.9  # another forest on the same rows: a difference within noise
    assert row.precision_difference_low < 0 < row.precision_difference_high
    assert row.champion_version == "1" and _alias(ctx) == "1"
    # The same evidence clears a lower bar: the confidence decides, not the raw difference.
    again = _candidate(_fit(train, False, seed=1), "forest-1", test, ctx.name)
    joint = row.details["evidence"]["joint_probability"]  # more precise AND at the floor
    assert 0 < joint <= probability
    assert row.details["evidence"]["challenger_meets_floor"] >= decision.FLOOR_CONFIDENCE
    assert ctx.run([again], test, confidence=probability).decision == decision.CHALLENGER_WINS


def test_champion_missing_the_floor_loses_to_any_challenger_meeting_it(ctx: Any, data: Any) -> None:
    train, test = data
    timid = _fit(train, False, threshold=0.9)  # almost never says "potable"
    ctx.run([_candidate(timid, "timid", test, ctx.name)], test)
    assert evaluation.score_model(timid, test).recall < FLOOR
    worse = _candidate(_fit(train, True), "worse", test, ctx.name)
    assert worse["scores"]["recall"] >= FLOOR
    assert ctx.run([worse], test).decision == decision.CHALLENGER_WINS
    assert _alias(ctx) == "2"


def test_champion_is_never_compared_with_itself(ctx: Any, data: Any) -> None:
    train, test = data
    good = _candidate(_fit(train, False), "good", test, ctx.name)
    ctx.run([good], test)
    with pytest.raises(RuntimeError, match="compare a model with itself"):
        ctx.run([good], test)


def test_a_run_failing_after_promotion_puts_the_alias_back(ctx: Any, data: Any) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, True), "worse", test, ctx.name)], test)
    ctx.run([_candidate(_fit(train, False), "good", test, ctx.name)], test)
    assert _alias(ctx) == "2"
    # deploy fails afterwards: the step records the failure, which restores the alias.
    with (
        pytest.raises(OSError, match="endpoint unreachable"),
        runtime.failure_recorded(ctx.settings, ctx.runs[1], "deploy"),
    ):
        raise OSError("endpoint unreachable")
    assert _alias(ctx) == "1"
    row = run_record.read_run(ctx.settings, ctx.runs[1])
    assert row.status == "failed" and row.error == "deploy: OSError: endpoint unreachable"


def test_a_failed_first_run_leaves_no_champion(ctx: Any, data: Any) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, False), "good", test, ctx.name)], test)
    runtime.record_failure(ctx.settings, ctx.runs[0], "deploy: boom")
    assert promotion.registry_champion(ctx.client, ctx.name) is None


def test_the_champion_is_never_compared_on_a_row_it_trained_on_as_samples_arrive() -> None:
    """The stratified cut moves a little as rows arrive (tests/training/test_split.py): a row
    that moved from the champion's training part into today's held-out part is left out."""
    frame, seed = load_training_rows(), 42  # with seed 42, 11 rows move in at 2,800 -> 3,276
    before = split(frame.iloc[:2800], FRACTION, seed)
    after = split(frame, FRACTION, seed)
    moved_in = set(after.test["sample_id"]) & set(before.train["sample_id"])
    rows = promotion.comparison_rows(
        after.test, promotion.SplitRecord.of(before.test, seed, FRACTION)
    )
    assert moved_in  # the cut did move (else this test proves nothing)
    assert not set(rows["sample_id"]) & set(before.train["sample_id"])
    assert set(after.test["sample_id"]) & set(before.test["sample_id"]) <= set(rows["sample_id"])
    assert len(rows) >= 0.85 * len(after.test)  # the old held-out rows and most new ones


def test_a_champion_of_another_split_is_compared_only_on_rows_new_to_both(
    ctx: Any, data: Any
) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, False), "good", test, ctx.name)], test)
    version = ctx.client.get_model_version(ctx.name, "1")
    assert (version.tags["split_seed"], version.tags["test_fraction"]) == (str(SEED), "0.2")
    # Today's run uses another seed: part of its held-out rows trained the champion.
    new_train, new_test = split(load_training_rows(), FRACTION, SEED + 1)
    both = new_test[new_test["sample_id"].isin(test["sample_id"])].reset_index(drop=True)
    assert 0 < len(both) < len(new_test)
    challenger_model = _fit(new_train, True)
    challenger = _candidate(challenger_model, "worse", new_test, ctx.name)
    assert ctx.run([challenger], new_test, split_seed=SEED + 1).decision == decision.CHAMPION_KEPT
    details = run_record.read_run(ctx.settings, ctx.runs[1]).details
    assert (details["compared_on_rows"], details["held_out_rows"]) == (len(both), len(new_test))
    champion_now = mlflow.sklearn.load_model(f"models:/{ctx.name}/1")
    assert (
        details["champion_before"]["scores"] == evaluation.score_model(champion_now, both).as_dict()
    )
    assert (
        details["challenger"]["scores"] == evaluation.score_model(challenger_model, both).as_dict()
    )


def test_comparison_rows_refuse_a_set_too_small_to_compare() -> None:
    test = load_training_rows().iloc[:40]
    assert len(promotion.comparison_rows(test, None)) == 40  # unknown split: all rows
    with pytest.raises(ValueError, match="too few to compare"):
        promotion.comparison_rows(test, promotion.SplitRecord(SEED, 0.001))  # the former rule
