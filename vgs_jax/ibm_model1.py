"""IBM Model 1 EM alignment between meanings and word candidates (Yu et al. 2005's lexicon learner).

Each sentence pairs the word-candidate ids it contains with the meaning ids present (Yu et al.: the
object categories attended while it was spoken). The translation table t[e, f] = p(word f | meaning
e) starts uniform; each EM iteration gives every word token of a sentence to the sentence's
meanings in proportion to t[e, f] (E-step; with `null`, an extra NULL meaning, index
`num_meanings`, is present in every sentence and takes function words), sums those fractional
counts over the corpus and renormalises each meaning's row (M-step). Brown et al. (1993), model 1.
"""
from collections.abc import Sequence

import numpy as np


def em(sentences: Sequence[tuple[Sequence[int], Sequence[int]]], num_words: int, num_meanings: int, *,
       iterations: int, null: bool = True) -> np.ndarray:
    """sentences: (word ids, meaning ids) per sentence -> t [num_meanings (+1 with `null`), num_words],
    each row a distribution over words (uniform for a meaning that never occurs)."""
    rows = num_meanings + int(null)
    pairs = []
    for k, (words, meanings) in enumerate(sentences):
        w, m = np.asarray(words, int), np.asarray(meanings, int)
        if w.size and (np.any(w < 0) or np.any(w >= num_words)):
            raise ValueError(f"sentence {k} has word ids {w.tolist()} outside 0..{num_words - 1}")
        if m.size and (np.any(m < 0) or np.any(m >= num_meanings)):
            raise ValueError(f"sentence {k} has meaning ids {m.tolist()} outside 0..{num_meanings - 1}")
        if null:
            m = np.append(m, num_meanings)
        if w.size and m.size:
            pairs.append((w, m))
    t = np.full((rows, num_words), 1.0 / num_words)
    for _ in range(iterations):
        counts = np.zeros_like(t)
        for w, m in pairs:
            sub = t[np.ix_(m, w)]  # [|m|, |w|]
            post = sub / sub.sum(0, keepdims=True)
            np.add.at(counts, (m[:, None], w[None, :]), post)
        total = counts.sum(1, keepdims=True)
        t = np.where(total > 0, counts / np.maximum(total, 1e-300), 1.0 / num_words)
    return t
