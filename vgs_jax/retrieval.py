"""Cross-modal retrieval metrics (R@K, median and mean rank), in one blocked pass.

Conventions (they change published numbers; see anchor-implementations.md
sections 1.9, 4.7 and 9 item 6, and sota-and-metrics.md A.0):

* Similarity is the dot product of the embeddings, computed in float32 at
  ``Precision.HIGHEST`` (no TF32/bf16 passes on accelerators).
  Embeddings are L2-normalised upstream, so this equals the cosine similarity
  (and ranks like platalea's cosine / Euclidean distance).
* speech -> image ("image retrieval"): each of the N captions ranks all M
  images; its rank is the rank of its one paired image ``caption_image[c]``.
* image -> speech ("caption retrieval"): each image ranks all N captions; its
  rank is the best (minimum) rank among its own captions, so R@K counts a hit
  when ANY of its captions is in the top K (Merkx et al., FaST-VGS,
  SpeechCLIP). Platalea's overlap fraction is not used. Every image must have
  at least one caption.
* Ranks are 1-based. Ties are broken deterministically as a stable descending
  sort by score, lower index first: the rank of candidate c for a query with
  scores s is ``1 + #{j : s[j] > s[c]} + #{j < c : s[j] == s[c]}``, i.e. the
  position of c in ``np.argsort(-s, kind="stable")`` plus one.
* ``r{K}`` is the fraction (0..1) of queries with rank <= K. ``medr`` is
  ``numpy.median`` of the ranks (mean of the two middle ranks for an even
  count: platalea's convention; Merkx et al.'s ``torch.median`` takes the lower
  one). ``meanr`` is the mean rank; ``n`` the number of queries.
* One pass, bounded memory: the captions are scored ``chunk_size`` at a time
  against all M images (a ``chunk_size x M`` block; the N x M matrix is never
  formed), in one jitted ``lax.scan``. Ranks are COUNTS of scores above the
  positive's (no sort): speech -> image from each block row; image -> speech
  by adding, block by block, each image's count of captions above its best
  own caption. That caption (highest score with its image, lowest index on
  ties) is chosen first from each caption's score with its own image, a row
  dot product, so the score matrix is computed once, not once per direction.
  Rounding: the row dot product and the block matmul sum in different orders,
  so a caption whose score differs from the best own caption's only in the
  last bit may count on either side; exact ties (e.g. duplicate embeddings)
  follow the rule above exactly.
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

DIRECTIONS = ("speech_to_image", "image_to_speech")
# Full float32 products: on GPUs the default may use TF32/bf16 passes, which would
# create spurious ties and reorder near-equal scores (different ranks than NumPy).
_PRECISION = jax.lax.Precision.HIGHEST


def _block_counts(zs, zi, ci, best, best_score, start, fresh, size):
    """Captions start .. start + size - 1 against all M images: s2i ranks [size], i2s counts [M].

    i2s counts: per image, the captions of this block ranked above its best own caption (index
    `best` [M], score `best_score` [M]). Rows before `fresh` belong to the previous block (the
    last block overlaps it, so all blocks have one static shape) and are not counted again.
    """
    queries = jax.lax.dynamic_slice_in_dim(zs, start, size)
    targets = jax.lax.dynamic_slice_in_dim(ci, start, size)
    scores = jnp.matmul(queries, zi.T, precision=_PRECISION)                     # [size, M]
    target_scores = jnp.take_along_axis(scores, targets[:, None], axis=1)
    column = jnp.arange(zi.shape[0], dtype=jnp.int32)[None, :]
    s2i_before = (scores > target_scores) | ((scores == target_scores) & (column < targets[:, None]))
    row = start + jnp.arange(size, dtype=jnp.int32)[:, None]
    i2s_before = ((row >= fresh) & (row != best[None, :])
                  & ((scores > best_score[None, :]) | ((scores == best_score[None, :]) & (row < best[None, :]))))
    return 1 + jnp.sum(s2i_before, axis=1, dtype=jnp.int32), jnp.sum(i2s_before, axis=0, dtype=jnp.int32)


@functools.partial(jax.jit, static_argnames=("chunk_size",))
def _ranks_jit(zs, zi, ci, *, chunk_size):
    """Both directions' 1-based ranks (int32 [N], [M]) in one pass over the score matrix."""
    n, m = zs.shape[0], zi.shape[0]
    blocks = -(-n // chunk_size)
    starts = lambda b: (jnp.minimum(b * chunk_size, n - chunk_size), b * chunk_size)

    def own_block(b, own):   # each caption's score with its own image, a row dot product
        start, _ = starts(b)
        rows = jax.lax.dynamic_slice_in_dim(zs, start, chunk_size)
        images = zi[jax.lax.dynamic_slice_in_dim(ci, start, chunk_size)]
        return jax.lax.dynamic_update_slice_in_dim(own, jnp.sum(rows * images, axis=1), start, 0)

    own = jax.lax.fori_loop(0, blocks, own_block, jnp.zeros((n,), jnp.float32))
    # Each image's best own caption: highest own score, lowest index on ties.
    order = jnp.lexsort((jnp.arange(n), -own, ci))
    best = order[jnp.searchsorted(ci[order], jnp.arange(m, dtype=ci.dtype), side="left")].astype(jnp.int32)
    best_score = own[best]

    def block(b, carry):
        s2i, above = carry
        start, fresh = starts(b)
        ranks, counts = _block_counts(zs, zi, ci, best, best_score, start, fresh, chunk_size)
        return jax.lax.dynamic_update_slice_in_dim(s2i, ranks, start, 0), above + counts

    s2i, above = jax.lax.fori_loop(0, blocks, block, (jnp.zeros((n,), jnp.int32), jnp.zeros((m,), jnp.int32)))
    return s2i, 1 + above


def _as_embeddings(x, name):
    """float32 jax array [num, E] on one device, checked for shape and finiteness."""
    if isinstance(x, jax.Array):
        if not x.is_fully_addressable:
            raise ValueError(f"{name} spans several processes; gather it first (e.g. "
                             "jax.experimental.multihost_utils.process_allgather).")
        if len(x.sharding.device_set) > 1:  # e.g. sharded on a ("data",) mesh
            # Through the host: jax.device_put(x, one_device) keeps an Explicit mesh
            # axis in the array's type (float32[N@data, E]) and later ops then fail.
            x = np.asarray(x)
    arr = x if isinstance(x, jax.Array) else np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D [num, embed_dim]; got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); nothing to rank.")
    arr = jnp.asarray(arr, jnp.float32)
    if not bool(jnp.all(jnp.isfinite(arr))):
        raise ValueError(f"{name} contains NaN or infinite values; check the encoder "
                         "outputs before evaluating.")
    return arr


def _validate(z_speech, z_image, caption_image, ks, chunk_size):
    zs = _as_embeddings(z_speech, "z_speech")
    zi = _as_embeddings(z_image, "z_image")
    n, m = zs.shape[0], zi.shape[0]
    if zs.shape[1] != zi.shape[1]:
        raise ValueError(f"z_speech has embed_dim {zs.shape[1]} but z_image has "
                         f"{zi.shape[1]}; both must come from the same dual encoder.")
    ci = np.asarray(caption_image)
    if ci.shape != (n,):
        raise ValueError(f"caption_image must have shape ({n},) (one image index per "
                         f"row of z_speech); got {ci.shape}.")
    if not np.issubdtype(ci.dtype, np.integer):
        raise ValueError(f"caption_image must hold integer image indices; got dtype "
                         f"{ci.dtype}.")
    if ci.min() < 0 or ci.max() >= m:
        bad = ci[(ci < 0) | (ci >= m)]
        raise ValueError(f"caption_image values must lie in [0, {m}) (rows of z_image); "
                         f"found {bad[:5].tolist()}.")
    counts = np.bincount(ci, minlength=m)
    if np.any(counts == 0):
        missing = np.flatnonzero(counts == 0)
        raise ValueError(f"images {missing[:10].tolist()} (of {missing.size}) have no "
                         "captions in caption_image; drop them from z_image.")
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1
                     for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive ints; got {ks}.")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) \
            or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int; got {chunk_size!r}.")
    return zs, zi, ci.astype(np.int32), ks


def _ranks(zs, zi, ci, chunk_size):
    """Both directions' ranks (numpy int32) from validated float32 jax embeddings and int32 ids."""
    s2i, i2s = _ranks_jit(zs, zi, jnp.asarray(ci), chunk_size=min(chunk_size, zs.shape[0]))
    return np.asarray(s2i), np.asarray(i2s)


def retrieval_ranks(z_speech, z_image, caption_image, *, chunk_size=1024):
    """1-based ranks in both directions (conventions in the module docstring).

    Args:
      z_speech: float [N, E] caption embeddings (numpy or jax).
      z_image: float [M, E] image embeddings.
      caption_image: int [N] in [0, M): the image of each caption.
      chunk_size: captions scored at once (memory ~ chunk_size * M floats).
    Returns:
      (speech_to_image int32 [N], image_to_speech int32 [M]) numpy rank arrays.
    """
    zs, zi, ci, _ = _validate(z_speech, z_image, caption_image, (1,), chunk_size)
    return _ranks(zs, zi, ci, chunk_size)


def summarize_ranks(ranks, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """{"r{k}" for k in ks, "medr", "meanr", "n"} as floats from 1-based int ranks [Q]."""
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.size == 0 or np.any(ranks < 1):
        raise ValueError(f"ranks must be a non-empty 1-D array of 1-based ranks; got "
                         f"shape {ranks.shape}.")
    out = {f"r{int(k)}": float(np.mean(ranks <= k)) for k in ks}
    out["medr"] = float(np.median(ranks))
    out["meanr"] = float(np.mean(ranks))
    out["n"] = float(ranks.size)
    return out


def retrieval_metrics(z_speech, z_image, caption_image, *, ks=(1, 5, 10),
                      chunk_size=1024) -> dict:
    """Recall@K, median and mean rank for speech->image and image->speech.

    Args:
      z_speech: float [N, E] caption embeddings (numpy or jax; L2-normalised).
      z_image: float [M, E] image embeddings (L2-normalised).
      caption_image: int [N] in [0, M): the image of each caption; every
        image needs at least one caption.
      ks: the K of the reported R@K.
      chunk_size: captions scored at once (memory ~ chunk_size * M floats).
    Returns:
      {"speech_to_image": {"r1", "r5", "r10", "medr", "meanr", "n"},
       "image_to_speech": {...}} with float values; r* are fractions in [0, 1].
    """
    zs, zi, ci, ks = _validate(z_speech, z_image, caption_image, ks, chunk_size)
    s2i, i2s = _ranks(zs, zi, ci, chunk_size)
    return {"speech_to_image": summarize_ranks(s2i, ks),
            "image_to_speech": summarize_ranks(i2s, ks)}


def retrieval_metrics_from_scores(scores, caption_image, *, ks=(1, 5, 10), chunk_size=1024) -> dict:
    """`retrieval_metrics` for models scored by a matrix rather than by embeddings (matchmaps).

    Args:
      scores: float [N, M], scores[c, i] = similarity of caption c and image i.
      caption_image, ks, chunk_size: as in `retrieval_metrics`.
    Returns:
      the same dict as `retrieval_metrics`. Exact: scores are used as caption "embeddings" against
      the identity as image "embeddings" (every product is one score times 1 plus zeros), so ranks
      and ties follow the same conventions.
    """
    scores = np.asarray(scores, np.float32)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D [captions, images] matrix; got shape {scores.shape}.")
    return retrieval_metrics(scores, np.eye(scores.shape[1], dtype=np.float32), caption_image, ks=ks,
                             chunk_size=chunk_size)


def format_table(metrics: dict) -> str:
    """A plain-text table: one row per direction; R@K in percent, medr, meanr, n."""
    rows = [d for d in DIRECTIONS if d in metrics]
    if not rows:
        raise ValueError(f"metrics has none of the directions {DIRECTIONS}; pass the "
                         "dict returned by retrieval_metrics.")
    recall_keys = sorted((key for key in metrics[rows[0]]
                          if key[:1] == "r" and key[1:].isdigit()), key=lambda key: int(key[1:]))
    header = ["direction"] + [f"R@{key[1:]}%" for key in recall_keys] + ["medr", "meanr", "n"]
    lines = []
    for d in rows:
        m = metrics[d]
        missing = [key for key in recall_keys + ["medr", "meanr", "n"] if key not in m]
        if missing:
            raise ValueError(f"metrics[{d!r}] lacks {missing}; pass the dict returned by "
                             "retrieval_metrics.")
        lines.append([d] + [f"{100 * m[key]:.1f}" for key in recall_keys]
                     + [f"{m['medr']:g}", f"{m['meanr']:.1f}", f"{int(m['n'])}"])
    widths = [max(len(r[c]) for r in [header] + lines) for c in range(len(header))]
    fmt = lambda r: "  ".join(x.ljust(w) if c == 0 else x.rjust(w)
                              for c, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(header)] + [fmt(r) for r in lines])
