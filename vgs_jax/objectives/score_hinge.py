"""Harwath & Glass (2015)'s loss, survey eq. (2), on any caption x image score matrix.

For every matching pair (u, i) (the diagonal of `sim`):
    sum_{u' != u} max(0, S[u', i] - S[u, i] + margin) + sum_{i' != i} max(0, S[u, i'] - S[u, i] + margin),
negatives from the batch; summed over valid pairs and divided by their number (eq. (2) sums; the
mean only rescales it). On the cosine matrix it is `losses.platalea_hinge_loss` times B
(platalea divides the same sum by B**2).
"""
import jax
import jax.numpy as jnp

from vgs_jax.objectives.pairs import check_scalar
from vgs_jax.objectives.pairs import count
from vgs_jax.objectives.pairs import pair_masks


def all_negatives_hinge_loss(sim, *, margin=1.0, image_ids=None, mask=None) -> jax.Array:
    """Eq. (2) over every negative of the batch.

    Args:
      sim: float [B, B] scores, rows captions, columns images, matches on the diagonal.
      margin: hinge margin (alpha = 1 in Harwath & Glass 2015).
      image_ids: optional int [B]; pairs of one image are not negatives (`pairs.pair_masks`).
      mask: optional bool [B]; False rows/columns are padding (neither anchors nor negatives).
    Returns:
      float32 scalar.
    """
    if jnp.ndim(sim) != 2 or jnp.shape(sim)[0] != jnp.shape(sim)[1]:
        raise ValueError(f"sim must be a square [batch, batch] score matrix; got shape {jnp.shape(sim)}.")
    check_scalar("margin", margin)
    valid, neg = pair_masks(jnp.shape(sim)[0], image_ids, mask)
    sim = jnp.asarray(sim, jnp.float32)
    diag = jnp.diagonal(sim)
    cost = jnp.where(neg, jax.nn.relu(margin + sim - diag[None, :]) + jax.nn.relu(margin + sim - diag[:, None]), 0.0)
    return jnp.sum(cost) / count(valid)
