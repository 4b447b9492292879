"""VQ unit analysis (ResDAVEnet-VQ, anchor-implementations.md 3.7; sota-and-metrics.md D.5).

Inputs are per-utterance arrays: frame codes ``int [T_i]`` of one quantiser and time-aligned
transcripts ``(label, start_s, end_s)``. Code frame i of a map downsampled r times from 10 ms
features covers input frames [r i, r i + r), i.e. seconds ``[i, i + 1) * frame_shift +
frame_offset`` with ``frame_shift = r * 0.01`` (quant2: r = 2, quant3: r = 4, the 16x map: 0.16 s);
its centre is ``(i + 0.5) * frame_shift + frame_offset``.

* Code-phone **purity** (each code predicts its most frequent phone; the fraction of frames it
  gets right), the inverse **phone purity**, and **NMI** (mutual information over the arithmetic
  mean of the two entropies, as scikit-learn's default). Frames whose centre no phone covers are
  left out.
* Code-word **detection F1** as ResDAVEnet-VQ's ``steps/unit_analysis.py``: precision(code, word)
  = fraction of the code's frames whose window ``[centre - halfwidth, centre + halfwidth]``
  (0.04 s) meets an occurrence ``[s, e]`` of the word (``s < centre + hw`` and ``e >= centre - hw``,
  the reference's test); recall(word, code) = fraction of the word's occurrences in whose frame
  span ``[floor((s - off) / shift), ceil((e - off) / shift))`` the code occurs; F1 = 2PR/(P+R).
  Stop words (the reference's 18) are ignored. "Words detected" = word types whose best code
  reaches F1 >= 0.5; also the mean best F1 over the top-k (250) words.
* **Bitrate** as the ZeroSpeech 2019 challenge: ``N / D * H`` bits/s, N symbols over D seconds
  of audio, H the entropy (bits) of the symbol distribution. Symbols are (``mode``):
  ``"lossy_rle"`` (default: repeats merged, length discarded; the encoding the segment ABX of
  ResDAVEnet-VQ uses), ``"lossless_rle"`` ((code, run length) pairs) or ``"frames"`` (every frame).
"""

from collections import Counter, defaultdict
from typing import Callable, Hashable, Sequence

import numpy as np

from vgs_jax import audio_features
from vgs_jax import inference
from vgs_jax.analysis import probes

STOP_WORDS = frozenset({
    "a", "an", "the", "and", "of", "<spoken_noise>", "to", "on", "in", "at", "are", "is", "it",
    "he", "she", "you", "there", "this"})
BITRATE_MODES = ("lossy_rle", "lossless_rle", "frames")


def _labels(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {arr.shape}")
    return arr


def _contingency(clusters, labels) -> np.ndarray:
    clusters, labels = _labels(clusters, "clusters"), _labels(labels, "labels")
    if clusters.shape != labels.shape:
        raise ValueError(f"clusters {clusters.shape} and labels {labels.shape} must have one entry per item")
    if clusters.size == 0:
        raise ValueError("purity/NMI need at least one item; got empty arrays")
    _, ci = np.unique(clusters, return_inverse=True)
    _, li = np.unique(labels.astype(str) if labels.dtype == object else labels, return_inverse=True)
    table = np.zeros((ci.max() + 1, li.max() + 1), dtype=np.int64)
    np.add.at(table, (ci, li), 1)
    return table


def purity(clusters, labels) -> float:
    """Fraction of items whose label is the majority label of their cluster (``[n]`` each)."""
    table = _contingency(clusters, labels)
    return float(table.max(axis=1).sum() / table.sum())


def normalized_mutual_information(clusters, labels) -> float:
    """NMI = I(C; L) / mean(H(C), H(L)) in [0, 1]; 1.0 when both partitions are trivial."""
    table = _contingency(clusters, labels).astype(np.float64)
    p = table / table.sum()
    pc, pl = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    mi = float(np.sum(p[nz] * np.log(p[nz] / np.outer(pc, pl)[nz])))
    hc = float(-np.sum(pc * np.log(pc)))
    hl = float(-np.sum(pl * np.log(pl)))
    if hc == 0.0 and hl == 0.0:
        return 1.0
    return float(np.clip(mi / (0.5 * (hc + hl)), 0.0, 1.0))


def _check_frames(frame_shift: float, frame_offset: float) -> None:
    if not frame_shift > 0:
        raise ValueError(f"frame_shift must be > 0 seconds per code frame, got {frame_shift}")
    if frame_offset < 0:
        raise ValueError(f"frame_offset must be >= 0 seconds, got {frame_offset}")


def _codes(codes, i: int) -> np.ndarray:
    c = np.asarray(codes)
    if c.ndim != 1 or not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"codes[{i}] must be a 1-D integer array of frame codes, got {c.dtype} {c.shape}")
    return c


def _same_length(codes: Sequence, other: Sequence, name: str) -> None:
    if len(codes) != len(other):
        raise ValueError(f"got {len(codes)} code sequences but {len(other)} {name}; give one per utterance")


def code_phone_scores(codes: Sequence, phones: Sequence[Sequence[tuple]], *, frame_shift: float,
                      frame_offset: float = 0.0) -> dict:
    """Code-phone purity, phone purity and NMI over all labelled frames.

    Args:
      codes: per utterance int ``[T_i]`` frame codes.
      phones: per utterance ``(phone, start_s, end_s)`` intervals (non-overlapping).
      frame_shift / frame_offset: seconds per code frame / start of frame 0.
    Returns:
      {"purity", "phone_purity", "nmi", "num_frames", "num_codes_used", "num_phones"}.
    """
    _check_frames(frame_shift, frame_offset)
    _same_length(codes, phones, "phone alignments")
    all_codes, all_phones = [], []
    for i, (c, ph) in enumerate(zip(codes, phones)):
        c = _codes(c, i)
        shifted = [(lab, s - frame_offset, e - frame_offset) for lab, s, e in ph if e > s]
        labels = probes.frame_labels(shifted, c.shape[0], 1.0 / frame_shift)
        keep = np.array([lab is not None for lab in labels], dtype=bool)
        all_codes.append(c[keep])
        all_phones.extend(str(lab) for lab in labels[keep])
    flat = np.concatenate(all_codes) if all_codes else np.zeros(0, np.int64)
    if flat.size == 0:
        raise ValueError("no code frame lies inside a phone interval; check frame_shift/frame_offset "
                         "against the alignments (seconds)")
    labels = np.array(all_phones, dtype=object)
    return {"purity": purity(flat, labels), "phone_purity": purity(labels, flat),
            "nmi": normalized_mutual_information(flat, labels), "num_frames": int(flat.size),
            "num_codes_used": int(np.unique(flat).size), "num_phones": int(len(set(all_phones)))}


def code_word_f1(codes: Sequence, words: Sequence[Sequence[tuple]], *, frame_shift: float,
                 frame_offset: float = 0.0, halfwidth: float = 0.04,
                 stop_words: frozenset = STOP_WORDS, min_occ: int = 1, f1_threshold: float = 0.5,
                 top_k: int = 250) -> dict:
    """Per-word best code detector (precision, recall, F1) as ResDAVEnet-VQ's unit analysis.

    Args:
      codes: per utterance int ``[T_i]``; words: per utterance ``(word, start_s, end_s)``.
      halfwidth: half-width in seconds of the window around a code frame's centre.
      stop_words: lower-case words ignored; min_occ: a (code, word) pair must co-occur this often.
    Returns:
      {"words": {word: {"code", "f1", "precision", "recall", "occurrences"}}, "words_detected",
       "num_words", "top_k_mean_f1", "mean_f1"}.
    """
    _check_frames(frame_shift, frame_offset)
    _same_length(codes, words, "word alignments")
    if halfwidth < 0 or min_occ < 1 or top_k < 1:
        raise ValueError(f"need halfwidth >= 0, min_occ >= 1, top_k >= 1; got {halfwidth}, {min_occ}, {top_k}")
    code_frames = Counter()
    code_word_hits: dict = defaultdict(Counter)
    word_occ = Counter()
    word_code_hits: dict = defaultdict(Counter)
    for i, (c, ws) in enumerate(zip(codes, words)):
        c = _codes(c, i)
        ws = [(str(w).lower(), float(s), float(e)) for w, s, e in ws]
        centres = (np.arange(c.shape[0]) + 0.5) * frame_shift + frame_offset
        for code, centre in zip(c.tolist(), centres):
            lo, hi = centre - halfwidth, centre + halfwidth
            code_frames[code] += 1
            code_word_hits[code].update({w for w, s, e in ws if s < hi and e >= lo})
        for w, s, e in ws:
            if w in stop_words:
                continue
            a = max(int(np.floor((s - frame_offset) / frame_shift)), 0)
            b = min(int(np.ceil((e - frame_offset) / frame_shift)), c.shape[0])
            word_occ[w] += 1
            word_code_hits[w].update(set(c[a:b].tolist()))
    result = {}
    for w, occ in word_occ.items():
        best = None
        for code, hits in word_code_hits[w].items():
            if hits < min_occ:
                continue
            prec = code_word_hits[code][w] / code_frames[code]
            rec = hits / occ
            f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
            if best is None or f1 > best["f1"]:
                best = {"code": int(code), "f1": f1, "precision": prec, "recall": rec, "occurrences": occ}
        if best is not None:
            result[w] = best
    f1s = sorted((v["f1"] for v in result.values()), reverse=True)
    return {"words": result, "words_detected": int(sum(f >= f1_threshold for f in f1s)),
            "num_words": len(result), "top_k_mean_f1": float(np.mean(f1s[:top_k])) if f1s else 0.0,
            "mean_f1": float(np.mean(f1s)) if f1s else 0.0}


def _symbols(codes: np.ndarray, mode: str) -> list[Hashable]:
    if codes.size == 0:
        return []
    if mode == "frames":
        return codes.tolist()
    change = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [codes.size]]))
    if mode == "lossy_rle":
        return codes[starts].tolist()
    return list(zip(codes[starts].tolist(), lengths.tolist()))


def bitrate(codes: Sequence, durations: Sequence[float], mode: str = "lossy_rle") -> float:
    """ZeroSpeech 2019 bitrate in bits per second: ``N / sum(durations) * H(symbols)``.

    Args:
      codes: per utterance int ``[T_i]`` frame codes; durations: per utterance seconds (> 0).
      mode: one of BITRATE_MODES (see the module docstring).
    """
    if mode not in BITRATE_MODES:
        raise ValueError(f"unknown bitrate mode {mode!r}; choose one of {BITRATE_MODES}")
    _same_length(codes, durations, "durations")
    durations = np.asarray(durations, dtype=np.float64)
    if durations.size == 0 or np.any(~(durations > 0)):
        raise ValueError(f"durations must be positive seconds, one per utterance; got {durations}")
    counts = Counter()
    for i, c in enumerate(codes):
        counts.update(_symbols(_codes(c, i), mode))
    n = sum(counts.values())
    if n == 0:
        return 0.0
    p = np.array(list(counts.values()), dtype=np.float64) / n
    return float(n / durations.sum() * -np.sum(p * np.log2(p)))


def run_vq_units(codes_fn: Callable, examples: Sequence[dict], *, featurizer: audio_features.Featurizer,
                 frame_shift: float, frame_offset: float = 0.0, batch_size: int = 16) -> dict:
    """VQ unit report of one quantiser over dataset examples with alignments (e.g. spoken_shapes).

    Args:
      codes_fn: ``(features [B, T, F] float32, mask [B, T] bool) -> (codes [B, T'] int,
        mask [B, T'] bool)``, e.g. ``ResDavenet.encode``'s ``aux["quant3"]["codes"]`` and frame mask.
      examples: dicts with "audio" (int16 [n] at 16 kHz), "phones" and "words" (TFDS sequences).
      featurizer: ``waveform int16 [n] -> float32 [T, F]`` with its pad value (``audio_features.Featurizer``).
      frame_shift: seconds per code frame (0.01 x the quantiser's downsampling factor).
    Returns:
      {"phones": code_phone_scores, "words": code_word_f1, "bitrate": {mode: bits/s}}.
    """
    from vgs_jax.analysis import localization  # pylint: disable=import-outside-toplevel
    codes, phones, words, durations = [], [], [], []
    for batch in inference.feature_batches(examples, featurizer, batch_size):
        out_codes, out_mask = (np.asarray(x) for x in codes_fn(batch["features"], batch["mask"]))
        for r, ex in enumerate(batch["examples"]):
            codes.append(out_codes[r][out_mask[r].astype(bool)].astype(np.int64))
            phones.append(localization.intervals(ex["phones"], "phone", strip_stress=True))
            words.append(localization.intervals(ex["words"], "word"))
            durations.append(len(ex["audio"]) / 16000.0)
    return {"phones": code_phone_scores(codes, phones, frame_shift=frame_shift, frame_offset=frame_offset),
            "words": code_word_f1(codes, words, frame_shift=frame_shift, frame_offset=frame_offset),
            "bitrate": {m: bitrate(codes, durations, m) for m in BITRATE_MODES}}
