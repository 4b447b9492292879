"""Representational similarity analysis (sota-and-metrics.md D.2).

RSA correlates the strict upper triangles (diagonal excluded) of two n x n
matrices over the same n stimuli: Pearson r as in Chrupala's ``ursa``, or
Spearman rho (Pearson on ranks, ties averaged). Pass two distance matrices or
two similarity matrices; mixing one of each flips the sign. Model spaces use the
cosine of pooled vectors (or DTW for frame sequences, via ``abx.dtw_distance``);
the symbolic reference is the normalised phoneme edit distance
``Levenshtein(a, b) / max(|a|, |b|)`` (similarity = 1 - that, ursa ``stringsim``).
"""

from typing import Callable, Hashable, Sequence

import numpy as np
from scipy import stats

from vgs_jax.analysis import abx

METHODS = ("pearson", "spearman")


def cosine_similarity_matrix(x) -> np.ndarray:
    """Cosine similarities ``[n, n]`` (float64) between the rows of pooled vectors ``x [n, D]``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be [n >= 2, dim] pooled vectors, got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(x)):
        raise ValueError("x has an all-zero or non-finite row; cosine is undefined for it, drop it")
    xn = x / norms
    return np.clip(xn @ xn.T, -1.0, 1.0)


def cosine_distance_matrix(x) -> np.ndarray:
    """Cosine distances ``1 - cos`` ``[n, n]`` between the rows of ``x [n, D]``."""
    return 1.0 - cosine_similarity_matrix(x)


def dtw_distance_matrix(sequences: Sequence, metric: str = "angular") -> np.ndarray:
    """Symmetric DTW distances ``[n, n]`` between frame sequences (each ``[T_i, D]``), zero diagonal."""
    return _pairwise(sequences, lambda x, y: abx.dtw_distance(x, y, metric))


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance (unit insert/delete/substitute) between two symbol sequences."""
    a, b = list(a), list(b)
    if not a or not b:
        return max(len(a), len(b))
    codes = {s: k for k, s in enumerate(dict.fromkeys(a + b))}
    av = np.array([codes[s] for s in a])
    bv = np.array([codes[s] for s in b])
    cols = np.arange(len(bv) + 1)
    prev = cols.copy()
    for i, sym in enumerate(av, start=1):
        # Without insertions from the left: min(deletion, substitution/match).
        tmp = np.empty_like(prev)
        tmp[0] = i
        tmp[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (bv != sym))
        # Insertions chain left to right: cur[j] = min_k<=j tmp[k] + (j - k).
        prev = np.minimum.accumulate(tmp - cols) + cols
    return int(prev[-1])


def normalized_edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """``edit_distance(a, b) / max(len(a), len(b))`` in [0, 1]; 0.0 for two empty sequences."""
    longest = max(len(a), len(b))
    return 0.0 if longest == 0 else edit_distance(a, b) / longest


def edit_distance_matrix(sequences: Sequence[Sequence[Hashable]]) -> np.ndarray:
    """Normalised edit distances ``[n, n]`` between phoneme (or word) sequences; zero diagonal."""
    return _pairwise(sequences, normalized_edit_distance)


def upper_triangle(m) -> np.ndarray:
    """Strict upper triangle of a square matrix ``[n, n]`` as a vector ``[n (n - 1) / 2]`` (row-major)."""
    m = np.asarray(m)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"expected a square [n, n] matrix with n >= 2, got shape {m.shape}")
    return m[np.triu_indices(m.shape[0], k=1)]


def rsa(m1, m2, method: str = "pearson") -> float:
    """RSA score: ``method`` correlation of the strict upper triangles of ``m1`` and ``m2`` (both ``[n, n]``)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    m1, m2 = np.asarray(m1, dtype=np.float64), np.asarray(m2, dtype=np.float64)
    if m1.shape != m2.shape:
        raise ValueError(f"matrices must describe the same stimuli: shapes {m1.shape} and {m2.shape}")
    u1, u2 = upper_triangle(m1), upper_triangle(m2)
    for name, u in (("m1", u1), ("m2", u2)):
        if not np.all(np.isfinite(u)):
            raise ValueError(f"{name} has NaN or inf off the diagonal")
        if np.ptp(u) == 0:
            raise ValueError(f"{name} is constant off the diagonal, so the correlation is undefined")
    if method == "spearman":
        u1, u2 = stats.rankdata(u1), stats.rankdata(u2)
    return float(np.corrcoef(u1, u2)[0, 1])


def rsa_scores(m1, m2) -> dict[str, float]:
    """Both RSA variants: ``{"pearson": r, "spearman": rho}``."""
    return {method: rsa(m1, m2, method) for method in METHODS}


def _pairwise(items: Sequence, distance: Callable) -> np.ndarray:
    """Symmetric ``[n, n]`` matrix of ``distance(items[i], items[j])``, zero diagonal (n >= 2)."""
    n = len(items)
    if n < 2:
        raise ValueError(f"need at least 2 sequences for a distance matrix, got {n}")
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = distance(items[i], items[j])
    return out
