"""Time and peak memory of `vgs_jax.retrieval.retrieval_metrics` at SpokenCOCO test size, old vs new.

Random L2-normalised embeddings: N = 25 000 captions x M = 5 000 images (caption c belongs to
image c // 5), E = 512. "new" is the package's one-pass blocked counting; "old" is the former
implementation (kept here only for this comparison): one jitted chunk function per direction,
so the score matrix is computed twice, and image->speech takes an argmax over each image's
captions. Each run is its own subprocess (peak RSS, ru_maxrss, only grows); old and new
alternate `--repeats` times and the table prints medians:

  impl         old / new
  wall1_s      first call, jit compilation included
  wall2_s      second identical call (compiled)
  delta_MB     peak RSS at the end minus peak RSS before the calls (host; on a CPU backend
               this includes XLA's buffers)
  dev_peak_MB  accelerator peak bytes in use (GPU/TPU memory_stats), "n/a" on CPU
  R@10         speech->image / image->speech (old and new must agree)

Usage: python bench/retrieval_bench.py [--dim 512] [--chunk 1024] [--repeats 3]
       [--captions 25000] [--images 5000]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def _rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _old_metrics(z_speech, z_image, caption_image, chunk_size):
    """The former implementation: each direction's own chunked matmul and rank count."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from vgs_jax import retrieval

    highest = jax.lax.Precision.HIGHEST

    @jax.jit
    def s2i_chunk(queries, keys, targets):
        scores = jnp.matmul(queries, keys.T, precision=highest)
        target = jnp.take_along_axis(scores, targets[:, None], axis=1)
        index = jnp.arange(keys.shape[0], dtype=jnp.int32)[None, :]
        before = (scores > target) | ((scores == target) & (index < targets[:, None]))
        return 1 + jnp.sum(before, axis=1, dtype=jnp.int32)

    @jax.jit
    def i2s_chunk(images, captions, caption_image, image_index):
        scores = jnp.matmul(images, captions.T, precision=highest)
        own = caption_image[None, :] == image_index[:, None]
        best = jnp.argmax(jnp.where(own, scores, -jnp.inf), axis=1).astype(jnp.int32)
        best_scores = jnp.take_along_axis(scores, best[:, None], axis=1)
        index = jnp.arange(captions.shape[0], dtype=jnp.int32)[None, :]
        before = (scores > best_scores) | ((scores == best_scores) & (index < best[:, None]))
        return 1 + jnp.sum(before, axis=1, dtype=jnp.int32)

    def chunked(fn, queries, extra, keys):
        total, size = queries.shape[0], min(chunk_size, queries.shape[0])
        out = np.empty((total,), np.int32)
        for start in range(0, total, size):
            stop = min(start + size, total)
            q, e = queries[start:stop], extra[start:stop]
            if stop - start < size:
                q, e = jnp.pad(q, ((0, size - (stop - start)), (0, 0))), np.pad(e, (0, size - (stop - start)))
            out[start:stop] = np.asarray(fn(q, keys, e))[: stop - start]
        return out

    zs, zi = jnp.asarray(z_speech), jnp.asarray(z_image)
    ci = np.asarray(caption_image, np.int32)
    ci_dev = jnp.asarray(ci)
    s2i = chunked(lambda q, k, t: s2i_chunk(q, k, jnp.asarray(t)), zs, ci, zi)
    i2s = chunked(lambda q, c, i: i2s_chunk(q, c, ci_dev, jnp.asarray(i)), zi, np.arange(zi.shape[0], dtype=np.int32),
                  zs)
    return {"speech_to_image": retrieval.summarize_ranks(s2i), "image_to_speech": retrieval.summarize_ranks(i2s)}


def _one(impl, dim, chunk, n_captions, n_images):
    """Runs one implementation in this process and prints one JSON line."""
    import numpy as np
    import jax
    from vgs_jax import retrieval

    rng = np.random.default_rng(0)
    z_image = rng.standard_normal((n_images, dim), dtype=np.float32)
    z_image /= np.linalg.norm(z_image, axis=1, keepdims=True)
    caption_image = np.arange(n_captions) // (n_captions // n_images)
    # Noise of norm ~6 around each image: recall between chance and perfect at E=512.
    noise = rng.standard_normal((n_captions, dim), dtype=np.float32) * (6.0 / np.sqrt(dim))
    z_speech = z_image[caption_image] + noise
    z_speech /= np.linalg.norm(z_speech, axis=1, keepdims=True)
    fn = retrieval.retrieval_metrics if impl == "new" else (
        lambda *a, chunk_size: _old_metrics(*a, chunk_size))
    base = _rss_mb()
    walls = []
    for _ in range(2):
        start = time.perf_counter()
        metrics = fn(z_speech, z_image, caption_image, chunk_size=chunk)
        walls.append(time.perf_counter() - start)
    stats = jax.devices()[0].memory_stats() or {}
    dev_peak = stats.get("peak_bytes_in_use")
    print(json.dumps({
        "wall1_s": walls[0], "wall2_s": walls[1], "delta_MB": _rss_mb() - base,
        "dev_peak_MB": None if dev_peak is None else dev_peak / 2**20, "backend": jax.default_backend(),
        "metrics": metrics,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--captions", type=int, default=25000)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--one", choices=("old", "new"), help=argparse.SUPPRESS)  # internal: one run
    args = parser.parse_args()
    if args.captions % args.images:
        parser.error("--captions must be a multiple of --images (caption c -> image c // k)")
    if args.one:
        _one(args.one, args.dim, args.chunk, args.captions, args.images)
        return

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = {"old": [], "new": []}
    for _ in range(args.repeats):
        for impl in ("old", "new"):
            cmd = [sys.executable, os.path.abspath(__file__), "--one", impl, "--dim", str(args.dim),
                   "--chunk", str(args.chunk), "--captions", str(args.captions), "--images", str(args.images)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                sys.exit(f"{impl} failed:\n{proc.stderr}")
            runs[impl].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    backend = runs["new"][0]["backend"]
    print(f"retrieval_metrics: N={args.captions} captions x M={args.images} images x E={args.dim}, "
          f"chunk={args.chunk}, backend={backend}, medians of {args.repeats} alternating runs")
    header = ("impl", "wall1_s", "wall2_s", "delta_MB", "dev_peak_MB", "R@10 s2i/i2s")
    rows = []
    for impl, rs in runs.items():
        med = lambda key: statistics.median(r[key] for r in rs)
        dev = "n/a" if rs[0]["dev_peak_MB"] is None else f"{med('dev_peak_MB'):.0f}"
        m = rs[0]["metrics"]
        rows.append((impl, f"{med('wall1_s'):.2f}", f"{med('wall2_s'):.2f}", f"{med('delta_MB'):.0f}", dev,
                     f"{m['speech_to_image']['r10']:.4f}/{m['image_to_speech']['r10']:.4f}"))
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(x.rjust(w) for x, w in zip(row, widths)))
    same = runs["old"][0]["metrics"] == runs["new"][0]["metrics"]
    print(f"old and new metrics identical: {same}")


if __name__ == "__main__":
    main()
