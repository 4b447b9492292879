"""Contrastive losses between spoken-caption and image embeddings.

Every function here is a pure ``jax.numpy`` function of two embedding batches
``z_speech [B, E]`` and ``z_image [B, E]`` whose row ``i`` is a matching
(caption, image) pair. They are jit-able and differentiable, and they return a
float32 scalar.

The survey's other objectives are here too: the similarity-matrix losses (DAVEnet's
sampled hinge, ResDAVEnet-VQ's sampled + semi-hard hinge) take any similarity
matrix ``sim [B, B]`` (e.g. ``vgs_jax.objectives.matchmap.matchmap_scores``) and a
``jax.random`` key; ``coscos2_loss`` (siamese pairs) and ``mse_regression_loss``
take embeddings. SigLIP's sigmoid losses are in ``vgs_jax.objectives.sigmoid``;
which of these a config can train with, and what each reads, is
``vgs_jax.objectives.registry.OBJECTIVES``. The batch helpers (masks, counts)
are in ``vgs_jax.objectives.pairs``.

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

import jax
import jax.numpy as jnp

from vgs_jax.objectives.pairs import NORM_EPS
from vgs_jax.objectives.pairs import check_pair
from vgs_jax.objectives.pairs import check_scalar
from vgs_jax.objectives.pairs import count
from vgs_jax.objectives.pairs import pair_masks
from vgs_jax.objectives.pairs import valid_mask
from vgs_jax.objectives.similarity import l2_normalize


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
    return l2_normalize(z_speech, NORM_EPS) @ l2_normalize(z_image, NORM_EPS).T


def _hinge_costs(z_speech, z_image, margin, image_ids, mask):
    """Validity [B] and hinge costs [B, B] (0 where (i, j) is not a negative pair).

    cost_speech[i, j] = max(0, margin + S[i,j] - S[i,i])  (caption i vs wrong image j);
    cost_image[i, j]  = max(0, margin + S[i,j] - S[j,j])  (image j vs wrong caption i).
    """
    batch = check_pair(z_speech, z_image)
    check_scalar("margin", margin)
    valid, neg = pair_masks(batch, image_ids, mask)
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
    return jnp.sum(cost_image + cost_speech) / jnp.square(count(valid))


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
    n = count(valid)
    return (jnp.sum(jnp.where(valid, hardest_s2i, 0.0)) / n
            + jnp.sum(jnp.where(valid, hardest_i2s, 0.0)) / n)


def check_temperature(temperature) -> None:
    """ValueError unless `temperature` is a scalar and, when concrete, positive."""
    check_scalar("temperature", temperature)
    try:
        concrete = float(temperature)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return  # traced (e.g. a learned parameter): cannot check here
    if not concrete > 0:
        raise ValueError(
            f"temperature must be positive; got {concrete}. Parametrise it as "
            "exp(log_temperature).")


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
    batch = check_pair(z_speech, z_image)
    check_temperature(temperature)
    valid, neg = pair_masks(batch, image_ids, mask)
    logits = cosine_similarity_matrix(z_speech, z_image) / temperature
    allowed = neg | jnp.eye(batch, dtype=bool)  # the positive is always kept
    masked = jnp.where(allowed, logits, -jnp.inf)
    pos = jnp.diagonal(logits)
    s2i = jax.nn.logsumexp(masked, axis=1) - pos
    i2s = jax.nn.logsumexp(masked, axis=0) - pos
    n = count(valid)
    return 0.5 * (jnp.sum(jnp.where(valid, s2i, 0.0)) / n
                  + jnp.sum(jnp.where(valid, i2s, 0.0)) / n)


def _check_sim(sim):
    """Validates a square similarity matrix; returns B."""
    if jnp.ndim(sim) != 2 or jnp.shape(sim)[0] != jnp.shape(sim)[1]:
        raise ValueError(
            f"sim must be a square [B, B] matrix (rows = captions, columns = images, "
            f"diagonal = positives); got shape {jnp.shape(sim)}.")
    return jnp.shape(sim)[0]


def sample_impostors(rng, mask) -> jax.Array:
    """One impostor per anchor, uniform among the OTHER valid examples.

    The r-th valid anchor draws u uniform in [0, n_valid - 1) from ``fold_in(rng, r)`` and
    takes the u-th of the other valid rows (in batch order). So padding rows never change a
    draw: the same examples with padding rows added anywhere (e.g. a batch padded to a
    multiple of the device count) get the same impostors. Memory O(B) (no B x B mask), so the
    ring-chunked losses draw on the global batch too.

    Args:
      rng: a jax.random key.
      mask: bool [B]; True = valid example.
    Returns:
      int32 [B] indices. idx[i] == i exactly when anchor i has no impostor
      (i is padding, or it is the only valid example); losses skip those.
    """
    if jnp.ndim(mask) != 1:
        raise ValueError(
            f"mask must be a 1-D bool array [B]; got shape {jnp.shape(mask)}. "
            "Pass jnp.ones(B, bool) when there is no padding.")
    batch = jnp.shape(mask)[0]
    valid = valid_mask(batch, mask)
    n_valid = jnp.sum(valid, dtype=jnp.int32)
    choices = jnp.where(valid, n_valid - 1, 0)                            # [B]
    valid_upto = jnp.cumsum(valid, dtype=jnp.int32)                       # [B]
    rank = valid_upto - 1
    keys = jax.vmap(lambda r: jax.random.fold_in(rng, r))(rank)
    u = jax.vmap(lambda k, n: jax.random.randint(k, (), 0, jnp.maximum(n, 1)))(keys, choices)
    # the u-th of the other valid rows is the v-th valid row (0-based), skipping the anchor itself
    v = jnp.where(u < rank, u, u + 1)
    idx = jnp.searchsorted(valid_upto, v + 1, side="left").astype(jnp.int32)
    return jnp.where(choices > 0, idx, jnp.arange(batch, dtype=jnp.int32))


def _sampled_terms(sim, idx, margin):
    """Per-anchor hinge max(0, m + sim[i, idx[i]] - sim[i, i]); 0 where idx[i] == i."""
    batch = sim.shape[0]
    rows = jnp.arange(batch)
    cost = jax.nn.relu(margin + sim[rows, idx] - jnp.diagonal(sim))
    return jnp.where(idx != rows, cost, 0.0)


def sampled_impostor_hinge_loss(sim, rng, *, margin=1.0, mask=None) -> jax.Array:
    """DAVEnet's sampled margin ranking loss (anchor-implementations 2.5).

    For each valid anchor i, an impostor image j and an impostor caption k are
    drawn independently (``k_img, k_cap = jax.random.split(rng)``, each with
    ``sample_impostors``); the loss is the sum over anchors of
    max(0, m + S[i, j] - S[i, i]) + max(0, m + S[k, i] - S[i, i]),
    divided by the number of valid anchors.

    Args:
      sim: float [B, B], S[a, i] = s(image i, caption a); diagonal = positives.
      rng: jax.random key for the draws.
      margin: scalar (DAVEnet: 1.0).
      mask: optional bool [B]; False rows are padding.
    Returns:
      float32 scalar.
    """
    batch = _check_sim(sim)
    check_scalar("margin", margin)
    valid = valid_mask(batch, mask)
    k_img, k_cap = jax.random.split(rng)
    sim = jnp.asarray(sim, jnp.float32)
    cost = (_sampled_terms(sim, sample_impostors(k_img, valid), margin)
            + _sampled_terms(sim.T, sample_impostors(k_cap, valid), margin))
    return jnp.sum(jnp.where(valid, cost, 0.0)) / count(valid)


def _semihard_terms(sim, valid, margin, reference_quirk):
    """Per-anchor (row) semi-hard hinge costs [B]."""
    diag = jnp.diagonal(sim)
    cand = valid[None, :] & valid[:, None] & ~jnp.eye(sim.shape[0], dtype=bool)
    cand = cand & (sim < diag[:, None])
    if reference_quirk:   # ResDAVEnet-VQ: row max of (S * mask); masked entries count as 0
        imp = jnp.max(jnp.where(cand, sim, 0.0), axis=1)
        return jax.nn.relu(margin + imp - diag)
    imp = jnp.max(jnp.where(cand, sim, -jnp.inf), axis=1)
    has = jnp.any(cand, axis=1)
    return jnp.where(has, jax.nn.relu(margin + jnp.where(has, imp, 0.0) - diag), 0.0)


def semihard_hinge_loss(sim, rng, *, margin=1.0, mask=None,
                        reference_quirk=False) -> jax.Array:
    """ResDAVEnet-VQ loss: sampled + semi-hard hinges, both directions (anchor-impl. 3.5).

    Four terms, each a mean over valid anchors: sampled(S), sampled(S^T),
    semihard(S), semihard(S^T). ``sampled`` draws one impostor per anchor row
    (``k_row, k_col = jax.random.split(rng)`` for S and S^T, each with
    ``sample_impostors``) and takes max(0, m + S[i, j] - S[i, i]).
    ``semihard`` takes, per anchor row i, the most similar impostor among the
    valid j != i with S[i, j] < S[i, i] (strictly; ties with the positive are
    not semi-hard) and the same hinge.

    reference_quirk=False (default, the intended definition): an anchor with no
    semi-hard impostor contributes 0. reference_quirk=True reproduces the
    reference, which multiplies S by a 0/1 mask and takes the row max, so the
    impostor score is max(0, max over semi-hard S[i, j]): it is 0 when there is
    no semi-hard impostor or all of them are negative (then the hinge is
    max(0, m - S[i, i])).

    Args:
      sim: float [B, B], rows = captions, columns = images; diagonal = positives.
      rng: jax.random key for the sampled terms.
      margin: scalar (ResDAVEnet-VQ: 1.0).
      mask: optional bool [B]; False rows are padding.
      reference_quirk: see above.
    Returns:
      float32 scalar.
    """
    batch = _check_sim(sim)
    check_scalar("margin", margin)
    valid = valid_mask(batch, mask)
    sim = jnp.asarray(sim, jnp.float32)
    k_row, k_col = jax.random.split(rng)
    cost = (_sampled_terms(sim, sample_impostors(k_row, valid), margin)
            + _sampled_terms(sim.T, sample_impostors(k_col, valid), margin)
            + _semihard_terms(sim, valid, margin, reference_quirk)
            + _semihard_terms(sim.T, valid, margin, reference_quirk))
    return jnp.sum(jnp.where(valid, cost, 0.0)) / count(valid)


def coscos2_loss(z_a, z_b, same, *, mask=None) -> jax.Array:
    """Siamese coscos² loss (Synnaeve et al. 2014; as in the ABnet code).

    For each pair p: (1 - cos(z_a[p], z_b[p])) / 2 if same[p], else
    cos(z_a[p], z_b[p])**2; summed over valid pairs and divided by their number.

    Args:
      z_a, z_b: float [P, E], the two sides of each pair.
      same: bool [P]; True = same class (pull together), False = different (push
        to orthogonal).
      mask: optional bool [P]; False pairs are padding.
    Returns:
      float32 scalar.
    """
    pairs = check_pair(z_a, z_b)
    if jnp.shape(same) != (pairs,) or not jnp.issubdtype(jnp.asarray(same).dtype, jnp.bool_):
        raise ValueError(
            f"same must be a boolean array of shape ({pairs},); got shape "
            f"{jnp.shape(same)} dtype {jnp.asarray(same).dtype}.")
    valid = valid_mask(pairs, mask)
    cos = jnp.sum(l2_normalize(z_a, NORM_EPS) * l2_normalize(z_b, NORM_EPS), axis=-1)
    cost = jnp.where(same, 0.5 * (1.0 - cos), jnp.square(cos))
    return jnp.sum(jnp.where(valid, cost, 0.0)) / count(valid)


def mse_regression_loss(z_speech, image_vectors, *, mask=None) -> jax.Array:
    """Speech embedding regressed onto the image vector (Gelderloos & Chrupała 2016).

    Mean squared error over the valid rows and all dimensions:
    sum_{valid i, k} (z_speech[i, k] - image_vectors[i, k])**2 / (n_valid * E).
    No normalisation of either side.

    Args:
      z_speech: float [B, E] predicted image vectors.
      image_vectors: float [B, E] target image features.
      mask: optional bool [B]; False rows are padding.
    Returns:
      float32 scalar.
    """
    batch = check_pair(z_speech, image_vectors)
    valid = valid_mask(batch, mask)
    diff = jnp.asarray(z_speech, jnp.float32) - jnp.asarray(image_vectors, jnp.float32)
    sq = jnp.sum(jnp.where(valid[:, None], jnp.square(diff), 0.0))
    return sq / (count(valid) * jnp.shape(z_speech)[1])
