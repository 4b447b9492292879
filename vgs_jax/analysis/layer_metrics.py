"""Per-layer metric adapters of the analysis suite: activations in, metric rows out.

Each function turns one layer of `activations.Activations` (frame times, alignments in ``meta``) into
the inputs of a metric module and returns its scores; `suite.run_suite` calls them per layer, with the
sizes of `suite.SuiteSettings`:

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
  normalised phone edit distance, over the first ``max_rsa_utterances`` utterances (computed by
  `suite.run_suite` straight from `rsa`, which needs no adapter).
* ``boundaries``: phone boundaries as peaks of a frame signal (`boundaries.METHODS`, chosen by
  ``boundary_method``): the cosine distance between consecutive frames, placed midway between
  them (default), or the L2 norm of each frame, placed at its centre (after Harwath & Glass
  2019); the peak threshold (a quantile of the signal) is tuned for R-value on the first half of
  the utterances and scored on the second half (one-to-one matching, ``tolerance`` seconds).
  References are the internal phone boundaries of each utterance. Each row records its "method".
* ``word_presence``: per word type of the vocabulary (content words with >= ``word_min_count``
  occurrences; `attention_words.FUNCTION_WORDS`, or the function words and particles of the word classes
  given, excluded), a binary presence probe from the
  mean-pooled layer (`word_presence`); macro and per-word accuracy/F1 vs the majority baseline.

* ``attention``: the pooling's frame attention summed per word and averaged per word class, vs
  the share duration alone predicts (`attention_words`); None when the activations carry no attention.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vgs_jax.analysis import abx
from vgs_jax.analysis import activations as activations_lib
from vgs_jax.analysis import attention_words
from vgs_jax.analysis import boundaries
from vgs_jax.analysis import probes
from vgs_jax.analysis import word_presence

if TYPE_CHECKING:  # annotations only: suite imports this module
    from vgs_jax.analysis import suite


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
                settings: suite.SuiteSettings) -> dict:
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


def global_probe(acts, layer: str, n_train: int, settings: suite.SuiteSettings) -> dict:
    """Phoneme-presence probe on mean-pooled `layer` (see `probes.presence_probe`)."""
    targets, _ = probes.presence_labels([[p for p, _, _ in m["phones"]] for m in acts.meta])
    x = acts.mean_pooled(layer)
    return probes.presence_probe(x[:n_train], targets[:n_train], x[n_train:], targets[n_train:],
                                 c=settings.probe_c, max_iter=settings.probe_max_iter, seed=settings.seed)


def abx_items(acts, settings: suite.SuiteSettings) -> list[tuple[int, slice, str, tuple, int]]:
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


def abx_scores(acts, layer: str, items, settings: suite.SuiteSettings) -> dict[str, float | None]:
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


def boundary_scores(acts, layer: str, settings: suite.SuiteSettings) -> dict:
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


def word_presence_scores(acts, layer: str, vocab: list[str], n_train: int,
                         settings: suite.SuiteSettings) -> dict | None:
    """Word-presence probe of mean-pooled `layer` (None if the vocabulary is empty)."""
    if not vocab:
        return None
    y = word_presence.presence_targets([[w for w, _, _ in m["words"]] for m in acts.meta], vocab)
    x = acts.mean_pooled(layer)
    return word_presence.word_presence_probe(x[:n_train], y[:n_train], x[n_train:], y[n_train:], vocab,
                                             c=settings.probe_c, max_iter=settings.probe_max_iter,
                                             seed=settings.seed)


def attention_scores(acts, classes: dict[str, str] | None = None) -> dict | None:
    """`attention_words.attention_by_class` of the pooling attention (None if not extracted); `classes`:
    word -> class, default the English spoken_shapes grammar's (`attention_words.word_classes`)."""
    if acts.attention is None:
        return None
    classes = attention_words.word_classes() if classes is None else classes
    return attention_words.attention_by_class(
        acts.attention, [acts.frame_times(i) for i in range(len(acts.meta))], [m["words"] for m in acts.meta],
        lambda w: attention_words.classify(w, classes))
