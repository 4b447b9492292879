"""Benchmark: matchmap_scores for an N x M validation matrix, printed as a table.

Default sizes are the DAVEnet validation setting: 1000 captions x 1000 images,
D = 1024, 14 x 14 image maps, 128 audio frames. MISA/SIMA cost
2 * N * M * H * W * T * D FLOPs (5.1e13 at the defaults), so on a laptop CPU
``--images`` can time a slice of the columns; the table then also prints the
time projected linearly to the full M.

    python bench/matchmap_bench.py --captions 1000 --images 1000 --chunk 50
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from vgs_jax.objectives import matchmap


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--captions", type=int, default=1000)
    p.add_argument("--images", type=int, default=1000, help="columns actually computed")
    p.add_argument("--full_images", type=int, default=1000, help="columns to project to")
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--grid", type=int, default=14)
    p.add_argument("--frames", type=int, default=128)
    p.add_argument("--chunk", type=int, default=50)
    p.add_argument("--simtypes", default="SISA,MISA,SIMA")
    a = p.parse_args()

    rng = np.random.default_rng(0)
    imgs = jnp.asarray(rng.normal(size=(a.images, a.grid, a.grid, a.dim)), jnp.float32)
    auds = jnp.asarray(rng.normal(size=(a.captions, a.frames, a.dim)), jnp.float32)
    imask = jnp.ones(imgs.shape[:3], bool)
    amask = jnp.asarray(np.arange(a.frames)[None, :] < rng.integers(
        a.frames // 4, a.frames + 1, size=(a.captions, 1)))
    print(f"backend={jax.default_backend()} devices={jax.device_count()} "
          f"captions={a.captions} images={a.images} (project to {a.full_images}) "
          f"D={a.dim} grid={a.grid}x{a.grid} frames={a.frames} chunk={a.chunk}")
    print(f"{'simtype':>8} {'compile_s':>10} {'run_s':>9} {'GFLOP/s':>9} "
          f"{'peak_block_MB':>14} {'projected_full_s':>17}")
    for simtype in a.simtypes.split(","):
        t0 = time.perf_counter()
        out = matchmap.matchmap_scores(imgs, imask, auds, amask, simtype=simtype,
                                       chunk_size=a.chunk)
        out.block_until_ready()
        t1 = time.perf_counter()
        out = matchmap.matchmap_scores(imgs, imask, auds, amask, simtype=simtype,
                                       chunk_size=a.chunk)
        out.block_until_ready()
        run = time.perf_counter() - t1
        compile_s = (t1 - t0) - run
        if simtype == "SISA":
            flops = 2.0 * a.captions * a.images * a.dim
            block_mb = 0.0
        else:
            flops = 2.0 * a.captions * a.images * a.grid**2 * a.frames * a.dim
            block_mb = a.chunk**2 * a.grid**2 * a.frames * 4 / 2**20
        print(f"{simtype:>8} {compile_s:10.2f} {run:9.2f} {flops / run / 1e9:9.1f} "
              f"{block_mb:14.1f} {run * a.full_images / a.images:17.1f}")


if __name__ == "__main__":
    main()
