"""Batch conventions every loss shares: pair batches, padding masks, negative pairs, counts.

Row ``i`` of ``z_speech [B, E]`` and ``z_image [B, E]`` is a matching (caption, image) pair;
``mask`` (bool ``[B]``, True = real example) marks padding; ``image_ids`` (int ``[B]``) says which
captions share an image (then they are not each other's negatives). See `vgs_jax.objectives.losses`
for the full conventions.
"""

import jax
import jax.numpy as jnp

NORM_EPS = 1e-8
"""Norm floor when a loss re-normalises its inputs (`similarity.l2_normalize`'s eps)."""


def check_pair(z_speech, z_image) -> int:
    """Validates two [B, E] embedding batches; returns B."""
    if jnp.ndim(z_speech) != 2 or jnp.ndim(z_image) != 2:
        raise ValueError(
            f"z_speech and z_image must be 2-D [batch, embed_dim]; got shapes "
            f"{jnp.shape(z_speech)} and {jnp.shape(z_image)}. Pool over time "
            "before calling the loss.")
    if jnp.shape(z_speech) != jnp.shape(z_image):
        raise ValueError(
            f"z_speech shape {jnp.shape(z_speech)} differs from z_image shape "
            f"{jnp.shape(z_image)}; row i of each must be the i-th matching "
            "(caption, image) pair with the same embedding size.")
    return jnp.shape(z_speech)[0]


def check_scalar(name: str, value) -> None:
    """ValueError unless `value` (e.g. a margin, temperature or bias) is a scalar."""
    if jnp.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar; got shape {jnp.shape(value)}.")


def _check_vector(name: str, value, batch: int, kind, what: str, hint: str = "") -> None:
    """ValueError unless `value` has shape [batch] and a dtype of `kind` (described by `what`)."""
    if jnp.shape(value) != (batch,):
        raise ValueError(
            f"{name} must have shape ({batch},) to match the batch; got "
            f"{jnp.shape(value)}.")
    if not jnp.issubdtype(jnp.asarray(value).dtype, kind):
        raise ValueError(f"{name} must be {what}; got dtype {jnp.asarray(value).dtype}.{hint}")


def valid_mask(batch: int, mask) -> jax.Array:
    """Validated bool [B] validity (all True when mask is None)."""
    if mask is None:
        return jnp.ones((batch,), bool)
    _check_vector("mask", mask, batch, jnp.bool_, "boolean (True = real example)",
                  " Use mask.astype(bool).")
    return jnp.asarray(mask)


def check_ids(batch: int, image_ids) -> None:
    """ValueError unless `image_ids` is an integer array of shape [B]."""
    _check_vector("image_ids", image_ids, batch, jnp.integer, "an integer array")


def pair_masks(batch: int, image_ids, mask) -> tuple[jax.Array, jax.Array]:
    """Returns (valid [B] bool, negative [B, B] bool) for the given options.

    negative[i, j] is True when j is a negative for anchor i (and i for j):
    i != j, both valid, and (if image_ids is given) different images.
    """
    valid = valid_mask(batch, mask)
    neg = valid[:, None] & valid[None, :] & ~jnp.eye(batch, dtype=bool)
    if image_ids is not None:
        check_ids(batch, image_ids)
        ids = jnp.asarray(image_ids)
        neg = neg & (ids[:, None] != ids[None, :])
    return valid, neg


def count(valid) -> jax.Array:
    """Number of valid examples as float32, at least 1 (avoids 0/0)."""
    return jnp.maximum(jnp.sum(valid.astype(jnp.float32)), 1.0)
