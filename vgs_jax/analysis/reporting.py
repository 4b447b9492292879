"""The suite report as text tables (printed by `python -m vgs_jax.analyze`) and as strict JSON."""

import json

import numpy as np


def _fmt(value, scale: float = 100.0) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{scale * value:.1f}"


def _get(row, *keys):
    for key in keys:
        row = row.get(key) if isinstance(row, dict) else None
    return row


def format_table(report: dict) -> str:
    """Layer-by-layer table, "trained/random" in each cell (percent, RSA x100); "-" where not run."""
    cols = {"phone acc": ("local_probe", "accuracy"), "phone RER": ("local_probe", "rer"),
            "presence acc": ("global_probe", "accuracy"), "ABX within": ("abx_within",),
            "ABX across": ("abx_across",), "RSA r": ("rsa", "pearson"), "bound F1": ("boundaries", "f1"),
            "R-value": ("boundaries", "r_value"), "word F1": ("word_presence", "macro", "f1")}
    lines = [f"{'layer':<8}" + "".join(f"{c:>14}" for c in cols)]
    for layer in report["layers"]:
        cells = [_fmt(_get(report["trained"][layer], *k)) + "/" + _fmt(_get(report["random"][layer], *k))
                 for k in cols.values()]
        lines.append(f"{layer:<8}" + "".join(f"{c:>14}" for c in cells))
    return "\n".join(lines)


def format_word_analyses(report: dict) -> str:
    """Gating (mean rank and R@10 per gate) and attention share per word class, trained/random."""
    lines = []
    gate = report.get("gating")
    if gate:
        t, r = gate["trained"], gate["random"]
        lines.append(f"gating ({t['num_trials']} words, {t['num_images']} images, context {t['context']}; "
                     f"chance R@10 {100 * t['chance_r10']:.1f}):")
        lines.append(f"{'gate':<8}{'mean rank':>16}{'R@10':>14}")
        for g, f in enumerate(t["fractions"]):
            lines.append(f"{f:<8.2f}{t['mean_rank'][g]:>8.1f}/{r['mean_rank'][g]:<7.1f}"
                         f"{_fmt(t['r10'][g]) + '/' + _fmt(r['r10'][g]):>14}")
    att = report.get("attention_words")
    if att and "not_applicable" in att:
        lines.append(f"attention: not applicable ({att['not_applicable']})")
    elif att and att.get("trained"):
        lines.append("attention share per word class (trained/random, expected from duration):")
        for cls, row in att["trained"]["classes"].items():
            other = _get(att, "random", "classes", cls, "share")
            lines.append(f"{cls:<10}{_fmt(row['share']) + '/' + _fmt(other):>14}{_fmt(row['expected_share']):>8}")
    return "\n".join(lines)


def write_json(report: dict, path: str) -> None:
    """Writes `report` to `path` as strict JSON (see `_jsonable`)."""
    with open(path, "w") as f:
        json.dump(_jsonable(report), f, indent=2)


def _jsonable(value):
    """NaN/inf -> None and NumPy scalars -> Python, so the report is strict JSON."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
