"""Edit distance and unit error rates (character / phone error rate) of recognised text."""

from typing import Sequence

import numpy as np


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance: the fewest substitutions, deletions and insertions turning `reference`
    into `hypothesis` (sequences of hashable units: characters, phone strings or ints)."""
    ref, hyp = list(reference), list(hypothesis)
    row = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, start=1):
        previous, row = row, np.empty_like(row)
        row[0] = i
        for j, h in enumerate(hyp, start=1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (r != h))
    return int(row[-1])


def error_rate(references: Sequence[Sequence], hypotheses: Sequence[Sequence]) -> dict:
    """Corpus unit error rate: summed edit distances over summed reference lengths.

    Returns {"error_rate": float (0 = perfect; can exceed 1 with many insertions), "errors": int,
    "reference_units": int, "utterances": int}.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"error_rate: {len(references)} references but {len(hypotheses)} hypotheses.")
    errors = sum(edit_distance(r, h) for r, h in zip(references, hypotheses))
    units = sum(len(r) for r in references)
    if units == 0:
        raise ValueError("error_rate: the references are empty; nothing to score.")
    return {"error_rate": errors / units, "errors": errors, "reference_units": units,
            "utterances": len(references)}
