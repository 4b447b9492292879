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
* ``boundaries``: phone boundaries as peaks of a frame signal (`boundaries.METHODS`, chosen by
  ``boundary_method``): the cosine distance between consecutive frames, placed midway between
  them (default), or the L2 norm of each frame, placed at its centre (after Harwath & Glass
  2019); the peak threshold (a quantile of the signal) is tuned for R-value on the first half of
  the utterances and scored on the second half (one-to-one matching, ``tolerance`` seconds).
  References are the internal phone boundaries of each utterance. Each row records its "method".

* ``word_presence``: per word type of the vocabulary (content words with >= ``word_min_count``
  occurrences; `attention_words.FUNCTION_WORDS` excluded), a binary presence probe from the
  mean-pooled layer (`word_presence`); macro and per-word accuracy/F1 vs the majority baseline.

Word-level analyses outside the layer table (`report["attention_words"]`, `report["gating"]`):

* ``attention``: the pooling's frame attention summed per word and averaged per word class, vs
  the share duration alone predicts (`attention_words`). Encoders without attention pooling
  (DAVEnet, ResDAVEnet: mean pooling) get ``{"not_applicable": reason}``.
* ``gating``: image retrieval rank of a shape/colour word's concept when the caption is cut at
  ``gating_fractions`` of the word (`gating`); needs the model, so only `analyze_workdir` runs it,
  and only on corpora with object labels (spoken_shapes; otherwise it is in ``report["not_applicable"]``).

The layer analyses (`LAYER_ANALYSES`) need per-layer frame outputs, which a speech encoder
declares in its `capabilities` (platalea_gru, speech2image, rhn, transformer: one conv frame
clock; davenet, resdavenet: every stage repeated back to the 10 ms input rate); for an encoder
that declares none `analyze_workdir` reports them as not applicable (``report["layer_analyses"]``).
The matchmap, VQ-unit and semantic analyses (`map_analyses.MAP_ANALYSES`) run on the model
itself; see `vgs_jax.analysis.map_analyses`.

`ANALYSES` names what `analyses=` (and `analyze --analyses`) can select; "probes" is the local and
global phone probes. Each analysis reads example fields (`data_fields.FIELDS`: phone/word
alignments, object labels) that only some corpora have; `analyze_workdir` reports the ones the
corpus cannot feed as not applicable, or refuses them when asked for by name. A metric that cannot
be computed on the data (e.g. no across-speaker ABX groups, no word frequent enough) is None.
"""

import dataclasses
import json
import os
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from vgs_jax import input_pipeline
from vgs_jax.analysis import abx
from vgs_jax.analysis import activations as activations_lib
from vgs_jax.analysis import attention_words
from vgs_jax.analysis import boundaries
from vgs_jax.analysis import data_fields
from vgs_jax.analysis import gating
from vgs_jax.analysis import map_analyses
from vgs_jax.analysis import probes
from vgs_jax.analysis import rsa
from vgs_jax.analysis import word_presence

LAYER_ANALYSES = ("probes", "abx", "rsa", "boundaries", "word_presence", "attention")
ANALYSES = ("probes", "abx", "rsa", "boundaries", "word_presence", "gating", "attention") + map_analyses.MAP_ANALYSES


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
    boundary_method: str = "cosine_change"
    word_min_count: int = 10
    gating_fractions: tuple[float, ...] = gating.DEFAULT_FRACTIONS
    gating_context: str = "utterance"
    max_gating_trials: int = 200
    seed: int = 0

    def __post_init__(self):
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}.")
        for name in ("max_probe_frames", "max_abx_items", "abx_max_size_group", "abx_max_x_across",
                     "probe_max_iter", "word_min_count", "max_gating_trials"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.boundary_method not in boundaries.METHODS:
            raise ValueError(f"boundary_method must be one of {boundaries.METHODS}, got {self.boundary_method!r}.")
        if self.gating_context not in gating.CONTEXTS:
            raise ValueError(f"gating_context must be one of {gating.CONTEXTS}, got {self.gating_context!r}.")
        if not self.gating_fractions or any(not 0.0 <= f <= 1.0 for f in self.gating_fractions):
            raise ValueError(f"gating_fractions must be non-empty fractions in [0, 1], got {self.gating_fractions}.")
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


def boundary_scores(acts, layer: str, settings: SuiteSettings) -> dict:
    """Threshold tuned on the first half of utterances, scores on the second half (see module doc)."""
    method, frames = settings.boundary_method, acts.frames[layer]
    refs = [reference_boundaries(m) for m in acts.meta]
    half = len(frames) // 2
    signals = [boundaries.boundary_signal(f, method) for f in frames[:half]]
    pooled = np.concatenate(signals)
    thresholds = np.quantile(pooled, settings.threshold_quantiles) if pooled.size else np.zeros(1)
    best, _ = boundaries.tune_threshold(
        signals, refs[:half], list(thresholds), criterion="r_value", tolerance=settings.tolerance,
        frame_shift=acts.frame_step, time_offset=acts.frame_start + boundaries.SIGNAL_LAG[method] * acts.frame_step)
    predicted = [boundaries.frame_boundaries(f, method=method, frame_step=acts.frame_step,
                                             frame_start=acts.frame_start, threshold=best) for f in frames[half:]]
    scores = boundaries.evaluate_boundaries(predicted, refs[half:], settings.tolerance)
    quantile = settings.threshold_quantiles[list(thresholds).index(best)]
    return {**scores, "method": method, "threshold": best, "threshold_quantile": quantile}


def check_analyses(analyses) -> tuple[str, ...]:
    """`analyses` as a tuple in `ANALYSES` order; unknown names raise ValueError listing the valid ones."""
    analyses = tuple(analyses)
    unknown = sorted(set(analyses) - set(ANALYSES))
    if unknown or not analyses:
        raise ValueError(f"Unknown analyses {unknown or analyses}; choose from {list(ANALYSES)}.")
    return tuple(a for a in ANALYSES if a in analyses)


def word_presence_scores(acts, layer: str, vocab: list[str], n_train: int, settings: SuiteSettings) -> dict | None:
    """Word-presence probe of mean-pooled `layer` (None if the vocabulary is empty)."""
    if not vocab:
        return None
    y = word_presence.presence_targets([[w for w, _, _ in m["words"]] for m in acts.meta], vocab)
    x = acts.mean_pooled(layer)
    return word_presence.word_presence_probe(x[:n_train], y[:n_train], x[n_train:], y[n_train:], vocab,
                                             c=settings.probe_c, max_iter=settings.probe_max_iter,
                                             seed=settings.seed)


def attention_scores(acts) -> dict | None:
    """`attention_words.attention_by_class` of the pooling attention (None if not extracted)."""
    if acts.attention is None:
        return None
    classes = attention_words.word_classes()
    return attention_words.attention_by_class(
        acts.attention, [acts.frame_times(i) for i in range(len(acts.meta))], [m["words"] for m in acts.meta],
        lambda w: attention_words.classify(w, classes))


def run_suite(acts: dict[str, activations_lib.Activations], settings: SuiteSettings = SuiteSettings(),
              analyses=ANALYSES) -> dict:
    """The selected layer analyses (`LAYER_ANALYSES`; others are ignored) for each model in `acts`.

    Returns {"settings", "analyses", "num_utterances", "layers", "seconds", <which>: {layer: {metric: ...}}}
    plus "word_vocabulary" and "attention_words": {which: ...} (or {"not_applicable": reason} without
    attention pooling) when selected. Frame layers get every
    metric; "pooled" only global_probe, rsa and word_presence.
    """
    analyses = check_analyses(analyses)
    for which, a in acts.items():
        _, missing = data_fields.split_by_fields([x for x in analyses if x in LAYER_ANALYSES], a.meta[0])
        if missing:
            raise data_fields.MissingFieldsError(data_fields.missing_fields_message(
                missing, a.meta[0], f"the {which!r} activations' meta"))
    with warnings.catch_warnings():  # probes stop at probe_max_iter by design
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _run_suite(acts, settings, analyses)


def _run_suite(acts, settings: SuiteSettings, analyses: tuple[str, ...]) -> dict:
    report = {"settings": dataclasses.asdict(settings), "analyses": list(analyses), "seconds": {}}
    for which, a in acts.items():
        n = len(a.meta)
        if n < 4:
            raise ValueError(f"{which}: {n} utterances are too few to analyse; use max_utterances >= 4.")
        n_train = min(max(int(round(settings.train_fraction * n)), 1), n - 1)
        labels = phone_frame_labels(a) if "probes" in analyses else None
        items = abx_items(a, settings) if "abx" in analyses else None
        m_rsa = min(n, settings.max_rsa_utterances)
        if "rsa" in analyses:
            edit = rsa.edit_distance_matrix([[p for p, _, _ in m["phones"]] for m in a.meta[:m_rsa]])
        if "word_presence" in analyses:
            vocab = word_presence.vocabulary([[w for w, _, _ in m["words"]] for m in a.meta],
                                             min_count=settings.word_min_count,
                                             exclude=attention_words.FUNCTION_WORDS)
        report["num_utterances"], report["layers"] = n, a.layers + ["pooled"]
        report[which] = {}
        timing = dict.fromkeys(("local_probe", "global_probe", "abx", "rsa", "boundaries", "word_presence",
                                "attention"), 0.0)

        def timed(name, fn):
            clock = time.perf_counter()
            value = fn()
            timing[name] += time.perf_counter() - clock
            return value

        for layer in a.layers + ["pooled"]:
            row, frame_layer = {}, layer != "pooled"
            if "probes" in analyses:
                if frame_layer:
                    row["local_probe"] = timed("local_probe", lambda: local_probe(a, layer, labels, n_train, settings))
                row["global_probe"] = timed("global_probe", lambda: global_probe(a, layer, n_train, settings))
            if "abx" in analyses and frame_layer:
                scores = timed("abx", lambda: abx_scores(a, layer, items, settings))
                row.update({f"abx_{k}": v for k, v in scores.items()})
                row["abx_items"] = len(items)
            if "rsa" in analyses:
                row["rsa"] = timed("rsa", lambda: rsa.rsa_scores(
                    rsa.cosine_distance_matrix(a.mean_pooled(layer)[:m_rsa]), edit))
            if "boundaries" in analyses and frame_layer:
                row["boundaries"] = timed("boundaries", lambda: boundary_scores(a, layer, settings))
            if "word_presence" in analyses:
                row["word_presence"] = timed("word_presence",
                                             lambda: word_presence_scores(a, layer, vocab, n_train, settings))
            report[which][layer] = row
        if "word_presence" in analyses:
            report["word_vocabulary"] = vocab
        if "attention" in analyses and a.attention is None:
            report["attention_words"] = {"not_applicable": "the speech encoder has no attention pooling "
                                                           "(e.g. DAVEnet/ResDAVEnet mean-pool their frames)"}
        elif "attention" in analyses:
            clock = time.perf_counter()
            report.setdefault("attention_words", {})[which] = attention_scores(a)
            timing["attention"] += time.perf_counter() - clock
        report["seconds"][which] = {k: round(v, 2) for k, v in timing.items()}
    return report


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


def analyze_workdir(workdir: str, *, checkpoint: str | int = "best", split: str = "validation",
                    max_utterances: int = 200, settings: SuiteSettings = SuiteSettings(),
                    output_dir: str | None = None, analyses=None,
                    map_settings: map_analyses.MapSettings = map_analyses.MapSettings()) -> dict:
    """Runs the selected analyses on the first `max_utterances` captions of `split` (layer analyses
    from cached or extracted activations), writes report.json and one PNG per analysis; returns the report.

    `analyses`: None runs every analysis the corpus has the fields for (`data_fields`; the others
    go to the report's "not_applicable"); names asked for explicitly that the corpus cannot feed
    raise `data_fields.MissingFieldsError` before anything is extracted.
    Files go to `output_dir` (default `workdir/analysis`); the report adds "step", "split",
    "dataset", "checkpoint", "cache_reused", "analyses" (those run), "not_applicable" ({analysis:
    reason} for missing corpus fields), "gating" (when selected), "layer_analyses" (why the layer
    analyses were not applicable, if so), one entry per selected map analysis
    (`map_analyses.run_map_analyses`), "report_path" and "plots".
    """
    from vgs_jax.analysis import plots  # deferred: matplotlib is only needed here

    explicit = analyses is not None
    analyses = check_analyses(analyses if explicit else ANALYSES)
    models = activations_lib.load_models(workdir, checkpoint, require_frame_outputs=False)
    step, config, template, params = models
    first = input_pipeline.open_config_split(config.dataset, split)[0]
    analyses, missing = data_fields.split_by_fields(analyses, first)
    where = f"dataset {config.dataset.name!r} split {split!r}"
    if missing and explicit:
        raise data_fields.MissingFieldsError(data_fields.missing_fields_message(missing, first, where))
    output_dir = output_dir or os.path.join(workdir, "analysis")
    os.makedirs(output_dir, exist_ok=True)
    not_applicable = {name: data_fields.not_applicable_reason(lacks, where) for name, lacks in missing.items()}
    report = {"workdir": os.path.abspath(workdir), "checkpoint": str(checkpoint), "step": int(step),
              "split": split, "dataset": config.dataset.name, "cache_reused": {}, "analyses": analyses,
              "not_applicable": not_applicable,
              "settings": dataclasses.asdict(settings), "seconds": {}, "layers": [], "trained": {}, "random": {}}
    layer, meta, examples = [a for a in analyses if a in LAYER_ANALYSES], None, None
    if layer and template.speech_capabilities.frame_outputs:
        _, _, acts, report["cache_reused"] = activations_lib.load_or_extract(
            workdir, checkpoint=checkpoint, split=split, max_utterances=max_utterances, models=models)
        report.update({**run_suite(acts, settings, layer), "analyses": analyses})
        meta = acts["trained"].meta
    elif layer:
        report["layer_analyses"] = {"not_applicable": (
            f"{layer} need per-layer frame outputs, which this run's speech encoder "
            f"{config.model.speech_encoder!r} does not declare")}
    if meta is None and any(a in analyses for a in ("gating",) + map_analyses.MAP_ANALYSES):
        examples = map_analyses.load_examples(config, split, max_utterances)
        report["num_utterances"] = len(examples)
    if "gating" in analyses:
        clock = time.perf_counter()
        report["gating"] = gating.gating_for_models(
            models, meta or activations_lib.read_metadata(examples, len(examples)), split,
            fractions=settings.gating_fractions, context=settings.gating_context,
            max_trials=settings.max_gating_trials, seed=settings.seed)
        report["seconds"]["gating"] = round(time.perf_counter() - clock, 2)
    if any(a in analyses for a in map_analyses.MAP_ANALYSES):
        examples = examples or map_analyses.load_examples(config, split, max_utterances)
        fns = map_analyses.model_fns(template, params["trained"], config, map_settings)
        report.update(map_analyses.run_map_analyses(fns, config, examples, analyses, output_dir, map_settings))
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
