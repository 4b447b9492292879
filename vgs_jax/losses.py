"""Contrastive losses between spoken-caption and image embeddings.

Every function here is a pure ``jax.numpy`` function of two embedding batches
``z_speech [B, E]`` and ``z_image [B, E]`` whose row ``i`` is a matching
(caption, image) pair. They are jit-able and differentiable, and they return a
float32 scalar.

Conventions shared by all losses:

* Similarity is the cosine matrix ``S = cosine_similarity_matrix(z_speech,
  z_image)`` of shape ``[B, B]``: rows are captions, columns are images, the
  diagonal holds the positive pairs. Both inputs are re-normalised inside, as
  platalea's ``cosine_matrix`` does (anchor-implementations.md section 1.6).
* ``mask`` (bool ``[B]``, optional): ``False`` marks padding examples (for
  instance a short final batch padded to a fixed size). A padding example is
  neither an anchor nor a negative for anyone. ``B`` in a normaliser then means
  the number of valid examples.
* ``image_ids`` (int ``[B]``, optional): the image each pair belongs to. When
  given, an off-diagonal pair ``(i, j)`` with ``image_ids[i] == image_ids[j]``
  (two captions of the same image) is not a negative, as in FaST-VGS,
  VG-HuBERT and SpeechCLIP (sota-and-metrics.md A.0). When ``None`` every
  off-diagonal pair is a negative, exactly like platalea and Merkx et al.
* Global negatives: the functions are plain ``jnp``. Called under ``jax.jit``
  with the batch sharded as ``NamedSharding(mesh, P("data"))``, GSPMD computes
  ``S`` over the *global* batch, so the value and gradients do not depend on
  the number of devices (tested in ``tests/losses_test.py``). When sharding,
  shard ``image_ids`` and ``mask`` the same way as the embeddings.
"""

from typing import Callable

import jax
import jax.numpy as jnp

_NORM_EPS = 1e-8


def _check_pair(z_speech, z_image):
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


def _l2_normalize(x):
    """Rows of x [B, E] scaled to unit L2 norm (zero rows stay zero, finite grads)."""
    x = jnp.asarray(x, jnp.promote_types(jnp.asarray(x).dtype, jnp.float32))
    sq = jnp.sum(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, _NORM_EPS * _NORM_EPS))


def cosine_similarity_matrix(z_speech, z_image) -> jax.Array:
    """Cosine similarities, float32 [B, B]: rows = captions, columns = images.

    Args:
      z_speech: float [B, E] caption embeddings (need not be normalised).
      z_image: float [B', E] image embeddings (need not be normalised).
    Returns:
      S with S[i, j] = cos(z_speech[i], z_image[j]), shape [B, B'].
    """
    if jnp.ndim(z_speech) != 2 or jnp.ndim(z_image) != 2:
        raise ValueError(
            f"z_speech and z_image must be 2-D [batch, embed_dim]; got shapes "
            f"{jnp.shape(z_speech)} and {jnp.shape(z_image)}.")
    if jnp.shape(z_speech)[1] != jnp.shape(z_image)[1]:
        raise ValueError(
            f"z_speech has embed_dim {jnp.shape(z_speech)[1]} but z_image has "
            f"{jnp.shape(z_image)[1]}; both towers must project to the same size.")
    return _l2_normalize(z_speech) @ _l2_normalize(z_image).T


def _pair_masks(batch: int, image_ids, mask):
    """Returns (valid [B] bool, negative [B, B] bool) for the given options.

    negative[i, j] is True when j is a negative for anchor i (and i for j):
    i != j, both valid, and (if image_ids is given) different images.
    """
    if mask is None:
        valid = jnp.ones((batch,), bool)
    else:
        if jnp.shape(mask) != (batch,):
            raise ValueError(
                f"mask must have shape ({batch},) to match the batch; got "
                f"{jnp.shape(mask)}.")
        if not jnp.issubdtype(jnp.asarray(mask).dtype, jnp.bool_):
            raise ValueError(
                f"mask must be boolean (True = real example); got dtype "
                f"{jnp.asarray(mask).dtype}. Use mask.astype(bool).")
        valid = jnp.asarray(mask)
    neg = valid[:, None] & valid[None, :] & ~jnp.eye(batch, dtype=bool)
    if image_ids is not None:
        if jnp.shape(image_ids) != (batch,):
            raise ValueError(
                f"image_ids must have shape ({batch},) to match the batch; got "
                f"{jnp.shape(image_ids)}.")
        if not jnp.issubdtype(jnp.asarray(image_ids).dtype, jnp.integer):
            raise ValueError(
                f"image_ids must be an integer array; got dtype "
                f"{jnp.asarray(image_ids).dtype}.")
        ids = jnp.asarray(image_ids)
        neg = neg & (ids[:, None] != ids[None, :])
    return valid, neg


def _check_margin(margin):
    if jnp.ndim(margin) != 0:
        raise ValueError(f"margin must be a scalar; got shape {jnp.shape(margin)}.")


def _count(valid):
    """Number of valid examples as float32, at least 1 (avoids 0/0)."""
    return jnp.maximum(jnp.sum(valid.astype(jnp.float32)), 1.0)


def _hinge_costs(z_speech, z_image, margin, image_ids, mask):
    """Validity [B] and hinge costs [B, B] (0 where (i, j) is not a negative pair).

    cost_speech[i, j] = max(0, margin + S[i,j] - S[i,i])  (caption i vs wrong image j);
    cost_image[i, j]  = max(0, margin + S[i,j] - S[j,j])  (image j vs wrong caption i).
    """
    batch = _check_pair(z_speech, z_image)
    _check_margin(margin)
    valid, neg = _pair_masks(batch, image_ids, mask)
    sim = cosine_similarity_matrix(z_speech, z_image)
    diag = jnp.diagonal(sim)
    cost_speech = jnp.where(neg, jax.nn.relu(margin + sim - diag[:, None]), 0.0)
    cost_image = jnp.where(neg, jax.nn.relu(margin + sim - diag[None, :]), 0.0)
    return valid, cost_speech, cost_image


def platalea_hinge_loss(z_speech, z_image, *, margin=0.2, image_ids=None,
                        mask=None) -> jax.Array:
    """platalea's symmetric all-negatives hinge loss (anchor-implementations 1.6).

    Over every negative pair (i, j) (off-diagonal, see module docstring):
    max(0, margin + S[i,j] - S[j,j]) + max(0, margin + S[i,j] - S[i,i]),
    summed and divided by B**2, where B counts the valid examples.

    Args:
      z_speech, z_image: float [B, E]; row i of each is a matching pair.
      margin: scalar hinge margin (platalea: 0.2).
      image_ids: optional int [B]; same-image pairs are not negatives.
      mask: optional bool [B]; False rows are padding.
    Returns:
      float32 scalar.
    """
    valid, cost_speech, cost_image = _hinge_costs(z_speech, z_image, margin, image_ids, mask)
    return jnp.sum(cost_image + cost_speech) / jnp.square(_count(valid))


def hardest_negative_hinge_loss(z_speech, z_image, *, margin=0.2, image_ids=None,
                                mask=None) -> jax.Array:
    """VSE++ max-of-hinges loss (Faghri et al. 2018), both directions.

    For each valid caption i: h_i = max over its negative images j of
    max(0, margin + S[i,j] - S[i,i]); for each valid image j: g_j = max over its
    negative captions i of max(0, margin + S[i,j] - S[j,j]). An anchor with no
    negatives contributes 0. Returns mean_i(h_i) + mean_j(g_j) over valid
    anchors (VSE++ sums the two directions; we average over anchors so the
    value does not grow with the batch).

    Args:
      z_speech, z_image: float [B, E]; row i of each is a matching pair.
      margin: scalar hinge margin (VSE++: 0.2).
      image_ids: optional int [B]; same-image pairs are not negatives.
      mask: optional bool [B]; False rows are padding.
    Returns:
      float32 scalar.
    """
    valid, cost_speech, cost_image = _hinge_costs(z_speech, z_image, margin, image_ids, mask)
    hardest_s2i = jnp.max(cost_speech, axis=1)  # per caption anchor
    hardest_i2s = jnp.max(cost_image, axis=0)   # per image anchor
    n = _count(valid)
    return (jnp.sum(jnp.where(valid, hardest_s2i, 0.0)) / n
            + jnp.sum(jnp.where(valid, hardest_i2s, 0.0)) / n)


def infonce_loss(z_speech, z_image, *, temperature, image_ids=None,
                 mask=None) -> jax.Array:
    """Symmetric InfoNCE / CLIP softmax loss: 0.5 * (s2i + i2s).

    logits = S / temperature. s2i is the mean over valid captions i of
    logsumexp_{j in {i} + negatives(i)} logits[i, j] - logits[i, i]; i2s is the
    same over columns (each valid image against its caption and its negative
    captions). Same-image pairs (with image_ids) and padding rows are left out
    of the softmax denominators.

    Args:
      z_speech, z_image: float [B, E]; row i of each is a matching pair.
      temperature: positive scalar (may be traced, e.g. exp(log_t) from the
        model); CLIP's learned scale 1/0.07 = 14.3 corresponds to 0.07 here.
      image_ids: optional int [B]; same-image pairs are not negatives.
      mask: optional bool [B]; False rows are padding.
    Returns:
      float32 scalar.
    """
    batch = _check_pair(z_speech, z_image)
    if jnp.ndim(temperature) != 0:
        raise ValueError(
            f"temperature must be a scalar; got shape {jnp.shape(temperature)}.")
    try:
        concrete = float(temperature)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        concrete = None  # traced (e.g. a learned parameter): cannot check here
    if concrete is not None and not concrete > 0:
        raise ValueError(
            f"temperature must be positive; got {concrete}. Parametrise it as "
            "exp(log_temperature).")
    valid, neg = _pair_masks(batch, image_ids, mask)
    logits = cosine_similarity_matrix(z_speech, z_image) / temperature
    allowed = neg | jnp.eye(batch, dtype=bool)  # the positive is always kept
    masked = jnp.where(allowed, logits, -jnp.inf)
    pos = jnp.diagonal(logits)
    s2i = jax.nn.logsumexp(masked, axis=1) - pos
    i2s = jax.nn.logsumexp(masked, axis=0) - pos
    n = _count(valid)
    return 0.5 * (jnp.sum(jnp.where(valid, s2i, 0.0)) / n
                  + jnp.sum(jnp.where(valid, i2s, 0.0)) / n)


LOSSES: dict[str, Callable[..., jax.Array]] = {
    "platalea_hinge": platalea_hinge_loss,
    "hardest_negative_hinge": hardest_negative_hinge_loss,
    "infonce": infonce_loss,
}


def get_loss(name: str) -> Callable[..., jax.Array]:
    """Returns the loss function called `name` (a key of LOSSES)."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown loss {name!r}; choose one of {sorted(LOSSES)}.") from None
