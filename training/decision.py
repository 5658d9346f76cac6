"""The promotion decision: which candidate is the challenger and whether it replaces the
champion - pure functions of the figures, no I/O (:mod:`training.promotion` gathers the
evidence and records the decision).

Rules (one test per branch):

* the challenger is the candidate with the best **cross-validated** precision at the recall
  floor on the training rows (threshold tuned inside the folds; if none reaches the floor in
  CV, the one with the best CV recall). The held-out rows play no part in this choice, so the
  challenger's held-out precision is an honest estimate, not the winner's curse of picking the
  best of several noisy held-out figures;
* the champion (registered model alias ``champion``) is re-scored with the same
  :func:`training.evaluation.score_model` on the same held-out rows;
* a paired bootstrap (:func:`training.evaluation.paired_bootstrap`, 2,000 resamples, fixed
  seed) of the held-out precision difference, each model at its own threshold, gives the
  difference's 95% interval and P(challenger more precise);
* the recall floor is judged INSIDE the same resamples (issue 23). The challenger replaces
  the champion when either it is more precise in the look's share of resamples AND meets the
  floor in :data:`FLOOR_CONFIDENCE` (0.9) of them, or the champion misses the floor in the
  look's share while the challenger meets it in at least half. Everything else keeps the
  champion. A first champion is installed and marked (``first_champion_meets_floor``);
* **looks, spaced, with a stated rate per quarter** (issue 31). The pipeline runs daily, but a
  champion is put to the test only on a *look*: a run on a date at least ``look_days`` (7)
  after the last look (:func:`is_look`; ``PROMOTION_LOOK_DAYS``, ``PROMOTION_FALSE_RATE``
  in :mod:`potability.config`). Any 90 days then hold at most
  :func:`looks_per_quarter` looks (13), and each look tests at
  ``1 - false_rate / looks`` (:func:`look_confidence`: 0.99615 for 5% a quarter). A
  challenger no better than the champion is then promoted in at most ``false_rate`` of
  quarters, by Bonferroni's inequality - whatever the correlation between looks, the
  volume of arriving rows, or daily retraining. Runs between looks keep the champion
  without testing it. Why this design and not another: docs/statistics.md (simulated by
  bench/promotion_bench.py).
"""

import math
from datetime import date
from typing import Any

from training.evaluation import Evidence, Scores

FIRST_CHAMPION = "first_champion"
CHALLENGER_WINS = "challenger_wins"
CHAMPION_KEPT = "champion_kept"


FLOOR_CONFIDENCE = 0.9
"""The share of resamples in which a challenger must meet the recall floor: one-sided 0.9 is
the z = 1.28 the threshold's recall margin is sized with (:data:`training.modeling.
DEFAULT_RECALL_Z`). The floor is not what the false-promotion rate is about - a challenger no
more precise than the champion is stopped by the precision part at the look's level - and at
that level (z = 2.66) it would demand a recall margin the threshold is not tuned for: judged
jointly at 0.99615, bench/statistics_bench.py promoted a 0.85 challenger within a quarter in
66% of quarters, judged at 0.9 in 97% (docs/statistics.md)."""

QUARTER_DAYS = 90
"""The period the false-promotion rate is stated for (about 90 daily runs)."""


def looks_per_quarter(look_days: int) -> int:
    """The most looks any :data:`QUARTER_DAYS` consecutive dates can hold when looks are at
    least ``look_days`` dates apart (13 for 7)."""
    if look_days < 1:
        raise ValueError(f"look_days must be >= 1, got {look_days}")
    return math.ceil(QUARTER_DAYS / look_days)


def look_confidence(false_rate: float, look_days: int) -> float:
    """The share of paired resamples one look needs: ``1 - false_rate / looks_per_quarter``,
    so the looks of any quarter together promote a no-better challenger with probability at
    most ``false_rate`` (Bonferroni: P(any) <= the sum of the looks' levels)."""
    if not 0 < false_rate < 1:
        raise ValueError(f"false_rate must be in (0, 1), got {false_rate}")
    return 1 - false_rate / looks_per_quarter(look_days)


def is_look(today: date, last_look: date | None, look_days: int) -> bool:
    """Whether today's run may test the champion: no look yet, or the last one at least
    ``look_days`` dates ago (a second run on a look's date is no look)."""
    return last_look is None or (today - last_look).days >= look_days


def challenger_key(item: dict[str, Any]) -> tuple[Any, ...]:
    """Sort key, best first when reversed: CV precision at the floor (0 when CV recall misses
    it), then CV recall, then CV precision. Held-out scores are not looked at."""
    return (item["cv_score"], item.get("cv_recall", 0.0), item.get("cv_precision", 0.0))


def choose_challenger(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The best candidate by cross-validated precision at the recall floor (training rows).

    Args:
        candidates: train's (or evaluate's) candidates, each with ``cv_score``, ``cv_recall``
            and ``cv_precision``.
    """
    if not candidates:
        raise ValueError("no candidates to choose from")
    return max(candidates, key=challenger_key)


def decide(
    challenger: Scores,
    champion: Scores | None,
    evidence: Evidence | None,
    recall_floor: float,
    confidence: float,
    look: bool = True,
) -> str:
    """``first_champion`` | ``challenger_wins`` | ``champion_kept``.

    Args:
        challenger: the challenger's held-out scores.
        champion: the current champion's scores on the same rows, or None if there is none.
        evidence: the paired bootstrap of the precision difference (None without a champion).
        recall_floor: the minimum recall for precision to count.
        confidence: the share of paired resamples needed: challenger more precise (and at
            the floor in :data:`FLOOR_CONFIDENCE` of them), or the champion under the floor
            (a look's: :func:`look_confidence`).
        look: whether this run is a look (:func:`is_look`); between looks the champion is
            kept untested.

    The recall floor is judged inside the same paired bootstrap as precision (issue 23):
    held-out recall's standard error (~0.027) exceeds the margin to the floor, so single
    figures decided on noise. A champion under the floor is replaced only when the evidence
    says it misses it (in ``confidence`` of the resamples) and the challenger meets it in
    at least half; no replacement without evidence. A first champion is installed
    (something must serve) and marked by ``first_champion_meets_floor`` (training.promotion).
    """
    if champion is None:
        return FIRST_CHAMPION
    if not look:
        return CHAMPION_KEPT
    if evidence is None or evidence.joint_probability is None:
        raise ValueError("a champion is replaced only on evidence that judges the recall floor")
    assert evidence.champion_meets_floor is not None
    assert evidence.challenger_meets_floor is not None
    if evidence.probability >= confidence and evidence.challenger_meets_floor >= min(
        confidence, FLOOR_CONFIDENCE
    ):
        return CHALLENGER_WINS
    if evidence.champion_meets_floor <= 1 - confidence and evidence.challenger_meets_floor >= 0.5:
        return CHALLENGER_WINS
    return CHAMPION_KEPT
