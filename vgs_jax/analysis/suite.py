"""The analysis suite: every metric of `vgs_jax.analysis` on every layer, trained vs random init.

For each layer ("conv", "gru_0", ...; global analyses also "pooled", the attention output) of
the trained model and of the same model at random initialisation (sota-and-metrics.md D):

* ``local_probe``: frame-level phone classification (`probes.frame_labels` on the layer's frame
  times; frames outside every phone, i.e. pauses, dropped); trained on the frames of the first
  ``train_fraction`` of utterances (subsampled to ``max_probe_frames``), tested on the rest;
  accuracy, majority baseline and RER.
* ``global_probe``: phoneme presence from mean-pooled activations (`probes.presence_probe`), same
  utterance split.
* ``abx_within`` / ``abx_across``: ABX error in [0, 1] over phone tokens cut from the alignments
  (`abx.frames_for_interval` on the layer's frame times), context = (previous, next) phone with
  "#" at the utterance edges; at most ``max_abx_items`` tokens (seeded sample).
* ``rsa``: Pearson and Spearman RSA between cosine distances of mean-pooled activations and the
  normalised phone edit distance, over the first ``max_rsa_utterances`` utterances.
* ``boundaries``: phone boundaries as peaks of the cosine distance between consecutive frames,
  placed midway between them; the peak threshold (a quantile of the signal) is tuned for R-value
  on the first half of the utterances and scored on the second half (one-to-one matching,
  ``tolerance`` seconds). References are the internal phone boundaries of each utterance.

A metric that cannot be computed on the data (e.g. no across-speaker ABX groups) is None.
"""

import dataclasses
import json
import os
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from vgs_jax.analysis import abx
from vgs_jax.analysis import activations as activations_lib
from vgs_jax.analysis import boundaries
from vgs_jax.analysis import probes
from vgs_jax.analysis import rsa


@dataclasses.dataclass(frozen=True)
class SuiteSettings:
    """Sizes of the analyses (defaults: the whole suite in a few minutes on 2 CPU cores)."""

    train_fraction: float = 0.8
    max_probe_frames: int = 6000
    probe_c: float = 1.0
    probe_max_iter: int = 300
    max_abx_items: int = 1200
    abx_max_size_group: int = 5
    abx_max_x_across: int = 3
    max_rsa_utterances: int = 200
    tolerance: float = 0.02
    threshold_quantiles: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 0.95, 20), 2).tolist())
    seed: int = 0

    def __post_init__(self):
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}.")
        for name in ("max_probe_frames", "max_abx_items", "abx_max_size_group", "abx_max_x_across",
                     "probe_max_iter"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.max_rsa_utterances < 3:
            raise ValueError(f"max_rsa_utterances must be >= 3, got {self.max_rsa_utterances}.")


def _shift(acts: activations_lib.Activations) -> float:
    """Offset that maps frame centres ``frame_start + j step`` onto the ``(j + 0.5) step`` convention."""
    return acts.frame_start - 0.5 * acts.frame_step


def phone_frame_labels(acts: activations_lib.Activations) -> list[np.ndarray]:
    """Per utterance, the phone at each frame's centre (object ``[T_i]``, None in pauses)."""
    delta = _shift(acts)
    out = []
    for i, meta in enumerate(acts.meta):
        intervals = [(p, s - delta, e - delta) for p, s, e in meta["phones"] if e > s]
        out.append(probes.frame_labels(intervals, len(acts.frame_times(i)), 1.0 / acts.frame_step))
    return out


def local_probe(acts, layer: str, labels: list[np.ndarray], n_train: int,
                settings: SuiteSettings) -> dict:
    """Frame-level phone probe of `layer`: {"accuracy", "baseline_accuracy", "rer", "train_frames", "test_frames"}."""
    def stack(rows):
        x = np.concatenate([acts.frames[layer][i][labels[i] != None] for i in rows])  # noqa: E711
        y = np.concatenate([labels[i][labels[i] != None] for i in rows]).astype(str)  # noqa: E711
        return x, y

    x_train, y_train = stack(range(n_train))
    x_test, y_test = stack(range(n_train, len(labels)))
    if len(y_train) > settings.max_probe_frames:
        keep = np.sort(np.random.default_rng(settings.seed).choice(
            len(y_train), settings.max_probe_frames, replace=False))
        x_train, y_train = x_train[keep], y_train[keep]
    out = probes.train_probe(x_train, y_train, x_test, y_test, c=settings.probe_c,
                             max_iter=settings.probe_max_iter, seed=settings.seed)
    return {**out, "train_frames": int(len(y_train)), "test_frames": int(len(y_test))}


def global_probe(acts, layer: str, n_train: int, settings: SuiteSettings) -> dict:
    """Phoneme-presence probe on mean-pooled `layer` (see `probes.presence_probe`)."""
    targets, _ = probes.presence_labels([[p for p, _, _ in m["phones"]] for m in acts.meta])
    x = acts.mean_pooled(layer)
    return probes.presence_probe(x[:n_train], targets[:n_train], x[n_train:], targets[n_train:],
                                 c=settings.probe_c, max_iter=settings.probe_max_iter, seed=settings.seed)


def abx_items(acts, settings: SuiteSettings) -> list[tuple[int, slice, str, tuple, int]]:
    """Phone tokens (utterance, frame slice, phone, (prev, next) context, speaker), capped and seeded.

    Only tokens whose context holds at least two phone categories (so can form ABX triplets) are kept.
    """
    delta = _shift(acts)
    items = []
    for i, meta in enumerate(acts.meta):
        phones, num_frames = meta["phones"], len(acts.frame_times(i))
        for k, (phone, start, end) in enumerate(phones):
            try:
                span = abx.frames_for_interval(max(start - delta, 0.0), max(end - delta, 0.0), acts.frame_step)
            except ValueError:  # shorter than a frame step: no frame centre falls inside
                continue
            if span.stop > num_frames:
                continue
            context = (phones[k - 1][0] if k else "#", phones[k + 1][0] if k + 1 < len(phones) else "#")
            items.append((i, span, phone, context, meta["speaker_id"]))
    phones_in = {}
    for _, _, phone, context, _ in items:
        phones_in.setdefault(context, set()).add(phone)
    items = [it for it in items if len(phones_in[it[3]]) >= 2]
    if len(items) > settings.max_abx_items:
        keep = np.random.default_rng(settings.seed).choice(len(items), settings.max_abx_items, replace=False)
        items = [items[k] for k in sorted(keep)]
    return items


def abx_scores(acts, layer: str, items, settings: SuiteSettings) -> dict[str, float | None]:
    """{"within", "across"} ABX error rates in [0, 1] of `layer` (None where no triplet exists)."""
    tokens = [abx.AbxItem(acts.frames[layer][i][span], phone, context, speaker)
              for i, span, phone, context, speaker in items]
    out = {}
    for mode in abx.MODES:
        groups = abx.abx_group_errors(tokens, mode=mode, max_size_group=settings.abx_max_size_group,
                                      max_x_across=settings.abx_max_x_across, seed=settings.seed) if tokens else {}
        out[mode] = abx.aggregate_group_errors(groups) if groups else None
    return out


def reference_boundaries(meta: dict) -> np.ndarray:
    """Internal phone boundaries in seconds ``[K]``: every phone start after the first and every phone
    end before the last (an end that another phone starts at counts once)."""
    phones = meta["phones"]
    times = [s for _, s, _ in phones[1:]] + [e for _, _, e in phones[:-1]]
    times = np.unique(np.round(np.asarray(times, np.float64), 4))
    return times


def change_signal(frames: np.ndarray) -> np.ndarray:
    """Cosine distance between consecutive frames: ``[T, D]`` -> ``[T - 1]`` float64 in [0, 2]."""
    x = np.asarray(frames, np.float64)
    norms = np.maximum(np.linalg.norm(x, axis=1), 1e-12)
    return 1.0 - np.sum(x[1:] * x[:-1], axis=1) / (norms[1:] * norms[:-1])


def boundary_scores(acts, layer: str, settings: SuiteSettings) -> dict:
    """Threshold tuned on the first half of utterances, scores on the second half (see module doc)."""
    signals = [change_signal(f) for f in acts.frames[layer]]
    refs = [reference_boundaries(m) for m in acts.meta]
    half = len(signals) // 2
    pooled = np.concatenate(signals[:half])
    thresholds = np.quantile(pooled, settings.threshold_quantiles) if pooled.size else np.zeros(1)
    kwargs = dict(frame_shift=acts.frame_step, time_offset=acts.frame_start + 0.5 * acts.frame_step)
    best, _ = boundaries.tune_threshold(signals[:half], refs[:half], list(thresholds), criterion="r_value",
                                        tolerance=settings.tolerance, **kwargs)
    predicted = [boundaries.detect_boundaries(s, threshold=best, **kwargs) for s in signals[half:]]
    scores = boundaries.evaluate_boundaries(predicted, refs[half:], settings.tolerance)
    quantile = settings.threshold_quantiles[list(thresholds).index(best)]
    return {**scores, "threshold": best, "threshold_quantile": quantile}


def run_suite(acts: dict[str, activations_lib.Activations], settings: SuiteSettings = SuiteSettings()) -> dict:
    """All analyses for each model in `acts` ({"trained": ..., "random": ...}).

    Returns {"settings", "num_utterances", "layers", "seconds", <which>: {layer: {metric: ...}}}.
    Frame layers get every metric; "pooled" only global_probe and rsa.
    """
    with warnings.catch_warnings():  # probes stop at probe_max_iter by design
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _run_suite(acts, settings)


def _run_suite(acts, settings: SuiteSettings) -> dict:
    report = {"settings": dataclasses.asdict(settings), "seconds": {}}
    for which, a in acts.items():
        n = len(a.meta)
        if n < 4:
            raise ValueError(f"{which}: {n} utterances are too few to analyse; use max_utterances >= 4.")
        n_train = min(max(int(round(settings.train_fraction * n)), 1), n - 1)
        labels = phone_frame_labels(a)
        items = abx_items(a, settings)
        m_rsa = min(n, settings.max_rsa_utterances)
        edit = rsa.edit_distance_matrix([[p for p, _, _ in m["phones"]] for m in a.meta[:m_rsa]])
        report["num_utterances"], report["layers"] = n, a.layers + ["pooled"]
        report[which] = {}
        timing = dict.fromkeys(("local_probe", "global_probe", "abx", "rsa", "boundaries"), 0.0)
        for layer in a.layers + ["pooled"]:
            row, clock = {}, time.perf_counter()
            if layer != "pooled":
                row["local_probe"] = local_probe(a, layer, labels, n_train, settings)
                timing["local_probe"] += time.perf_counter() - clock
            clock = time.perf_counter()
            row["global_probe"] = global_probe(a, layer, n_train, settings)
            timing["global_probe"] += time.perf_counter() - clock
            clock = time.perf_counter()
            if layer != "pooled":
                row.update({f"abx_{k}": v for k, v in abx_scores(a, layer, items, settings).items()})
                row["abx_items"] = len(items)
            timing["abx"] += time.perf_counter() - clock
            clock = time.perf_counter()
            row["rsa"] = rsa.rsa_scores(rsa.cosine_distance_matrix(a.mean_pooled(layer)[:m_rsa]), edit)
            timing["rsa"] += time.perf_counter() - clock
            clock = time.perf_counter()
            if layer != "pooled":
                row["boundaries"] = boundary_scores(a, layer, settings)
            timing["boundaries"] += time.perf_counter() - clock
            report[which][layer] = row
        report["seconds"][which] = {k: round(v, 2) for k, v in timing.items()}
    return report


def _fmt(value, scale: float = 100.0) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{scale * value:.1f}"


def format_table(report: dict) -> str:
    """Layer-by-layer table, "trained/random" in each cell (percent, RSA x100)."""
    cols = ("phone acc", "phone RER", "presence acc", "ABX within", "ABX across", "RSA r", "bound F1",
            "R-value")

    def cells(row):
        local, bound = row.get("local_probe"), row.get("boundaries")
        return (local and local["accuracy"], local and local["rer"], row["global_probe"]["accuracy"],
                row.get("abx_within"), row.get("abx_across"), row["rsa"]["pearson"],
                bound and bound["f1"], bound and bound["r_value"])

    lines = [f"{'layer':<8}" + "".join(f"{c:>14}" for c in cols)]
    for layer in report["layers"]:
        t, r = cells(report["trained"][layer]), cells(report["random"][layer])
        lines.append(f"{layer:<8}" + "".join(f"{_fmt(a) + '/' + _fmt(b):>14}" for a, b in zip(t, r)))
    return "\n".join(lines)


def analyze_workdir(workdir: str, *, checkpoint: str | int = "best", split: str = "validation",
                    max_utterances: int = 200, settings: SuiteSettings = SuiteSettings(),
                    output_dir: str | None = None) -> dict:
    """Extracts (or reuses) activations, runs the suite, writes report.json and PNGs; returns the report.

    Files go to `output_dir` (default `workdir/analysis`); the report adds "step", "split",
    "dataset", "checkpoint", "cache_reused", "report_path" and "plots".
    """
    from vgs_jax.analysis import plots  # deferred: matplotlib is only needed here

    step, config, acts, reused = activations_lib.load_or_extract(
        workdir, checkpoint=checkpoint, split=split, max_utterances=max_utterances)
    report = {"workdir": os.path.abspath(workdir), "checkpoint": str(checkpoint), "step": int(step),
              "split": split, "dataset": config.dataset.name, "cache_reused": reused,
              **run_suite(acts, settings)}
    output_dir = output_dir or os.path.join(workdir, "analysis")
    os.makedirs(output_dir, exist_ok=True)
    report["plots"] = plots.write_plots(report, output_dir)
    report["report_path"] = os.path.join(output_dir, "report.json")
    with open(report["report_path"], "w") as f:
        json.dump(_jsonable(report), f, indent=2)
    return report


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
