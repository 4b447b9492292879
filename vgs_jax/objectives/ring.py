"""A device ring for blockwise contrastive losses (the pattern of `sigmoid.chunked_sigmoid_loss`).

Under `jax.shard_map` over one mesh axis of D devices, device d holds rows d*n .. d*n + n - 1 of
the captions (its "rows", which stay put) and starts with the same rows of the images (a "block"
that travels). `ring_fold` calls a step on the own block, then D - 1 times passes the block, and
the per-image accumulators that travel with it, to the next device with `jax.lax.ppermute`. Each
step sees one n x n tile of the caption x image matrix, so no device ever holds more than n x n
scores; after the fold every image block has met every caption block exactly once (the
per-image accumulators are complete, on another device: reduce them with `psum`).
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

from vgs_jax.objectives.pairs import check_ids
from vgs_jax.objectives.pairs import valid_mask

P = jax.sharding.PartitionSpec


def ring_fold(step: Callable, tile_fn: Callable, rows: Any, cols: Any, block: Any, *, axis: str,
              ndev: int, own_tile: jax.Array | None = None):
    """Folds `step` over the D image blocks; call inside shard_map over `axis`.

    Args:
      step: (rows, cols, block, tile) -> (rows, cols); `rows` are per-caption (local)
        accumulators, `cols` per-image accumulators travelling with `block` (the image data of
        one block), `tile` = tile_fn(block), the local captions' [n, n] scores against it.
      tile_fn: block -> [n, n] scores.
      rows, cols, block: pytrees of arrays (leading dim n for per-example leaves).
      axis: the mesh axis name; ndev: its size D.
      own_tile: tile_fn of the device's own block, when the caller has it already.
    Returns:
      (rows, cols, block) after all D blocks; `cols` belongs to the returned `block`.
    """
    rows, cols = step(rows, cols, block, tile_fn(block) if own_tile is None else own_tile)
    ring = [(d, (d + 1) % ndev) for d in range(ndev)]
    # Rematerialised: reverse mode keeps each step's inputs (O(n) rows / cols, the n x E block), not
    # its n x n tile and masks, so the gradient's memory stays O(n x n) + O(B x E), not O(n x B).
    remat_step = jax.checkpoint(lambda rows, cols, block: step(rows, cols, block, tile_fn(block)))

    def body(_, carry):
        rows, cols, block = carry
        cols, block = jax.tree.map(lambda x: jax.lax.ppermute(x, axis, ring), (cols, block))
        rows, cols = remat_step(rows, cols, block)
        return rows, cols, block

    return jax.lax.fori_loop(0, ndev - 1, body, (rows, cols, block))


def check_mesh(batch: int, mesh: jax.sharding.Mesh, axis: str) -> int:
    """The size D of `mesh[axis]`; ValueError if the axis is missing or D does not divide batch."""
    if axis not in mesh.shape:
        raise ValueError(f"mesh has no axis {axis!r}; its axes are {tuple(mesh.shape)}.")
    ndev = mesh.shape[axis]
    if batch % ndev:
        raise ValueError(
            f"batch size {batch} is not divisible by the {ndev} devices of mesh axis "
            f"{axis!r}; pad the batch (and mark padding in `mask`).")
    return ndev


def example_arrays(batch: int, image_ids, mask) -> dict:
    """Per-example bookkeeping [B] for the ring: validity, image ids, global row index.

    Without image_ids every row gets its own id (its index), so "different id" means "not the
    same row" and the same negative test serves both cases.
    """
    index = jnp.arange(batch, dtype=jnp.int32)
    if image_ids is None:
        ids = index
    else:
        check_ids(batch, image_ids)
        ids = jnp.asarray(image_ids).astype(jnp.int32)
    return {"valid": valid_mask(batch, mask), "id": ids, "index": index}


def negatives(rows: dict, block: dict) -> jax.Array:
    """bool [n, n]: image j of `block` is a negative for caption i of `rows` (and vice versa)."""
    return (rows["valid"][:, None] & block["valid"][None, :]
            & (rows["id"][:, None] != block["id"][None, :]))


def same_row(rows: dict, block: dict) -> jax.Array:
    """bool [n, n]: the tile entries on the global diagonal (the positive pairs)."""
    return rows["index"][:, None] == block["index"][None, :]


def ring_call(local: Callable, mesh: jax.sharding.Mesh, axis: str, sharded: tuple, replicated: tuple):
    """Runs local(*sharded, *replicated) under shard_map: `sharded` pytrees split over `axis` on
    their leading dim, `replicated` ones whole on every device; the result is replicated."""
    specs = (tuple(jax.tree.map(lambda _: P(axis), s) for s in sharded)
             + tuple(jax.tree.map(lambda _: P(), r) for r in replicated))
    fn = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P())
    return fn(*sharded, *replicated)


def as_float32(x) -> jax.Array:
    """x as float32 (float64 stays float64)."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))
