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
  the champion when, at ``promotion_confidence`` (default 0.9), either it is more precise AND
  meets the floor in that share of resamples (one combined criterion), or the champion misses
  the floor in that share while the challenger meets it in at least half. Everything else
  keeps the champion, so a re-run on unchanged data - even with other CV folds - changes
  nothing. A first champion is installed and marked (``first_champion_meets_floor``).
"""

from typing import Any

from training.evaluation import Evidence, Scores

FIRST_CHAMPION = "first_champion"
CHALLENGER_WINS = "challenger_wins"
CHAMPION_KEPT = "champion_kept"


DEFAULT_PROMOTION_CONFIDENCE = 0.9


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
    confidence: float = DEFAULT_PROMOTION_CONFIDENCE,
) -> str:
    """``first_champion`` | ``challenger_wins`` | ``champion_kept``.

    Args:
        challenger: the challenger's held-out scores.
        champion: the current champion's scores on the same rows, or None if there is none.
        evidence: the paired bootstrap of the precision difference (None without a champion).
        recall_floor: the minimum recall for precision to count.
        confidence: the share of paired resamples needed: challenger more precise AND at the
            floor (one criterion), or the champion under the floor.

    The recall floor is judged inside the same paired bootstrap as precision (issue 23):
    held-out recall's standard error (~0.027) exceeds the margin to the floor, so single
    figures decided on noise. A champion under the floor is replaced only when the evidence
    says it misses it (in ``confidence`` of the resamples) and the challenger meets it in
    at least half; no replacement without evidence. A first champion is installed
    (something must serve) and marked by ``first_champion_meets_floor`` (training.promotion).
    """
    if champion is None:
        return FIRST_CHAMPION
    if evidence is None or evidence.joint_probability is None:
        raise ValueError("a champion is replaced only on evidence that judges the recall floor")
    assert evidence.champion_meets_floor is not None
    assert evidence.challenger_meets_floor is not None
    if evidence.joint_probability >= confidence:
        return CHALLENGER_WINS
    if evidence.champion_meets_floor <= 1 - confidence and evidence.challenger_meets_floor >= 0.5:
        return CHALLENGER_WINS
    return CHAMPION_KEPT
