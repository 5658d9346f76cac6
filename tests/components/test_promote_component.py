"""Promotion: one test per branch (no champion / challenger wins / champion kept), ties, the
self-comparison guard, and a failed run never moving the alias.

Pure decisions are tested directly; the MLflow side runs against the session's real MLflow
server and the decision rows against the real PostgreSQL, each test with its own model name.
"""

import uuid
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline

from components import evaluate, promote, run_record
from components.train import is_held_out, model_requirements, split
from components.evaluate import Scores
from potability.config import Settings
from potability.features import FEATURE_NAMES, TARGET
from potability.model_format import sklearn_save_kwargs
from potability.seed import load_training_rows

FLOOR = 0.2


def scores(precision: float, recall: float) -> Scores:
    return Scores(precision=precision, recall=recall, f1=0.5, roc_auc=0.6, pr_auc=0.5,
                  accuracy=0.6, threshold=0.5, predicted_positive=10, rows=100)


# --- pure rules -------------------------------------------------------------------------------

def test_no_champion_makes_the_challenger_the_first_champion() -> None:
    assert promote.decide(scores(0.5, 0.1), None, FLOOR) == promote.FIRST_CHAMPION


def test_strictly_more_precise_challenger_wins() -> None:
    assert promote.decide(scores(0.71, 0.21), scores(0.70, 0.30), FLOOR) == promote.CHALLENGER_WINS


def test_equal_or_less_precise_challenger_keeps_the_champion() -> None:
    assert promote.decide(scores(0.70, 0.25), scores(0.70, 0.25), FLOOR) == promote.CHAMPION_KEPT
    assert promote.decide(scores(0.69, 0.40), scores(0.70, 0.25), FLOOR) == promote.CHAMPION_KEPT


def test_recall_floor_decides_before_precision() -> None:
    # A more precise challenger below the floor never wins ...
    assert promote.decide(scores(0.95, 0.19), scores(0.60, 0.30), FLOOR) == promote.CHAMPION_KEPT
    # ... and a champion below the floor loses to any challenger that meets it.
    assert promote.decide(scores(0.55, 0.20), scores(0.90, 0.10), FLOOR) == promote.CHALLENGER_WINS


def test_challenger_is_the_most_precise_candidate_meeting_the_floor() -> None:
    scored = [
        {"family": "a", "scores": scores(0.90, 0.15).as_dict()},
        {"family": "b", "scores": scores(0.72, 0.22).as_dict()},
        {"family": "c", "scores": scores(0.70, 0.40).as_dict()},
    ]
    assert promote.choose_challenger(scored, FLOOR)["family"] == "b"
    below = [{"family": "a", "scores": scores(0.9, 0.1).as_dict()},
             {"family": "b", "scores": scores(0.5, 0.15).as_dict()}]
    assert promote.choose_challenger(below, FLOOR)["family"] == "b"  # best recall


# --- against real MLflow and PostgreSQL -------------------------------------------------------

SEED, FRACTION = 3, 0.2


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split(load_training_rows(), FRACTION, SEED)


def _fit(train: pd.DataFrame, shuffle_labels: bool) -> Any:
    """A small real model; with shuffled labels it is (much) worse on held-out data. (A forest:
    a linear model has almost no signal on this data set.)"""
    y = train[TARGET].sample(frac=1, random_state=0).to_numpy() if shuffle_labels else train[TARGET]
    model = make_pipeline(SimpleImputer(strategy="median"), RandomForestClassifier(
        n_estimators=60, min_samples_leaf=5, class_weight="balanced", random_state=0, n_jobs=1))
    return model.fit(train[list(FEATURE_NAMES)], y)


def _candidate(model: Any, family: str, test: pd.DataFrame, experiment: str) -> dict[str, Any]:
    """Log ``model`` as a candidate run, exactly the shape evaluate hands to promote."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=family) as run:
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=model_requirements(),
                                        **sklearn_save_kwargs(model))
    return {"family": family, "run_id": run.info.run_id, "model_uri": info.model_uri,
            "scores": evaluate.score_model(model, test).as_dict()}


@pytest.fixture
def ctx(settings: Settings, mlflow_uri: str, conn: Any) -> Any:
    mlflow.set_tracking_uri(mlflow_uri)
    name = f"test-promote-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run(experiment_id=mlflow.set_experiment(name).experiment_id) as parent:
        pass
    step = settings.with_(mlflow_tracking_uri=mlflow_uri, model_name=name)
    runs: list[str] = []

    def run(scored: list[dict[str, Any]], test: pd.DataFrame, split_seed: int = SEED,
            ) -> promote.PromoteResult:
        run_id = f"{name}-{len(runs)}"
        runs.append(run_id)
        return promote.promote(settings=step, run_id=run_id, scored=scored, test=test,
                               recall_floor=FLOOR, parent_run_id=parent.info.run_id,
                               training_rows=100, split_seed=split_seed,
                               test_fraction=FRACTION)

    yield type("Ctx", (), {"name": name, "settings": step, "run": staticmethod(run),
                           "runs": runs, "client": mlflow.MlflowClient(mlflow_uri)})
    cur = conn.cursor()
    cur.execute("DELETE FROM water.pipeline_runs WHERE run_id LIKE %s", (f"{name}-%",))
    conn.commit()


def _alias(ctx: Any) -> str:
    return ctx.client.get_model_version_by_alias(ctx.name, "champion").version


def test_first_run_registers_version_1_as_champion_and_records_it(ctx: Any, data: Any) -> None:
    train, test = data
    good = _candidate(_fit(train, False), "logistic_regression", test, ctx.name)
    result = ctx.run([good], test)
    assert result == promote.PromoteResult(promote.FIRST_CHAMPION, "1", True, "")
    assert _alias(ctx) == "1"
    row = run_record.read_run(ctx.settings, ctx.runs[0])
    assert row["decision"] == "first_champion" and row["champion_version"] == "1"
    assert row["champion_precision"] == pytest.approx(good["scores"]["precision"])
    assert row["challenger_family"] == "logistic_regression"
    assert row["details"]["previous_champion_version"] is None


def test_worse_challenger_keeps_the_champion(ctx: Any, data: Any) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, False), "good", test, ctx.name)], test)
    worse = _candidate(_fit(train, True), "worse", test, ctx.name)
    result = ctx.run([worse], test)
    assert result.decision == promote.CHAMPION_KEPT
    assert (result.champion_version, result.champion_changed) == ("1", False)
    assert _alias(ctx) == "1"
    assert [v.version for v in ctx.client.search_model_versions(f"name='{ctx.name}'")] == ["1"]
    row = run_record.read_run(ctx.settings, ctx.runs[1])
    assert row["champion_family"] == "good"
    assert row["challenger_precision"] == pytest.approx(worse["scores"]["precision"])
    assert row["champion_precision"] > row["challenger_precision"]


def test_equal_challenger_keeps_the_champion(ctx: Any, data: Any) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, False), "good", test, ctx.name)], test)
    same = _candidate(_fit(train, False), "good", test, ctx.name)  # retrained, identical
    assert ctx.run([same], test).decision == promote.CHAMPION_KEPT
    assert _alias(ctx) == "1"


def test_better_challenger_replaces_the_champion(ctx: Any, data: Any) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, True), "worse", test, ctx.name)], test)
    result = ctx.run([_candidate(_fit(train, False), "good", test, ctx.name)], test)
    assert result == promote.PromoteResult(promote.CHALLENGER_WINS, "2", True, "1")
    assert _alias(ctx) == "2"
    row = run_record.read_run(ctx.settings, ctx.runs[1])
    assert row["details"]["previous_champion_version"] == "1"
    assert row["details"]["champion_before"]["version"] == "1"


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
    with pytest.raises(OSError):
        with run_record.failure_recorded(ctx.settings, ctx.runs[1], "deploy"):
            raise OSError("endpoint unreachable")
    assert _alias(ctx) == "1"
    row = run_record.read_run(ctx.settings, ctx.runs[1])
    assert row["status"] == "failed" and row["error"] == "deploy: OSError: endpoint unreachable"


def test_a_failed_first_run_leaves_no_champion(ctx: Any, data: Any) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, False), "good", test, ctx.name)], test)
    run_record.mark_failed(ctx.settings, ctx.runs[0], "deploy: boom")
    assert promote.current_champion(ctx.client, ctx.name) is None


def test_the_split_keeps_every_row_on_its_side_as_samples_arrive() -> None:
    frame = load_training_rows()
    before = split(frame.iloc[:3000], FRACTION, SEED)
    after = split(frame, FRACTION, SEED)
    assert set(before.test["sample_id"]) <= set(after.test["sample_id"])
    assert set(before.train["sample_id"]) <= set(after.train["sample_id"])
    assert abs(len(after.test) / len(frame) - FRACTION) < 0.03  # a fair coin per row
    assert abs(after.test[TARGET].mean() - frame[TARGET].mean()) < 0.04
    other = split(frame, FRACTION, SEED + 1)
    assert set(other.test["sample_id"]) != set(after.test["sample_id"])


def test_a_champion_of_another_split_is_compared_only_on_rows_new_to_both(
        ctx: Any, data: Any) -> None:
    train, test = data
    ctx.run([_candidate(_fit(train, False), "good", test, ctx.name)], test)
    version = ctx.client.get_model_version(ctx.name, "1")
    assert (version.tags["split_seed"], version.tags["test_fraction"]) == (str(SEED), "0.2")
    # Today's run uses another seed: part of its held-out rows trained the champion.
    new_train, new_test = split(load_training_rows(), FRACTION, SEED + 1)
    both = new_test[is_held_out(new_test, FRACTION, SEED)].reset_index(drop=True)
    assert 0 < len(both) < len(new_test)
    challenger_model = _fit(new_train, True)
    challenger = _candidate(challenger_model, "worse", new_test, ctx.name)
    assert ctx.run([challenger], new_test, split_seed=SEED + 1).decision == promote.CHAMPION_KEPT
    details = run_record.read_run(ctx.settings, ctx.runs[1])["details"]
    assert (details["compared_on_rows"], details["held_out_rows"]) == (len(both), len(new_test))
    champion_now = mlflow.sklearn.load_model(f"models:/{ctx.name}/1")
    assert details["champion_before"]["scores"] == evaluate.score_model(champion_now, both).as_dict()
    assert details["challenger"]["scores"] == evaluate.score_model(challenger_model, both).as_dict()


def test_comparison_rows_refuse_a_set_too_small_to_compare() -> None:
    test = load_training_rows().iloc[:40]
    assert len(promote.comparison_rows(test, None)) == 40  # unknown split: all rows
    with pytest.raises(ValueError, match="too few to compare"):
        promote.comparison_rows(test, (SEED, 0.001))
