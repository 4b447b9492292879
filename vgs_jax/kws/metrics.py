"""Keyword-spotting metrics (Kamper et al. 2017; kamperh/recipe_semantic_flickraudio
`speech_nn/eval_keyword_spotting.py`): per keyword, rank every utterance by its score, then

- P@10: the fraction of the 10 top-ranked utterances that are relevant;
- P@N: the fraction of the N top-ranked that are relevant, N = the keyword's relevant utterances;
- EER: on the ROC curve (linear between its points), the false-positive rate x where the
  true-positive rate is 1 - x.

Ties rank in utterance order. Keywords without relevant (or without irrelevant) utterances have
no P@N / EER and are left out of the averages (`keywords_scored` says how many count).
"""
import numpy as np


def ranking(scores: np.ndarray) -> np.ndarray:
    """Indices of `scores` [N] from highest to lowest, ties in index order."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")


def precision_at(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Fraction of the top min(k, N) utterances that are relevant."""
    top = ranking(scores)[:k]
    return float(np.mean(np.asarray(relevant, bool)[top]))


def equal_error_rate(scores: np.ndarray, relevant: np.ndarray) -> float:
    """EER of scores [N] against relevant [N] bool (both classes present)."""
    relevant = np.asarray(relevant, bool)
    order = ranking(scores)
    s, r = np.asarray(scores, np.float64)[order], relevant[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]  # last index of each run of equal scores
    tpr = np.r_[0.0, np.cumsum(r)[last] / r.sum()]
    fpr = np.r_[0.0, np.cumsum(~r)[last] / (~r).sum()]
    gap = 1.0 - fpr - tpr  # >= 0 at the start, <= 0 at the end
    i = int(np.flatnonzero(gap[1:] <= 0)[0])  # gap[i] > 0 >= gap[i + 1]
    return float(fpr[i] + gap[i] / (gap[i] - gap[i + 1]) * (fpr[i + 1] - fpr[i]))


def keyword_metrics(scores: np.ndarray, relevant: np.ndarray, names: list[str]) -> dict:
    """scores [N, V] float, relevant [N, V] bool -> {"p_at_10", "p_at_n", "eer" (averages over the
    keywords with relevant and irrelevant utterances), "keywords_scored", "per_keyword": {name:
    {"p_at_10", "p_at_n", "eer", "n"}}}."""
    scores, relevant = np.asarray(scores), np.asarray(relevant, bool)
    if scores.shape != relevant.shape or scores.ndim != 2 or scores.shape[1] != len(names):
        raise ValueError(f"keyword_metrics: scores {scores.shape} and relevant {relevant.shape} must both be "
                         f"[utterances, {len(names)} keywords].")
    per = {}
    for v, name in enumerate(names):
        n = int(relevant[:, v].sum())
        if n == 0 or n == len(relevant):
            per[name] = {"n": n}
            continue
        per[name] = {"n": n, "p_at_10": precision_at(scores[:, v], relevant[:, v], 10),
                     "p_at_n": precision_at(scores[:, v], relevant[:, v], n),
                     "eer": equal_error_rate(scores[:, v], relevant[:, v])}
    scored = [m for m in per.values() if "eer" in m]
    means = {key: float(np.mean([m[key] for m in scored])) if scored else float("nan")
             for key in ("p_at_10", "p_at_n", "eer")}
    return {**means, "keywords_scored": len(scored), "per_keyword": per}
