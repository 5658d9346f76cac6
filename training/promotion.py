"""Promotion: the challenger vs the current champion, on evidence - the evidence gathered, the
decision (:mod:`training.decision`) recorded, the winner registered and the alias moved.

Both are scored on rows neither has trained on. Each registered version carries its split
as tags (:class:`SplitRecord`: seed, fraction, rule and the cut per class,
:func:`training.split.held_out_cutoffs`). Unless today's split is the champion's exactly, the
comparison uses only today's held-out rows that the champion's split held out as well - with
the same seed, the rows whose coin is at or below its cut (rows that arrived since, or moved
as the stratified cut moved, and were never in its training part); with another seed or an
older rule, the rows that rule held out - and the challenger is re-scored on those. (A
champion registered without split tags is compared on all of today's held-out rows.)

The champion is judged only on a *look* (:func:`training.decision.is_look`): a run at least
``promotion_look_days`` dates after the last look, read from the decisions recorded in
``water.pipeline_runs`` (:func:`potability.governance.run_record.last_promotion_look`). Runs in
between score the champion for the record, keep it, and record no tested samples.

The alias moves last, after the decision is written to ``water.pipeline_runs``; if a later
step fails, :func:`components.runtime.record_failure` moves it back (:func:`restore_alias`).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from potability.features import FEATURE_NAMES, TARGET
from potability.serving import compiled_model
from training.dataset import SAMPLE_ID
from training.decision import (
    CHALLENGER_WINS,
    FIRST_CHAMPION,
    choose_challenger,
    decide,
    is_look,
    look_confidence,
    looks_per_quarter,
)
from training.evaluation import (
    Scores,
    paired_bootstrap,
    precision_interval,
    predictions,
    recall_floor_evidence,
    score_model,
)

CHAMPION_ALIAS = "champion"
"""The registered model's alias on the served version (MLflow's source of truth)."""


def _scores(item: dict[str, Any]) -> Scores:
    return Scores(**item["scores"])


@dataclass(frozen=True)
class Champion:
    """The current champion: registered version, its source run and its family."""

    version: str
    run_id: str
    family: str
    model_id: str
    split: "SplitRecord | None" = None
    """The split it was trained with, from its tags; None if unknown."""


@dataclass(frozen=True)
class SplitRecord:
    """A split as a registered version's tags record it."""

    seed: int
    fraction: float
    rule: str = ""
    """:data:`training.split.RULE`, or "" for versions trained with the rule before it."""
    cutoffs: tuple[float, float] | None = None
    """The largest held-out coin of class 0 and of class 1 (:func:`training.split.
    held_out_cutoffs`); None for the rule before."""

    def tags(self) -> dict[str, str]:
        out = {"split_seed": str(self.seed), "test_fraction": str(self.fraction)}
        if self.rule:
            out["split_rule"] = self.rule
        if self.cutoffs is not None:
            out["split_cutoff_0"], out["split_cutoff_1"] = (repr(c) for c in self.cutoffs)
        return out

    @classmethod
    def of(cls, test: Any, seed: int, fraction: float) -> "SplitRecord":
        """Today's split, read from its held-out rows."""
        from training.split import RULE, held_out_cutoffs

        cut = held_out_cutoffs(test, seed)
        return cls(seed, fraction, RULE, (cut[0], cut[1]))


def _split_from_tags(tags: dict[str, str]) -> SplitRecord | None:
    try:
        seed, fraction = int(tags["split_seed"]), float(tags["test_fraction"])
        cutoffs = None
        if "split_cutoff_0" in tags:
            cutoffs = (float(tags["split_cutoff_0"]), float(tags["split_cutoff_1"]))
        return SplitRecord(seed, fraction, tags.get("split_rule", ""), cutoffs)
    except (KeyError, ValueError):
        return None


def comparison_rows(test: Any, champion_split: SplitRecord | None) -> Any:
    """The held-out rows the champion never trained on either (all of them if its split is
    unknown).

    Args:
        test: today's held-out rows (with ``sample_id`` and the features).
        champion_split: the split the champion was trained with.
    """
    from training.split import RULE, held_out_under, is_held_out, legacy_held_out

    if champion_split is None:
        return test
    seed, fraction = champion_split.seed, champion_split.fraction
    if champion_split.rule == RULE and champion_split.cutoffs is not None:
        mask = held_out_under(test, seed, dict(enumerate(champion_split.cutoffs)))
    elif champion_split.rule == RULE:
        mask = is_held_out(test, fraction, seed)
    else:
        mask = legacy_held_out(test, fraction, seed)
    rows = test[mask].reset_index(drop=True)
    if rows[TARGET].nunique() < 2:
        raise ValueError(
            f"only {len(rows)} held-out rows are new to the champion (trained with split_seed "
            f"{seed}, test_fraction {fraction}): too few to compare; run with that split"
        )
    return rows


def registry_champion(client: Any, model_name: str) -> Champion | None:
    """The version behind the ``champion`` alias, or None (no registered model or no alias).

    The registry's answer, which promote compares against; what the rest of the system calls
    the current champion is the pipeline's record of it
    (:func:`potability.governance.run_record.current_champion`), written before the alias moves."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException as exc:
        if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}:
            return None
        raise
    tags = version.tags or {}
    return Champion(
        str(version.version),
        version.run_id or "",
        tags.get("family", ""),
        getattr(version, "model_id", "") or "",
        _split_from_tags(tags),
    )


def restore_alias(settings: Any, details: Mapping[str, Any], client: Any = None) -> bool:
    """Put ``champion`` back on the version it had before this run; True if it was moved.

    Args:
        settings: MLflow tracking URI and model name (a :class:`potability.config.Settings`).
        details: the run's details (``alias_moved``, ``previous_champion_version``), as
            :func:`potability.governance.run_record.mark_failed` returns them.
        client: an ``MlflowClient`` (tests pass one; default: for the settings' URI).
    """
    if not details.get("alias_moved"):
        return False
    if client is None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    previous = details.get("previous_champion_version")
    if previous:
        client.set_registered_model_alias(settings.model_name, CHAMPION_ALIAS, str(previous))
    else:
        client.delete_registered_model_alias(settings.model_name, CHAMPION_ALIAS)
    return True


def ensure_not_self(champion: Champion, challenger: dict[str, Any]) -> None:
    """Refuse to compare the challenger with itself (a known pipeline bug elsewhere)."""
    model_id = challenger["model_uri"].rsplit("/", 1)[-1]
    if champion.run_id == challenger["run_id"] or (
        champion.model_id and champion.model_id == model_id
    ):
        raise RuntimeError(
            f"champion version {champion.version} is this run's challenger "
            f"({challenger['run_id']}): refusing to compare a model with itself"
        )


class PromoteResult(NamedTuple):
    decision: str
    champion_version: str
    champion_changed: bool
    previous_version: str


def register(
    client: Any,
    model_name: str,
    challenger: dict[str, Any],
    pipeline_run_id: str,
    split: SplitRecord | None = None,
) -> str:
    """Register the challenger as a new version of ``model_name``; return the version.

    ``mlflow.register_model`` (not the bare client call) resolves MLflow 3's
    ``models:/m-<id>`` logged-model URIs and creates the registered model if needed.
    """
    import mlflow

    s = challenger["scores"]
    version = mlflow.register_model(
        challenger["model_uri"],
        model_name,
        tags={
            "family": challenger["family"],
            "pipeline_run_id": pipeline_run_id,
            "source_run_id": challenger["run_id"],
            "test_precision": str(s["precision"]),
            "test_recall": str(s["recall"]),
            "threshold": str(s["threshold"]),
            **(split.tags() if split else {}),
        },
    )
    client.update_model_version(
        model_name,
        version.version,
        description=f"{challenger['family']} from pipeline run {pipeline_run_id}",
    )
    return str(version.version)


def _last_look(settings: Any) -> date | None:
    """:func:`potability.governance.run_record.last_promotion_look` of the settings' model."""
    from contextlib import closing

    from potability import db
    from potability.governance import run_record

    with closing(db.connect(settings)) as conn:
        return run_record.last_promotion_look(conn, settings.model_name)


def promote(*, settings: Any, **kwargs: Any) -> PromoteResult:
    """:func:`decide_and_promote`, one pipeline run at a time: two runs at once would both
    read the same champion, and the later alias move would silently undo the earlier one. The
    lock is PostgreSQL's (the database every run shares), held from reading the champion to
    moving the alias, and released if the step dies."""
    from potability import db

    with db.advisory_lock(settings, f"potability.promote:{settings.model_name}"):
        return decide_and_promote(settings=settings, **kwargs)


def decide_and_promote(
    *,
    settings: Any,
    run_id: str,
    scored: list[dict[str, Any]],
    test: Any,
    recall_floor: float,
    parent_run_id: str,
    training_rows: int,
    split_seed: int | None = None,
    test_fraction: float | None = None,
    promotion_confidence: float | None = None,
    client: Any = None,
    load_model: Callable[[str], Any] | None = None,
    promotion_approval: str = "auto",
    candidate_expiry_days: float = 7.0,
    promotion_look_days: int | None = None,
    today: date | None = None,
) -> PromoteResult:
    """Decide, register (if the challenger wins), record the decision, then move the alias.

    Args:
        settings: database, MLflow tracking URI and registered model name.
        run_id: the pipeline job name (row in water.pipeline_runs).
        scored: evaluate's candidates with CV figures and held-out scores.
        test: the held-out rows the candidates were scored on.
        recall_floor: the minimum recall for precision to count.
        parent_run_id: the pipeline run's parent MLflow run (decision logged there).
        training_rows: rows the challenger was trained on (recorded).
        split_seed: the split the candidates were trained with (tagged on a new version) ...
        test_fraction: ... and its held-out share.
        promotion_confidence: the share of paired resamples a look needs (default:
            :func:`training.decision.look_confidence` of the settings'
            ``promotion_false_rate`` and ``promotion_look_days``).
        client: ``MlflowClient`` (default: for ``settings.mlflow_tracking_uri``).
        load_model: model URI -> estimator (default ``mlflow.sklearn.load_model``).
        promotion_approval: ``auto`` | ``manual`` (a winning challenger waits as a candidate).
        candidate_expiry_days: candidates older than this expire (not approvable).
        promotion_look_days: days between looks (default: the settings').
        today: the run's date (default: today, UTC); a look is recorded under it.
    """
    import mlflow
    import mlflow.sklearn

    from potability.governance import model_changes, run_record

    look_days = settings.promotion_look_days if promotion_look_days is None else promotion_look_days
    if promotion_confidence is None:
        promotion_confidence = look_confidence(settings.promotion_false_rate, look_days)
    if not 0 < promotion_confidence <= 1:
        raise ValueError(f"promotion_confidence must be in (0, 1], got {promotion_confidence}")
    today = today or datetime.now(UTC).date()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = client or mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    load_model = load_model or mlflow.sklearn.load_model
    name = settings.model_name

    split = (
        SplitRecord.of(test, split_seed, test_fraction)
        if split_seed is not None and test_fraction
        else None
    )
    challenger = choose_challenger(scored)
    challenger_model = load_model(challenger["model_uri"])
    challenger_scores = _scores(challenger)
    champion = registry_champion(client, name)
    champion_scores = None
    evidence = None
    rows = test
    look = False
    last_look = None
    if champion is not None:
        ensure_not_self(champion, challenger)
        # the champion is tested on looks only, spaced so a quarter's looks keep the stated
        # false-promotion rate (training.decision); between them it is kept untested
        last_look = _last_look(settings)
        look = is_look(today, last_look, look_days)
        rows = test if champion.split == split else comparison_rows(test, champion.split)
        if len(rows) < len(test):  # another split: both on the rows new to both
            challenger_scores = score_model(challenger_model, rows)
        champion_model = load_model(f"models:/{name}/{champion.version}")
        champion_scores = score_model(champion_model, rows)  # recorded on every run
        y, champion_pred = predictions(champion_model, rows)
        if look:
            evidence = paired_bootstrap(
                y, predictions(challenger_model, rows)[1], champion_pred, recall_floor=recall_floor
            )
    decision = decide(
        challenger_scores, champion_scores, evidence, recall_floor, promotion_confidence, look
    )
    # Operators' control (issue 22): a hold keeps a winning challenger out, manual approval
    # makes it a candidate (registered, not promoted) - potability/governance/model_changes.py.
    decision = model_changes.promotion_gate(
        settings, decision, promotion_approval, candidate_expiry_days
    )

    candidate = None
    if decision in (FIRST_CHAMPION, CHALLENGER_WINS, model_changes.CANDIDATE_WAITING):
        # Compiled scoring (issue 12): ONNX form checked against scikit-learn on the held-out
        # rows, stored in the logged model before it becomes a version.
        compiled_model.attach_to_uri(
            challenger["model_uri"], load_model(challenger["model_uri"]), test[list(FEATURE_NAMES)]
        )
        candidate = register(client, name, challenger, run_id, split)
    challenger_interval = precision_interval(*predictions(challenger_model, rows))
    interval: tuple[float, float] | tuple[None, None]  # none while the first one waits
    if decision in (FIRST_CHAMPION, CHALLENGER_WINS):
        assert candidate is not None
        new_version, family, after = candidate, challenger["family"], challenger_scores
        interval = challenger_interval
    elif champion is not None and champion_scores is not None:
        new_version, family, after = champion.version, champion.family, champion_scores
        interval = precision_interval(y, champion_pred)
    else:  # no champion yet and the first one is held back or waits for approval
        new_version, family, after, interval = "", None, None, (None, None)
    first_meets = (
        recall_floor_evidence(*predictions(challenger_model, rows), recall_floor)
        if decision == FIRST_CHAMPION
        else None
    )
    # the new champion's share of resamples at the floor: a first champion is installed
    # whatever it is, so one under the floor is served with an open alert and a warning in
    # the run's summary, never silently (potability.governance.model_changes, issue 31)
    winner_meets = (
        first_meets
        if decision == FIRST_CHAMPION
        else evidence.challenger_meets_floor
        if decision == CHALLENGER_WINS and evidence is not None
        else None
    )
    previous = champion.version if champion else ""
    changed = new_version != previous
    details = {
        "candidate_version": candidate if decision == model_changes.CANDIDATE_WAITING else None,
        "challenger_precision_interval": list(challenger_interval),
        # Written before the alias moves, so a failure at any later point can undo it.
        "alias_moved": changed,
        "previous_champion_version": previous or None,
        "challenger_version": new_version if changed else None,
        "champion_before": (
            {
                "version": champion.version,
                "family": champion.family,
                "scores": champion_scores.as_dict(),
            }
            if champion and champion_scores
            else None
        ),
        "challenger": {
            "family": challenger["family"],
            "run_id": challenger["run_id"],
            "cv_score": challenger["cv_score"],
            "scores": challenger_scores.as_dict(),
        },
        "candidates": {
            c["family"]: {"cv_score": c["cv_score"], "scores": c["scores"]} for c in scored
        },
        "evidence": evidence.as_dict() if evidence else None,
        "first_champion_meets_floor": first_meets,
        "champion_meets_floor": winner_meets,
        "champion_precision_interval": list(interval),
        "compared_on_rows": len(rows),
        "held_out_rows": len(test),
        "parent_run_id": parent_run_id,
        # the look schedule (issue 31): a look's date is what spaces the next one
        **({"promotion_look_on": today.isoformat()} if look else {}),
        "promotion_look": look,
        "last_promotion_look_on": last_look.isoformat() if last_look else None,
        "promotion_look_days": look_days,
        "looks_per_quarter": looks_per_quarter(look_days),
        "quarter_false_promotion_bound": round(
            (1 - promotion_confidence) * looks_per_quarter(look_days), 6
        ),
    }
    values = {
        "decision": decision,
        "model_name": name,
        "champion_version": new_version or None,
        "champion_family": family,
        "champion_precision": after and after.precision,
        "champion_precision_low": interval[0],
        "champion_precision_high": interval[1],
        "champion_recall": after and after.recall,
        "champion_threshold": after and after.threshold,
        "challenger_family": challenger["family"],
        "challenger_precision": challenger_scores.precision,
        "challenger_recall": challenger_scores.recall,
        "recall_floor": recall_floor,
        "promotion_confidence": promotion_confidence,
        "precision_difference": evidence.difference if evidence else None,
        "precision_difference_low": evidence.low if evidence else None,
        "precision_difference_high": evidence.high if evidence else None,
        "probability_challenger_better": evidence.probability if evidence else None,
        "training_rows": training_rows,
        "mlflow_run_id": parent_run_id,
    }
    run_record.record_decision(settings, run_id, values, details)
    # every held-out row this decision looked at: the champion's fresh-sample precision
    # (quality control) must rest on lab samples no promotion test has used (sql/017); a
    # run between looks tested nothing
    if champion is None or look:
        run_record.record_tested_samples(settings, test[SAMPLE_ID], datetime.now(UTC))
    if changed:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, new_version)

    client.set_tag(parent_run_id, "decision", decision)
    client.set_tag(parent_run_id, "champion_version", new_version or "none")
    if candidate and decision == model_changes.CANDIDATE_WAITING:
        client.set_tag(parent_run_id, "candidate_version", candidate)
    client.set_tag(parent_run_id, "challenger_family", challenger["family"])
    metrics: dict[str, float | None] = {
        f"challenger.{k}": float(v) for k, v in challenger_scores.as_dict().items()
    }
    if champion_scores is not None:
        metrics.update(
            {f"champion_before.{k}": float(v) for k, v in champion_scores.as_dict().items()}
        )
    if evidence is not None:
        metrics.update(
            {
                "promotion.precision_difference": evidence.difference,
                "promotion.precision_difference_low": evidence.low,
                "promotion.precision_difference_high": evidence.high,
                "promotion.probability_challenger_better": evidence.probability,
            }
        )
    if first_meets is not None:
        metrics["promotion.first_champion_meets_floor"] = first_meets
    metrics.update(
        {
            "champion.precision_low": interval[0],
            "champion.precision_high": interval[1],
            "promotion.confidence_required": promotion_confidence,
        }
    )
    for key, value in metrics.items():
        if value is not None:  # no champion interval while the first one waits
            client.log_metric(parent_run_id, key, value)
    return PromoteResult(decision, new_version, changed, previous)
