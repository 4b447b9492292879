"""Retrieval ceilings for datasets whose captions fit several images (spoken_shapes 2.0).

Such a dataset stores per caption `consistent_image_ids`: every image of the split the caption
is true of (its own image included). Two numbers follow, both speech -> image:

* oracle R@K: the expected R@K of a listener that understands the caption perfectly and ranks
  the s consistent images first in random order: its own image is at a uniform rank in 1..s,
  so the caption scores min(K, s) / s; averaged over captions.
* consistent R@1 of a model: the fraction of captions whose top-ranked image (highest score,
  lowest index on ties, as in `retrieval`) is any consistent image.

R@1 against the oracle's R@1 is the headline: a model cannot beat the ceiling on R@N.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

FIELD = "consistent_image_ids"
_PRECISION = jax.lax.Precision.HIGHEST


def consistent_rows(consistent_ids: Sequence[np.ndarray], caption_image: np.ndarray,
                    image_ids: np.ndarray) -> list[np.ndarray]:
    """Rows of the image list [M] consistent with each caption [N] (own image always included).

    consistent_ids: per caption, image ids; ids not among `image_ids` are ignored.
    caption_image: int [N], the row of each caption's own image; image_ids: int [M].
    """
    row_of = {int(i): r for r, i in enumerate(np.asarray(image_ids))}
    out = []
    for ids, own in zip(consistent_ids, np.asarray(caption_image)):
        rows = {row_of[int(i)] for i in np.asarray(ids).reshape(-1) if int(i) in row_of}
        rows.add(int(own))
        out.append(np.array(sorted(rows), np.int64))
    return out


def oracle_recall(rows: Sequence[np.ndarray], ks: Sequence[int] = (1, 5, 10)) -> dict:
    """{"r{k}": expected R@k of the oracle} from each caption's consistent rows."""
    sizes = np.array([len(r) for r in rows], np.float64)
    if sizes.size == 0 or np.any(sizes < 1):
        raise ValueError("oracle_recall needs at least one caption, each with >= 1 consistent "
                         "image (its own).")
    return {f"r{k}": float(np.mean(np.minimum(k, sizes) / sizes)) for k in ks}


@jax.jit
def _top1_chunk(queries, keys):
    scores = jnp.matmul(queries, keys.T, precision=_PRECISION)
    return jnp.argmax(scores, axis=1)  # First maximum: the lowest index on ties.


def top_images(z_speech=None, z_image=None, *, scores=None, chunk_size: int = 1024) -> np.ndarray:
    """int64 [N]: the top-ranked image row of each caption, from embeddings (dot product, as in
    `retrieval`) or from a float [N, M] score matrix."""
    if scores is not None:
        return np.argmax(np.asarray(scores, np.float32), axis=1).astype(np.int64)
    zs, zi = jnp.asarray(z_speech, jnp.float32), jnp.asarray(z_image, jnp.float32)
    out = [np.asarray(_top1_chunk(zs[i:i + chunk_size], zi))
           for i in range(0, zs.shape[0], chunk_size)]
    return np.concatenate(out).astype(np.int64)


def consistent_recall_at_1(top: np.ndarray, rows: Sequence[np.ndarray]) -> float:
    """Fraction of captions whose top image row is one of their consistent rows."""
    if len(top) != len(rows):
        raise ValueError(f"top has {len(top)} captions but rows has {len(rows)}.")
    return float(np.mean([t in r for t, r in zip(np.asarray(top), rows)]))


def ceiling_metrics(consistent_ids, caption_image, image_ids, top, ks=(1, 5, 10)) -> dict:
    """{"oracle_r1", "oracle_r5", "oracle_r10", "consistent_r1", "n"}; see the module doc."""
    rows = consistent_rows(consistent_ids, caption_image, image_ids)
    out = {f"oracle_{k}": v for k, v in oracle_recall(rows, ks).items()}
    out["consistent_r1"] = consistent_recall_at_1(top, rows)
    out["n"] = float(len(rows))
    return out


def read_consistent(source) -> dict[int, np.ndarray] | None:
    """{caption_id: int64 [n] consistent image ids} of a split, or None if it has no FIELD.

    For TFDS data sources only the non-image features are decoded.
    """
    info = getattr(source, "dataset_info", None)
    raw = getattr(source, "data_source", None)
    if info is not None and raw is not None and hasattr(raw, "__getitems__"):
        import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

        features = info.features
        if FIELD not in features:
            return None
        skip = {k: tfds.decode.SkipDecoding() for k, f in features.items()
                if isinstance(f, tfds.features.Image)}
        out = {}
        for start in range(0, len(source), 1024):
            keys = list(range(start, min(start + 1024, len(source))))
            for rec in raw.__getitems__(keys):
                ex = features.deserialize_example_np(rec, decoders=skip)
                out[int(ex["caption_id"])] = np.asarray(ex[FIELD], np.int64)
        return out
    if len(source) == 0 or FIELD not in source[0]:
        return None
    return {int(source[i]["caption_id"]): np.asarray(source[i][FIELD], np.int64)
            for i in range(len(source))}


def format_ceiling(results: dict) -> str:
    """Two lines: the model's R@K beside the oracle's, and consistent R@1."""
    model, ceil = results["speech_to_image"], results["ceiling"]
    ks = sorted(int(k[len("oracle_r"):]) for k in ceil if k.startswith("oracle_r"))
    pairs = "  ".join(f"R@{k} {100 * model[f'r{k}']:.1f} / {100 * ceil[f'oracle_r{k}']:.1f}"
                      for k in ks if f"r{k}" in model)
    return (f"speech_to_image model / oracle ceiling (%): {pairs}\n"
            f"consistent-image R@1 (top image is any image the caption describes): "
            f"{100 * ceil['consistent_r1']:.1f}% (oracle 100.0)")
