"""Time and peak memory of `vgs_jax.retrieval.retrieval_metrics` at SpokenCOCO test size.

Random L2-normalised embeddings: N = 25 000 captions x M = 5 000 images (caption c belongs
to image c // 5), for each embedding size E and chunk size. Each configuration runs in
its own subprocess so that peak RSS (resource.getrusage ru_maxrss, which only grows)
belongs to that configuration alone. Printed columns:

  E, chunk     embedding size and `chunk_size`
  wall1_s      first retrieval_metrics call, jit compilation included
  wall2_s      second identical call (compiled; its result must equal the first)
  rss_base_MB  peak RSS after creating the embeddings and importing JAX, before the call
  rss_peak_MB  peak RSS at the end of both calls
  delta_MB     rss_peak - rss_base: memory the calls themselves needed (host; on a CPU
               backend this includes XLA's buffers)
  dev_peak_MB  accelerator peak bytes in use (GPU/TPU memory_stats), "n/a" on CPU
  full_MB      size of the N x M float32 score matrix that chunking avoids

Usage: python bench/retrieval_bench.py [--dims 512,2048] [--chunks 512,2048]
       [--captions 25000] [--images 5000]
"""

import argparse
import json
import os
import subprocess
import sys
import time


def _rss_mb():
    import resource
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024.0


def _one(dim, chunk, n_captions, n_images):
    """Runs one configuration in this process and prints one JSON line."""
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
    base = _rss_mb()
    start = time.perf_counter()
    metrics = retrieval.retrieval_metrics(z_speech, z_image, caption_image, chunk_size=chunk)
    wall = time.perf_counter() - start
    start = time.perf_counter()
    again = retrieval.retrieval_metrics(z_speech, z_image, caption_image, chunk_size=chunk)
    wall2 = time.perf_counter() - start
    if again != metrics:
        raise RuntimeError(f"two identical calls disagree: {metrics} vs {again}")
    peak = _rss_mb()
    stats = jax.devices()[0].memory_stats() or {}
    dev_peak = stats.get("peak_bytes_in_use")
    print(json.dumps({
        "E": dim, "chunk": chunk, "wall_s": wall, "wall2_s": wall2, "rss_base_MB": base, "rss_peak_MB": peak,
        "dev_peak_MB": None if dev_peak is None else dev_peak / 2**20,
        "backend": jax.default_backend(),
        "r10_s2i": metrics["speech_to_image"]["r10"],
        "r10_i2s": metrics["image_to_speech"]["r10"],
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="512,2048")
    parser.add_argument("--chunks", default="512,2048")
    parser.add_argument("--captions", type=int, default=25000)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--one", nargs=2, type=int, metavar=("E", "CHUNK"),
                        help=argparse.SUPPRESS)  # internal: run one config
    args = parser.parse_args()
    if args.captions % args.images:
        parser.error("--captions must be a multiple of --images (caption c -> image c // k)")
    if args.one:
        _one(args.one[0], args.one[1], args.captions, args.images)
        return

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_mb = args.captions * args.images * 4 / 2**20
    header = ("E", "chunk", "wall1_s", "wall2_s", "rss_base_MB", "rss_peak_MB", "delta_MB",
              "dev_peak_MB", "full_MB", "R@10 s2i/i2s")
    rows = []
    for dim in [int(x) for x in args.dims.split(",")]:
        for chunk in [int(x) for x in args.chunks.split(",")]:
            cmd = [sys.executable, os.path.abspath(__file__), "--one", str(dim), str(chunk),
                   "--captions", str(args.captions), "--images", str(args.images)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                sys.exit(f"configuration E={dim} chunk={chunk} failed:\n{proc.stderr}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            dev = "n/a" if r["dev_peak_MB"] is None else f"{r['dev_peak_MB']:.0f}"
            rows.append((str(dim), str(chunk), f"{r['wall_s']:.2f}", f"{r['wall2_s']:.2f}",
                         f"{r['rss_base_MB']:.0f}",
                         f"{r['rss_peak_MB']:.0f}", f"{r['rss_peak_MB'] - r['rss_base_MB']:.0f}",
                         dev, f"{full_mb:.0f}", f"{r['r10_s2i']:.3f}/{r['r10_i2s']:.3f}"))
            backend = r["backend"]
    print(f"retrieval_metrics: N={args.captions} captions x M={args.images} images, "
          f"backend={backend}")
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(x.rjust(w) for x, w in zip(row, widths)))


if __name__ == "__main__":
    main()
