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
* the challenger replaces the champion when it meets the recall floor and either that
  probability reaches ``promotion_confidence`` (default 0.9) or the champion misses the floor
  on these rows. Differences inside the noise (~0.05 standard error on ~90 potable calls) keep
  the champion, so a re-run on unchanged data - even with other CV folds - changes nothing.
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


def decide(challenger: Scores, champion: Scores | None, evidence: Evidence | None,
           recall_floor: float, confidence: float = DEFAULT_PROMOTION_CONFIDENCE) -> str:
    """``first_champion`` | ``challenger_wins`` | ``champion_kept``.

    Args:
        challenger: the challenger's held-out scores.
        champion: the current champion's scores on the same rows, or None if there is none.
        evidence: the paired bootstrap of the precision difference (None without a champion).
        recall_floor: the minimum recall for precision to count.
        confidence: P(challenger more precise) needed to replace a champion that meets the
            floor.
    """
    if champion is None:
        return FIRST_CHAMPION
    if not challenger.meets(recall_floor):
        return CHAMPION_KEPT
    if not champion.meets(recall_floor):
        return CHALLENGER_WINS
    if evidence is None:
        raise ValueError("a champion that meets the floor is replaced only on evidence")
    return CHALLENGER_WINS if evidence.probability >= confidence else CHAMPION_KEPT
