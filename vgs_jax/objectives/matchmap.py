"""Matchmaps between image feature maps and audio frame sequences, and their scores.

A matchmap (DAVEnet, Harwath et al. 2018; anchor-implementations.md 2.4) is the
grid of dot products between every image cell ``(h, w)`` and every audio frame
``t``: ``M[h, w, t] = <image_map[h, w], audio_map[t]>``. A pair's similarity is a
reduction of its matchmap (``SIMTYPES``):

* ``SISA``: mean of M over all valid ``(h, w, t)``;
* ``MISA``: for each valid frame t the max of M over valid cells, then the mean
  over valid t (DAVEnet's default);
* ``SIMA``: for each valid cell the max of M over valid frames, then the mean
  over valid cells.
* ``FRAGMENT``: the fragment-alignment score of Harwath & Glass (2015), survey eq. (3)
  (survey-systems.md B.2): for each valid cell the best non-negative product with a valid
  frame, summed over cells, ``sum_{h,w} max(0, max_t M[h, w, t])``. Image cells stand in for
  the paper's detected regions and audio frames for its word segments. Like eq. (3) it is a
  sum, not a mean, so it grows with the number of valid cells.

Padding is handled with boolean masks (``True`` = real cell / frame), never by
cropping: the values stored at padded positions never change a score. The
DAVEnet reference instead crops the audio map to ``nframes // 16`` frames; pass a
mask built from that count to reproduce it. A pair with no valid cell or no
valid frame scores 0.

``matchmap_scores`` computes the full ``[Ba, Bi]`` matrix (rows = captions,
columns = images, the same convention as ``vgs_jax.objectives.losses``) in one jit-compiled
call. For MISA/SIMA each block is a single matrix product
``[ca * T, D] x [D, ci * P]``; with ``chunk_size`` the pairs are processed in
``chunk_size x chunk_size`` blocks by a sequential ``lax.map``, so peak memory
is about ``chunk_size**2 * H * W * T`` floats instead of ``Ba * Bi * H * W * T``.
SISA needs no matchmap at all: it equals the dot product of the masked mean
image vector and the masked mean audio vector, which is what is computed.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

SIMTYPES = ("SISA", "MISA", "SIMA", "FRAGMENT")


def matchmap(image_map, audio_map) -> jax.Array:
    """Dot products of every image cell with every audio frame.

    Args:
      image_map: float [H, W, D] image feature map.
      audio_map: float [T, D] audio frame features.
    Returns:
      float [H, W, T] with M[h, w, t] = <image_map[h, w], audio_map[t]>.
    """
    if jnp.ndim(image_map) != 3 or jnp.ndim(audio_map) != 2:
        raise ValueError(
            f"matchmap needs image_map [H, W, D] and audio_map [T, D]; got shapes "
            f"{jnp.shape(image_map)} and {jnp.shape(audio_map)}.")
    if jnp.shape(image_map)[-1] != jnp.shape(audio_map)[-1]:
        raise ValueError(
            f"image_map feature size {jnp.shape(image_map)[-1]} differs from "
            f"audio_map feature size {jnp.shape(audio_map)[-1]}; both encoders "
            "must output the same embedding dimension.")
    return jnp.einsum("hwd,td->hwt", image_map, audio_map)


def _check_bool(name, x, shape):
    if tuple(jnp.shape(x)) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {jnp.shape(x)}.")
    if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.bool_):
        raise ValueError(
            f"{name} must be boolean (True = real cell/frame); got dtype "
            f"{jnp.asarray(x).dtype}. Use {name}.astype(bool).")


def _validate(image_maps, image_mask, audio_maps, audio_mask, simtype, chunk_size):
    if simtype not in SIMTYPES:
        raise ValueError(f"unknown simtype {simtype!r}; choose one of {SIMTYPES}.")
    if jnp.ndim(image_maps) != 4:
        raise ValueError(
            f"image_maps must be [Bi, H, W, D]; got shape {jnp.shape(image_maps)}.")
    if jnp.ndim(audio_maps) != 3:
        raise ValueError(
            f"audio_maps must be [Ba, T, D]; got shape {jnp.shape(audio_maps)}.")
    bi, h, w, d = jnp.shape(image_maps)
    ba, t, da = jnp.shape(audio_maps)
    if d != da:
        raise ValueError(
            f"image_maps feature size {d} differs from audio_maps feature size {da}; "
            "both encoders must output the same embedding dimension.")
    _check_bool("image_mask", image_mask, (bi, h, w))
    _check_bool("audio_mask", audio_mask, (ba, t))
    if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
            or chunk_size < 1):
        raise ValueError(
            f"chunk_size must be a positive int or None; got {chunk_size!r}.")


def _pair_block(img, imask, aud, amask, simtype, precision):
    """MISA/SIMA/FRAGMENT scores [ca, ci] of audio [ca, T, D] (mask [ca, T]) vs images [ci, P, D]."""
    ca, t, d = aud.shape
    ci, p, _ = img.shape
    mm = jnp.matmul(aud.reshape(ca * t, d), img.reshape(ci * p, d).T, precision=precision)
    mm = mm.reshape(ca, t, ci, p)
    both = amask[:, :, None, None] & imask[None, None, :, :]   # [ca, T, ci, P]
    low = jnp.finfo(mm.dtype).min
    mm = jnp.where(both, mm, low)
    if simtype == "MISA":   # max over cells, mean over frames
        best = jnp.max(mm, axis=3)                                # [ca, T, ci]
        keep = amask[:, :, None] & jnp.any(imask, axis=1)[None, None, :]
        total = jnp.sum(jnp.where(keep, best, 0.0), axis=1)       # [ca, ci]
        count = jnp.sum(amask, axis=1)[:, None]
        return total / jnp.maximum(count, 1).astype(total.dtype)
    best = jnp.max(mm, axis=1)                                    # [ca, ci, P]: max over frames
    keep = imask[None, :, :] & jnp.any(amask, axis=1)[:, None, None]
    if simtype == "FRAGMENT":  # eq. (3): sum over cells of the best non-negative product
        return jnp.sum(jnp.where(keep, jax.nn.relu(best), 0.0), axis=2)
    total = jnp.sum(jnp.where(keep, best, 0.0), axis=2)           # SIMA: mean over cells
    count = jnp.sum(imask, axis=1)[None, :]
    return total / jnp.maximum(count, 1).astype(total.dtype)


def _masked_mean(x, m):
    """Mean of x [B, N, D] over the True entries of m [B, N] -> [B, D] (0 if none)."""
    total = jnp.sum(jnp.where(m[..., None], x, 0.0), axis=1)
    return total / jnp.maximum(jnp.sum(m, axis=1), 1)[:, None].astype(total.dtype)


def _pad_rows(x, rows):
    pad = rows - x.shape[0]
    return jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)) if pad else x


@functools.partial(jax.jit, static_argnames=("simtype", "chunk_size", "precision"))
def _scores(image_maps, image_mask, audio_maps, audio_mask, simtype, chunk_size, precision):
    dtype = jnp.promote_types(jnp.result_type(image_maps, audio_maps), jnp.float32)
    bi, h, w, d = image_maps.shape
    ba, t, _ = audio_maps.shape
    img = image_maps.astype(dtype).reshape(bi, h * w, d)
    imask = image_mask.reshape(bi, h * w)
    aud = audio_maps.astype(dtype)
    if simtype == "SISA":
        # mean_{p,t} <img_p, aud_t> = <mean_p img_p, mean_t aud_t> (bilinearity).
        return jnp.matmul(_masked_mean(aud, audio_mask), _masked_mean(img, imask).T,
                          precision=precision)
    if chunk_size is None:
        return _pair_block(img, imask, aud, audio_mask, simtype, precision)
    c = chunk_size
    na, ni = -(-ba // c), -(-bi // c)
    aud_c = _pad_rows(aud, na * c).reshape(na, c, t, d)
    amask_c = _pad_rows(audio_mask, na * c).reshape(na, c, t)
    img_c = _pad_rows(img, ni * c).reshape(ni, c, h * w, d)
    imask_c = _pad_rows(imask, ni * c).reshape(ni, c, h * w)

    def row_of_blocks(audio_chunk):
        a, am = audio_chunk
        return jax.lax.map(
            lambda image_chunk: _pair_block(image_chunk[0], image_chunk[1], a, am,
                                            simtype, precision),
            (img_c, imask_c))                                      # [ni, c, c]

    blocks = jax.lax.map(row_of_blocks, (aud_c, amask_c))         # [na, ni, c, c]
    full = blocks.transpose(0, 2, 1, 3).reshape(na * c, ni * c)
    return full[:ba, :bi]


def matchmap_scores(image_maps, image_mask, audio_maps, audio_mask, *, simtype="MISA",
                    chunk_size=None, precision=None) -> jax.Array:
    """Matchmap similarity of every (caption, image) pair, float32 [Ba, Bi].

    Args:
      image_maps: float [Bi, H, W, D] image feature maps (padded to a common H, W).
      image_mask: bool [Bi, H, W]; True marks real cells (all True for fixed-size
        images).
      audio_maps: float [Ba, T, D] audio frame features (padded to a common T).
      audio_mask: bool [Ba, T]; True marks real frames.
      simtype: one of SIMTYPES ("SISA", "MISA", "SIMA", "FRAGMENT"); see the module docstring.
      chunk_size: None computes all pairs in one block (memory ~ Ba*Bi*H*W*T
        floats); an int c computes c x c blocks of pairs sequentially (memory
        ~ c*c*H*W*T floats). Does not change the result beyond float rounding.
      precision: passed to the matrix products (e.g. jax.lax.Precision.HIGHEST
        to avoid TF32 on GPUs).
    Returns:
      S [Ba, Bi] with S[a, i] = score(image i, caption a); rows = captions.
    """
    _validate(image_maps, image_mask, audio_maps, audio_mask, simtype, chunk_size)
    return _scores(jnp.asarray(image_maps), jnp.asarray(image_mask), jnp.asarray(audio_maps),
                   jnp.asarray(audio_mask), simtype,
                   None if chunk_size is None else int(chunk_size), precision)
