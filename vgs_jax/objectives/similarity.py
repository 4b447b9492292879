"""Caption x image similarity matrices from the dual encoder's outputs (`model.similarity`).

Also the one `l2_normalize` of the package (the towers' unit-norm embeddings, the losses'
re-normalisation). Rows are captions, columns images, as in `vgs_jax.objectives.losses` and
`vgs_jax.retrieval`:

* ``cosine``: dot product of the L2-normalised pooled embeddings (platalea, speech2image, RHN,
  Transformer).
* ``SISA``: mean of the matchmap over all valid (cell, frame) pairs = dot product of the
  UNnormalised masked-mean image vector and masked-mean audio vector. This is also ResDAVEnet-VQ's
  "pooled dot product" (anchor §3.5), so ``pooled_dot`` is accepted as its name.
* ``MISA`` / ``SIMA``: matchmap reductions (DAVEnet, anchor §2.4), computed by
  `vgs_jax.objectives.matchmap.matchmap_scores` with padding masks.
* ``fragment``: the fragment-alignment score of Harwath & Glass (2015), survey eq. (3): per image
  cell the best non-negative product with an audio frame, summed over cells (matchmap ``FRAGMENT``).

Speech/image outputs are the dicts of `DualEncoder.encode_speech` / `encode_image`: "embedding"
[B, E] (unit norm) always; "map" [B, T, E] / [B, H, W, E] with "map_mask" for frame-map towers.
"""
import jax
import jax.numpy as jnp

from vgs_jax.objectives import matchmap

SIMILARITIES = ("cosine", "SISA", "MISA", "SIMA", "pooled_dot", "fragment")
MATCHMAP_SIMILARITIES = ("SISA", "MISA", "SIMA", "pooled_dot", "fragment")


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows of x [..., E] scaled to unit L2 norm, as float32 (float64 stays float64).

    A row whose norm is below `eps` is scaled by 1 / eps instead, so an all-zero row stays zero
    with finite gradients. The towers use the default; the losses re-normalise with
    `pairs.NORM_EPS` (1e-8).
    """
    x = jnp.asarray(x, jnp.promote_types(jnp.asarray(x).dtype, jnp.float32))
    sq = jnp.sum(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


def check_similarity(name: str, *, speech_has_map: bool, image_has_map: bool) -> None:
    """Raises ValueError if `name` is unknown or needs frame maps a tower does not produce."""
    if name not in SIMILARITIES:
        raise ValueError(f"unknown config.model.similarity {name!r}; choose one of {SIMILARITIES}.")
    if name in MATCHMAP_SIMILARITIES and not (speech_has_map and image_has_map):
        raise ValueError(
            f"config.model.similarity={name!r} needs frame maps from both towers, but the speech encoder "
            f"{'does' if speech_has_map else 'does not'} and the image encoder "
            f"{'does' if image_has_map else 'does not'} produce one; use similarity='cosine', or a "
            "map encoder (speech: davenet, resdavenet; image: conv_map, vgg16, resnet50).")


def similarity_matrix(speech: dict, image: dict, name: str, *, chunk_size: int | None = None) -> jax.Array:
    """float32 [Ba, Bi] scores of every caption against every image (module docstring).

    Args:
      speech: dict with "embedding" [Ba, E] and, for matchmap similarities, "map" [Ba, T, E] and
        "map_mask" [Ba, T] bool.
      image: dict with "embedding" [Bi, E] and, for matchmap similarities, "map" [Bi, H, W, E] and
        "map_mask" [Bi, H, W] bool.
      name: one of SIMILARITIES.
      chunk_size: matchmap pairs per block (None: all at once); see `matchmap.matchmap_scores`.
    """
    if name == "cosine":
        return jnp.matmul(speech["embedding"], image["embedding"].T, precision=jax.lax.Precision.HIGHEST)
    if name not in MATCHMAP_SIMILARITIES:
        raise ValueError(f"unknown similarity {name!r}; choose one of {SIMILARITIES}.")
    for side, out in (("speech", speech), ("image", image)):
        if "map" not in out:
            raise ValueError(f"similarity {name!r} needs the {side} tower's frame map; its outputs have none.")
    simtype = {"pooled_dot": "SISA", "fragment": "FRAGMENT"}.get(name, name)
    return matchmap.matchmap_scores(image["map"], image["map_mask"], speech["map"], speech["map_mask"],
                                    simtype=simtype, chunk_size=chunk_size,
                                    precision=jax.lax.Precision.HIGHEST)
