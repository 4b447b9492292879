"""Ring-chunked versions of the trainer's hinge and InfoNCE losses (`config.loss.chunked=True`).

Each function equals its namesake in `vgs_jax.objectives.losses` (same conventions, value and
gradients up to float rounding), but under `jax.shard_map` over `mesh[axis]` with D devices each
device only ever holds one n x n tile (n = B / D) of the caption x image scores: the image rows
travel around a `jax.lax.ppermute` ring (`ring.ring_fold`) and every statistic a loss needs is
accumulated tile by tile:

* platalea hinge: the sum of hinge costs (a scalar);
* VSE++ hardest negative: running maxima per caption (stay) and per image (travel);
* InfoNCE: running logsumexps per caption and per image (`jnp.logaddexp`);
* DAVEnet sampled impostors: the impostors are drawn on the global mask first (O(B)), then each
  anchor picks its impostor's score from the tile that holds it;
* ResDAVEnet-VQ semi-hard: running maxima of the scores below the positive's, per caption and per
  image, plus the sampled terms.

The similarity-matrix losses take the towers' output dicts instead of a matrix: the tile is
`similarity.similarity_matrix` of a caption block and an image block (cosine or a matchmap
score), so matchmap models chunk too. The positives' scores are the diagonal of each device's
own tile.
"""

import jax
import jax.numpy as jnp

from vgs_jax.objectives import ring
from vgs_jax.objectives import similarity
from vgs_jax.objectives.losses import check_temperature
from vgs_jax.objectives.losses import sample_impostors
from vgs_jax.objectives.pairs import NORM_EPS
from vgs_jax.objectives.pairs import check_pair
from vgs_jax.objectives.pairs import check_scalar
from vgs_jax.objectives.pairs import valid_mask


def _count(valid, axis):
    """Global number of valid examples (float32, at least 1) from the local validity [n]."""
    return jnp.maximum(jax.lax.psum(jnp.sum(valid.astype(jnp.float32)), axis), 1.0)


def _valid_sum(valid, values, axis):
    """Global sum of `values` [n] over valid rows."""
    return jax.lax.psum(jnp.sum(jnp.where(valid, values, 0.0)), axis)


def _embedding_ring(z_speech, z_image, *, mesh, axis, image_ids, mask, scalar, rows, cols, step,
                    finish):
    """Runs an embedding loss around the ring.

    The tile is the cosine matrix of the re-normalised embeddings (as `cosine_similarity_matrix`).
    step(tile [n, n], me, block, rows, cols, scalar) -> (rows, cols) and
    finish(me, rows, block, cols, scalar) -> scalar loss, where `me` / `block` hold the local /
    travelling examples' "valid", "id", "index" and "diag" (the positive's score) [n].
    `rows` / `cols` are initial accumulators, as functions of n.
    """
    batch = check_pair(z_speech, z_image)
    ndev = ring.check_mesh(batch, mesh, axis)
    examples = ring.example_arrays(batch, image_ids, mask)

    def local(zs, zi, ex, value):
        zs, zi = similarity.l2_normalize(zs, NORM_EPS), similarity.l2_normalize(zi, NORM_EPS)
        n = zs.shape[0]
        tile = lambda block: zs @ block["z"].T
        own = tile({"z": zi})
        me = dict(ex, diag=jnp.diagonal(own))
        out_rows, out_cols, block = ring.ring_fold(
            lambda r, c, b, t: step(t, me, b, r, c, value), tile, rows(n), cols(n), dict(me, z=zi),
            axis=axis, ndev=ndev, own_tile=own)
        return finish(me, out_rows, block, out_cols, value)

    return ring.ring_call(local, mesh, axis, (ring.as_float32(z_speech), ring.as_float32(z_image), examples),
                          (jnp.asarray(scalar, jnp.float32),))


def _hinge_tiles(tile, me, block, margin):
    """Hinge costs [n, n] of the tile, caption anchors and image anchors (0 off the negatives)."""
    neg = ring.negatives(me, block)
    cost_speech = jnp.where(neg, jax.nn.relu(margin + tile - me["diag"][:, None]), 0.0)
    cost_image = jnp.where(neg, jax.nn.relu(margin + tile - block["diag"][None, :]), 0.0)
    return cost_speech, cost_image


def chunked_platalea_hinge_loss(z_speech, z_image, *, mesh, axis="data", margin=0.2, image_ids=None,
                                mask=None) -> jax.Array:
    """`losses.platalea_hinge_loss` on a device ring (module docstring); same arguments plus the
    mesh and its batch axis. z_speech, z_image: float [B, E], B divisible by mesh.shape[axis]."""
    check_scalar("margin", margin)

    def step(tile, me, block, total, cols, m):
        cost_speech, cost_image = _hinge_tiles(tile, me, block, m)
        return total + jnp.sum(cost_speech + cost_image), cols

    def finish(me, total, block, cols, m):
        return jax.lax.psum(total, axis) / jnp.square(_count(me["valid"], axis))

    return _embedding_ring(z_speech, z_image, mesh=mesh, axis=axis, image_ids=image_ids, mask=mask,
                           scalar=margin, rows=lambda n: jnp.zeros((), jnp.float32), cols=lambda n: (),
                           step=step, finish=finish)


def chunked_hardest_negative_hinge_loss(z_speech, z_image, *, mesh, axis="data", margin=0.2,
                                        image_ids=None, mask=None) -> jax.Array:
    """`losses.hardest_negative_hinge_loss` (VSE++) on a device ring; arguments as
    `chunked_platalea_hinge_loss`."""
    check_scalar("margin", margin)

    def step(tile, me, block, rows, cols, m):
        cost_speech, cost_image = _hinge_tiles(tile, me, block, m)
        return (jnp.maximum(rows, jnp.max(cost_speech, axis=1)),
                jnp.maximum(cols, jnp.max(cost_image, axis=0)))

    def finish(me, rows, block, cols, m):
        n = _count(me["valid"], axis)
        return _valid_sum(me["valid"], rows, axis) / n + _valid_sum(block["valid"], cols, axis) / n

    zeros = lambda n: jnp.zeros((n,), jnp.float32)
    return _embedding_ring(z_speech, z_image, mesh=mesh, axis=axis, image_ids=image_ids, mask=mask,
                           scalar=margin, rows=zeros, cols=zeros, step=step, finish=finish)


def chunked_infonce_loss(z_speech, z_image, *, temperature, mesh, axis="data", image_ids=None,
                         mask=None) -> jax.Array:
    """`losses.infonce_loss` (symmetric, S / temperature) on a device ring; the softmax
    denominators are running logsumexps. Differentiable w.r.t. the embeddings and temperature."""
    check_temperature(temperature)

    def step(tile, me, block, rows, cols, t):
        allowed = ring.negatives(me, block) | ring.same_row(me, block)
        logits = jnp.where(allowed, tile / t, -jnp.inf)
        return (jnp.logaddexp(rows, jax.nn.logsumexp(logits, axis=1)),
                jnp.logaddexp(cols, jax.nn.logsumexp(logits, axis=0)))

    def finish(me, rows, block, cols, t):
        n = _count(me["valid"], axis)
        return 0.5 * (_valid_sum(me["valid"], rows - me["diag"] / t, axis) / n
                      + _valid_sum(block["valid"], cols - block["diag"] / t, axis) / n)

    minus_inf = lambda n: jnp.full((n,), -jnp.inf, jnp.float32)
    return _embedding_ring(z_speech, z_image, mesh=mesh, axis=axis, image_ids=image_ids, mask=mask,
                           scalar=temperature, rows=minus_inf, cols=minus_inf, step=step, finish=finish)


# ------------------------------------------------------------------ similarity-matrix losses
def _tower_inputs(speech: dict, image: dict, name: str) -> tuple[dict, dict, int]:
    """The per-example leaves of the towers' outputs that `name` scores, and the batch size."""
    keys = ("embedding",) if name == "cosine" else ("embedding", "map", "map_mask")
    for side, out in (("speech", speech), ("image", image)):
        missing = [k for k in keys if k not in out]
        if missing:
            raise ValueError(f"the {side} outputs lack {missing}, needed by similarity {name!r}.")
    batch = check_pair(speech["embedding"], image["embedding"])
    pick = lambda out: {k: out[k] for k in keys}
    return pick(speech), pick(image), batch


def _sampled_picks(tile, me, block, rows, cols):
    """Adds each anchor's impostor score: caption i vs image imp_row[i] (rows), image j vs
    caption imp_col[j] (cols travel with the image block)."""
    row_hit = block["index"][None, :] == me["imp_row"][:, None]
    col_hit = me["index"][:, None] == block["imp_col"][None, :]
    return (rows + jnp.sum(jnp.where(row_hit, tile, 0.0), axis=1),
            cols + jnp.sum(jnp.where(col_hit, tile, 0.0), axis=0))


def _sampled_costs(valid, diag, index, imp, score, margin):
    """Per-anchor sampled hinge [n]; 0 for anchors without an impostor (imp == index) or padding."""
    cost = jnp.where(imp != index, jax.nn.relu(margin + score - diag), 0.0)
    return jnp.where(valid, cost, 0.0)


def _semihard_max(tile, diag, cand, quirk, axis):
    """Max over `axis` of the semi-hard candidates' scores (quirk: masked entries count as 0)."""
    cand = cand & (tile < diag)
    return jnp.max(jnp.where(cand, tile, 0.0 if quirk else -jnp.inf), axis=axis), jnp.any(cand, axis=axis)


def _semihard_costs(best, has, diag, margin, quirk):
    """Per-anchor semi-hard hinge [n] from the running max and whether any candidate was seen."""
    if quirk:
        return jax.nn.relu(margin + best - diag)
    return jnp.where(has, jax.nn.relu(margin + jnp.where(has, best, 0.0) - diag), 0.0)


def _similarity_ring(speech, image, rng, *, mesh, axis, similarity_name, chunk_size, margin, mask,
                     semihard, quirk):
    """Sampled (+ semi-hard when `semihard`) hinges of `similarity_name` scores on the ring."""
    check_scalar("margin", margin)
    speech, image, batch = _tower_inputs(speech, image, similarity_name)
    ndev = ring.check_mesh(batch, mesh, axis)
    valid = valid_mask(batch, mask)
    k_row, k_col = jax.random.split(rng)
    examples = {"valid": valid, "index": jnp.arange(batch, dtype=jnp.int32),
                "imp_row": sample_impostors(k_row, valid), "imp_col": sample_impostors(k_col, valid)}
    low = 0.0 if quirk else -jnp.inf

    def local(sp, im, ex, m):
        tile = lambda block: similarity.similarity_matrix(sp, block["tower"], similarity_name,
                                                          chunk_size=chunk_size).astype(jnp.float32)
        own = tile({"tower": im})
        me = dict(ex, diag=jnp.diagonal(own))
        n = own.shape[0]

        def step(rows, cols, block, t):
            r_pick, c_pick = _sampled_picks(t, me, block, rows["pick"], cols["pick"])
            rows, cols = dict(rows, pick=r_pick), dict(cols, pick=c_pick)
            if semihard:
                cand = (me["valid"][:, None] & block["valid"][None, :]
                        & (me["index"][:, None] != block["index"][None, :]))
                r_best, r_has = _semihard_max(t, me["diag"][:, None], cand, quirk, 1)
                c_best, c_has = _semihard_max(t, block["diag"][None, :], cand, quirk, 0)
                rows = dict(rows, best=jnp.maximum(rows["best"], r_best), has=rows["has"] | r_has)
                cols = dict(cols, best=jnp.maximum(cols["best"], c_best), has=cols["has"] | c_has)
            return rows, cols

        init = {"pick": jnp.zeros((n,), jnp.float32)}
        if semihard:
            init.update(best=jnp.full((n,), low, jnp.float32), has=jnp.zeros((n,), bool))
        rows, cols, block = ring.ring_fold(step, tile, init, init, dict(me, tower=im), axis=axis,
                                           ndev=ndev, own_tile=own)
        row_cost = _sampled_costs(me["valid"], me["diag"], me["index"], me["imp_row"], rows["pick"], m)
        col_cost = _sampled_costs(block["valid"], block["diag"], block["index"], block["imp_col"],
                                  cols["pick"], m)
        if semihard:
            row_cost += jnp.where(me["valid"], _semihard_costs(rows["best"], rows["has"], me["diag"], m, quirk),
                                  0.0)
            col_cost += jnp.where(block["valid"],
                                  _semihard_costs(cols["best"], cols["has"], block["diag"], m, quirk), 0.0)
        total = jnp.sum(row_cost) + jnp.sum(col_cost)
        return jax.lax.psum(total, axis) / _count(me["valid"], axis)

    return ring.ring_call(local, mesh, axis, (speech, image, examples), (jnp.asarray(margin, jnp.float32),))


def chunked_sampled_impostor_hinge_loss(speech: dict, image: dict, rng, *, mesh, axis="data",
                                        similarity_name="cosine", chunk_size=None, margin=1.0,
                                        mask=None) -> jax.Array:
    """`losses.sampled_impostor_hinge_loss` of the `similarity_name` scores, on a device ring.

    Args:
      speech, image: the towers' output dicts ("embedding" [B, E]; for matchmap similarities
        also "map" and "map_mask"), B divisible by mesh.shape[axis].
      rng: the key of the unchunked loss (same impostors drawn).
      mesh, axis: the device mesh and its batch axis.
      similarity_name, chunk_size: as `similarity.similarity_matrix`'s name and chunk_size.
      margin, mask: as in the unchunked loss.
    """
    return _similarity_ring(speech, image, rng, mesh=mesh, axis=axis, similarity_name=similarity_name,
                            chunk_size=chunk_size, margin=margin, mask=mask, semihard=False, quirk=False)


def chunked_semihard_hinge_loss(speech: dict, image: dict, rng, *, mesh, axis="data",
                                similarity_name="cosine", chunk_size=None, margin=1.0, mask=None,
                                reference_quirk=False) -> jax.Array:
    """`losses.semihard_hinge_loss` (ResDAVEnet-VQ) on a device ring; arguments as
    `chunked_sampled_impostor_hinge_loss` plus `reference_quirk`."""
    return _similarity_ring(speech, image, rng, mesh=mesh, axis=axis, similarity_name=similarity_name,
                            chunk_size=chunk_size, margin=margin, mask=mask, semihard=True,
                            quirk=reference_quirk)
