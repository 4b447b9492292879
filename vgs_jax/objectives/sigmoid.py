"""SigLIP's pairwise sigmoid loss, on one device and chunked over a device ring.

Same conventions as `vgs_jax.objectives.losses` (rows = captions, masks, image ids), with the
pair/mask helpers of `vgs_jax.objectives.pairs`. `chunked_sigmoid_loss` keeps each device's
logits at n x n (sota-and-metrics.md C): a `jax.lax.ppermute` ring passes the image embeddings
around.
"""

import jax
import jax.numpy as jnp

from vgs_jax.objectives import ring
from vgs_jax.objectives.pairs import NORM_EPS
from vgs_jax.objectives.pairs import check_pair
from vgs_jax.objectives.pairs import check_scalar
from vgs_jax.objectives.pairs import count
from vgs_jax.objectives.pairs import pair_masks
from vgs_jax.objectives.similarity import l2_normalize


def _sigmoid_block(scores, pos, neg, temperature, bias):
    """Sum of -log sigmoid(label * (t * score + b)) over pos [n, m] | neg [n, m] (label +1 on pos)."""
    logits = temperature * scores + bias
    labels = jnp.where(pos, 1.0, -1.0)
    return jnp.sum(jnp.where(pos | neg, -jax.nn.log_sigmoid(labels * logits), 0.0))


def sigmoid_loss(z_speech, z_image, *, temperature, bias, image_ids=None,
                 mask=None) -> jax.Array:
    """SigLIP pairwise sigmoid loss (Zhai et al. 2023; sota-and-metrics.md C).

    logits = temperature * S + bias with S the cosine matrix (inputs are
    re-normalised). ``temperature`` MULTIPLIES (SigLIP's t = exp(t'); pass
    exp(log_t) when the model stores the log). Label +1 on the diagonal of
    valid rows, -1 on negative pairs; same-image off-diagonal pairs (with
    image_ids) and padding are EXCLUDED (neither positive nor negative).
    Loss = sum over included pairs of -log sigmoid(label * logit), divided by
    the number of valid anchors (SigLIP's sum over j, mean over i).

    Args:
      z_speech, z_image: float [B, E]; row i of each is a matching pair.
      temperature: scalar multiplier t > 0 (may be traced).
      bias: scalar bias b (may be traced; SigLIP init -10).
      image_ids: optional int [B]; same-image pairs are excluded.
      mask: optional bool [B]; False rows are padding.
    Returns:
      float32 scalar.
    """
    batch = check_pair(z_speech, z_image)
    check_scalar("temperature", temperature)
    check_scalar("bias", bias)
    valid, neg = pair_masks(batch, image_ids, mask)
    pos = jnp.eye(batch, dtype=bool) & valid[:, None]
    scores = l2_normalize(z_speech, NORM_EPS) @ l2_normalize(z_image, NORM_EPS).T
    total = _sigmoid_block(scores, pos, neg, temperature, bias)
    return total / count(valid)


def chunked_sigmoid_loss(z_speech, z_image, *, temperature, bias, mesh, axis="data",
                         image_ids=None, mask=None) -> jax.Array:
    """``sigmoid_loss`` computed blockwise with a ppermute ring (SigLIP Sec. 3.1).

    Under ``jax.shard_map`` over ``mesh[axis]`` (D devices), each device keeps its
    n = B / D rows of z_speech and starts with its own rows of z_image (ids,
    mask); D - 1 times ``jax.lax.ppermute`` passes the image block to the next
    device around the ring (`ring.ring_fold`, rematerialised in the backward pass). Each step
    adds one n x n block's loss, so peak logit memory per device is n x n, never n x B. Value and gradients equal
    ``sigmoid_loss`` (same conventions); differentiable w.r.t. the embeddings,
    temperature and bias.

    Args:
      z_speech, z_image: float [B, E], B divisible by the size of mesh axis `axis`.
      temperature, bias: scalars as in sigmoid_loss.
      mesh: a jax.sharding.Mesh holding `axis`.
      axis: mesh axis name to shard the batch over.
      image_ids: optional int [B]; mask: optional bool [B].
    Returns:
      float32 scalar (replicated).
    """
    batch = check_pair(z_speech, z_image)
    check_scalar("temperature", temperature)
    check_scalar("bias", bias)
    ndev = ring.check_mesh(batch, mesh, axis)
    examples = ring.example_arrays(batch, image_ids, mask)

    def local(zs, zi, me, t, b):
        zs, zi = l2_normalize(zs, NORM_EPS), l2_normalize(zi, NORM_EPS)

        def step(total, cols, block, tile):
            pos = ring.same_row(me, block) & me["valid"][:, None]
            return total + _sigmoid_block(tile, pos, ring.negatives(me, block), t, b), cols

        total, _, _ = ring.ring_fold(step, lambda block: zs @ block["z"].T, jnp.zeros((), jnp.float32), (),
                                     dict(me, z=zi), axis=axis, ndev=ndev)
        count = jax.lax.psum(jnp.sum(me["valid"].astype(jnp.float32)), axis)
        return jax.lax.psum(total, axis) / jnp.maximum(count, 1.0)

    f32 = jnp.float32
    return ring.ring_call(local, mesh, axis, (ring.as_float32(z_speech), ring.as_float32(z_image), examples),
                          (jnp.asarray(temperature, f32), jnp.asarray(bias, f32)))
