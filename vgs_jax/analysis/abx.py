"""ABX phone discriminability with DTW over frame-wise distances (sota-and-metrics.md D.1).

Conventions (following zerospeech/libri-light-abx as summarised in D.1):

* Frame distance: ``"angular"`` (default; libri-light's ``cosine`` mode) is
  ``arccos(<a, b>) / pi`` on L2-normalised frames, in [0, 1]. ``"cosine"`` is
  ``1 - <a, b>`` on L2-normalised frames, ``"euclidean"`` the L2 distance.
* DTW uses the steps (i-1, j), (i-1, j-1), (i, j-1); the accumulated cost at the
  last cell is divided by the length (number of cells) of the backtracked path.
  Backtracking starts at the last cell and, while both indices are positive,
  moves to the cheapest predecessor, preferring diagonal, then (i, j-1), then
  (i-1, j) on ties; once one index reaches 0 the remaining cells run straight
  along that edge.
* A trial (A, B, X): A and X share the central phone (and context), B differs.
  It is an error if d(A, X) > d(B, X) and half an error on a tie. The score is
  the error rate in [0, 1] (multiply by 100 for the usual percent).
* Within-speaker: A, B, X from one speaker (X != A). Across-speaker: A and B
  from speaker s, X from another speaker; at most ``max_x_across`` X-speakers are
  sampled per (context, phone_A, phone_B, s).
* Aggregation: mean within each group (context, phone_A, phone_B, speaker
  [, speaker_X]); then mean over contexts (and X-speakers, jointly) for each
  (phone pair, speaker); then over speakers; then over ordered phone pairs.
* Each (context, phone, speaker) cell is first subsampled to at most
  ``max_size_group`` items (default 10, seed 3459, the libri-light defaults).

Comparing with the reference package (not a test: it does not install here). On PyPI,
``zerospeech-libriabx`` 1.0.5 (module ``libriabx``, CLI ``libri-abx``) is the libri-light ABX; its
cp311 wheel downloads but needs ``torch`` and ``torchaudio``, and its Cython DTW
(``libri_light_dtw``) is built against NumPy 1.x: imported under our NumPy 2.4 it fails with
``ValueError: numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C
header, got 88 from PyObject``. ``zerospeech-libriabx2`` 0.9.8 is an sdist that also needs torch,
torchaudio and pandas. ``pip download zerospeech-benchmarks`` fails with ``ERROR: Distributions
from PyPI cannot declare direct URL dependencies. zerospeech-benchmarks depends on
vocolab-extensions @ git+https://github.com/zerospeech/vocolab-ext.git``; ``libri-light-abx`` is
not on PyPI (``No matching distribution found``); ``abx`` 0.1.0 on PyPI is an unrelated
ArchiveBox package. To compare on the same features, in a separate environment::

    python -m venv /tmp/abxenv
    /tmp/abxenv/bin/pip install "numpy<2" torch torchaudio zerospeech-libriabx
    # features: np.save(f"feats/{i}.npy", frames_i)  ([T_i, D] float32, one file per utterance)
    # items.item: a header line, then "i onset offset phone prev next speaker" per token, with
    #   onset/offset shifted so frame j is centred at (j + 0.5) * step (subtract frame_start - step / 2)
    /tmp/abxenv/bin/libri-abx feats items.item --file_extension .npy --feature_size STEP
        --distance_mode cosine --mode all --max_size_group 10 --max_x_across 5    # one command line

(it runs on CPU without ``--cuda``; version 1.0.5 accepts ``--out`` but writes nothing: it prints
``ABX within : x`` / ``ABX across : x``, and ``libriabx.libri_light.eval_ABX.main(argv)`` returns
them as a dict, mean group confusions, i.e. error rates in [0, 1]) and compare with
``abx_error(items, mode=..., metric="angular")`` on the same tokens (cut with
`frames_for_interval(onset, offset, STEP)` on the same shifted times). Both follow the D.1
conventions, so they should agree up to float32 DTW rounding when no cell is subsampled
(``max_size_group`` >= the largest (context, phone, speaker) cell and at most ``max_x_across``
X-speakers per pair); with subsampling the two draw different samples (torch vs NumPy RNG).
This comparison has not been run on our machines (no torch there).
"""

import itertools
import math
from collections import defaultdict
from typing import Hashable, NamedTuple, Sequence

import numpy as np

METRICS = ("angular", "cosine", "euclidean")
MODES = ("within", "across")


class AbxItem(NamedTuple):
    """One phone token: frames ``[T, D]`` and its phone, context and speaker labels."""

    features: np.ndarray
    phone: Hashable
    context: Hashable
    speaker: Hashable


def frames_for_interval(onset: float, offset: float, feature_size: float = 0.01) -> slice:
    """Frames of a phone spanning ``[onset, offset]`` seconds, libri-light style (D.1).

    First frame ``ceil(onset / feature_size - 0.5)``, last (inclusive)
    ``floor(offset / feature_size - 0.5)``; ``feature_size`` is the frame step in
    seconds (0.01 for 10 ms features, 0.02 for wav2vec2/HuBERT). Returns a slice.
    """
    if feature_size <= 0:
        raise ValueError(f"feature_size must be a positive frame step in seconds, got {feature_size}")
    if offset < onset:
        raise ValueError(f"interval offset {offset} is before onset {onset}; swap them")
    first = math.ceil(onset / feature_size - 0.5)
    last = math.floor(offset / feature_size - 0.5)
    if last < first:
        raise ValueError(
            f"interval [{onset}, {offset}] s covers no frame centre at step {feature_size} s; "
            "drop this item or use a smaller feature_size")
    return slice(max(first, 0), last + 1)


def _check_frames(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty [frames, dim] array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf; clean the features first")
    return x


def _normalise(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name} has an all-zero frame, for which the angle is undefined; "
                         "drop padding frames or use metric='euclidean'")
    return x / norms


def frame_distances(a, b, metric: str = "angular") -> np.ndarray:
    """Frame-wise distance matrix ``[Ta, Tb]`` (float64) between ``a [Ta, D]`` and ``b [Tb, D]``."""
    a = _check_frames(a, "a")
    b = _check_frames(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dims differ: a has {a.shape[1]}, b has {b.shape[1]}")
    if metric == "euclidean":
        diff = a[:, None, :] - b[None, :, :]
        return np.sqrt(np.sum(diff * diff, axis=-1))
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    dots = np.clip(_normalise(a, "a") @ _normalise(b, "b").T, -1.0, 1.0)
    if metric == "angular":
        return np.arccos(dots) / np.pi
    return 1.0 - dots


def dtw_from_distances(dist) -> float:
    """Path-length-normalised DTW cost of a frame distance matrix ``[Ta, Tb]`` (see module doc)."""
    dist = np.asarray(dist, dtype=np.float64)
    if dist.ndim != 2 or 0 in dist.shape:
        raise ValueError(f"dist must be a non-empty [Ta, Tb] matrix, got shape {dist.shape}")
    ta, tb = dist.shape
    # acc[i + 1, j + 1] is the cost of cell (i, j); the inf border encodes the edges.
    acc = np.full((ta + 1, tb + 1), np.inf)
    acc[0, 0] = 0.0
    for k in range(ta + tb - 1):  # anti-diagonals i + j = k depend only on k-1 and k-2
        i = np.arange(max(0, k - tb + 1), min(k, ta - 1) + 1)
        j = k - i
        best = np.minimum(np.minimum(acc[i, j + 1], acc[i, j]), acc[i + 1, j])
        acc[i + 1, j + 1] = dist[i, j] + best
    cost = acc[1:, 1:]
    i, j, length = ta - 1, tb - 1, 1
    while i > 0 and j > 0:
        diag, left, up = cost[i - 1, j - 1], cost[i, j - 1], cost[i - 1, j]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        length += 1
    length += i + j  # straight run along the first row or column
    return float(cost[ta - 1, tb - 1] / length)


def dtw_distance(a, b, metric: str = "angular") -> float:
    """DTW distance between frame sequences ``a [Ta, D]`` and ``b [Tb, D]`` (D.1 conventions)."""
    return dtw_from_distances(frame_distances(a, b, metric))


def _coerce_items(items) -> list[AbxItem]:
    out = []
    for n, item in enumerate(items):
        if not isinstance(item, AbxItem):
            if len(item) != 4:
                raise ValueError(f"item {n} must be (features, phone, context, speaker), got {len(item)} fields")
            item = AbxItem(*item)
        out.append(item._replace(features=_check_frames(item.features, f"item {n} features")))
    if not out:
        raise ValueError("items is empty; pass at least two phone categories in one context")
    dims = {it.features.shape[1] for it in out}
    if len(dims) != 1:
        raise ValueError(f"items have different feature dims {sorted(dims)}; use one layer's features")
    return out


def _triplet_error(d_ax: np.ndarray, d_bx: np.ndarray) -> np.ndarray:
    return (d_ax > d_bx) + 0.5 * (d_ax == d_bx)


def abx_group_errors(items: Sequence, *, mode: str = "within", metric: str = "angular",
                     max_size_group: int | None = 10, max_x_across: int | None = 5,
                     seed: int = 3459) -> dict[tuple, float]:
    """Mean ABX error per group.

    Args:
      items: ``AbxItem``s or ``(features [T, D], phone, context, speaker)`` tuples.
      mode: ``"within"`` or ``"across"`` speaker.
    Returns:
      ``{(context, phone_A, phone_B, speaker): error}`` (within) or
      ``{(context, phone_A, phone_B, speaker, speaker_X): error}`` (across), error in [0, 1].
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    for name, cap in (("max_size_group", max_size_group), ("max_x_across", max_x_across)):
        if cap is not None and cap < 1:
            raise ValueError(f"{name} must be >= 1 or None (no cap), got {cap}")
    items = _coerce_items(items)
    rng = np.random.default_rng(seed)
    cells = defaultdict(list)  # (context, phone, speaker) -> item indices
    for n, item in enumerate(items):
        cells[(item.context, item.phone, item.speaker)].append(n)
    for key in sorted(cells, key=repr):
        if max_size_group is not None and len(cells[key]) > max_size_group:
            cells[key] = sorted(rng.choice(cells[key], max_size_group, replace=False).tolist())
    by_context = defaultdict(lambda: defaultdict(set))  # context -> phone -> speakers
    for context, phone, speaker in cells:
        by_context[context][phone].add(speaker)

    cache: dict[tuple[int, int], float] = {}

    def dist(p: int, q: int) -> float:
        key = (min(p, q), max(p, q))
        if key not in cache:
            cache[key] = dtw_distance(items[key[0]].features, items[key[1]].features, metric)
        return cache[key]

    def matrix(rows, cols) -> np.ndarray:
        return np.array([[dist(r, c) for c in cols] for r in rows])

    out = {}
    for context in sorted(by_context, key=repr):
        phones = by_context[context]
        for pa, pb in itertools.permutations(sorted(phones, key=repr), 2):
            for s in sorted(phones[pa] & phones[pb], key=repr):
                a_idx, b_idx = cells[(context, pa, s)], cells[(context, pb, s)]
                if mode == "within":
                    if len(a_idx) < 2:
                        continue  # X must be a different token than A
                    d_ax = matrix(a_idx, a_idx)  # [A, X]
                    d_bx = matrix(b_idx, a_idx)  # [B, X]
                    err = _triplet_error(d_ax[:, None, :], d_bx[None, :, :])  # [A, B, X]
                    keep = ~np.eye(len(a_idx), dtype=bool)[:, None, :]
                    out[(context, pa, pb, s)] = float(err[np.broadcast_to(keep, err.shape)].mean())
                    continue
                x_speakers = sorted(phones[pa] - {s}, key=repr)
                if max_x_across is not None and len(x_speakers) > max_x_across:
                    pick = rng.choice(len(x_speakers), max_x_across, replace=False)
                    x_speakers = [x_speakers[k] for k in sorted(pick)]
                for sx in x_speakers:
                    x_idx = cells[(context, pa, sx)]
                    err = _triplet_error(matrix(a_idx, x_idx)[:, None, :], matrix(b_idx, x_idx)[None, :, :])
                    out[(context, pa, pb, s, sx)] = float(err.mean())
    return out


def aggregate_group_errors(groups: dict[tuple, float]) -> float:
    """D.1 average of ``abx_group_errors`` output: contexts (and X-speakers), then speakers, then phone pairs."""
    if not groups:
        raise ValueError("no ABX groups: every context needs two phones from one speaker "
                         "(and, within-speaker, two tokens of phone A)")
    per_speaker = defaultdict(list)  # (phone_A, phone_B, speaker) -> values over contexts [, X-speakers]
    for key, value in groups.items():
        per_speaker[(key[1], key[2], key[3])].append(value)
    per_pair = defaultdict(list)
    for (pa, pb, _), values in per_speaker.items():
        per_pair[(pa, pb)].append(np.mean(values))
    return float(np.mean([np.mean(v) for v in per_pair.values()]))


def abx_error(items: Sequence, *, mode: str = "within", metric: str = "angular",
              max_size_group: int | None = 10, max_x_across: int | None = 5, seed: int = 3459) -> float:
    """ABX error rate in [0, 1] (x100 for percent) of ``items``; see ``abx_group_errors``."""
    groups = abx_group_errors(items, mode=mode, metric=metric, max_size_group=max_size_group,
                              max_x_across=max_x_across, seed=seed)
    return aggregate_group_errors(groups)
