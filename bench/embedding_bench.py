"""Speech embedding throughput of the shapes_gru speech tower, vgs_jax vs PyTorch, alternating pairs.

The tower of `configs/shapes_gru.py` (conv 39 -> 64 kernel 6 stride 3, 2 BiGRU layers x 128/dir,
vectorial attention 64; the PyTorch twin is `bench/torch_platalea.py`, same parameter count,
asserted) embeds `--captions` synthetic 39-d MFCC sequences of 100-250 frames (1-2.5 s, like
spoken_shapes captions) in eval mode, in batches of 64 in a fixed order, each padded to its longest
utterance rounded up to 50 frames (so ours compiles a few shapes, once, before timing: reported as
compile s). One run = every caption embedded, result on the host. Each side in its own process
(`bench/paired.py`), PyTorch with 2 threads.

Usage: python bench/embedding_bench.py [--captions 2500] [--pairs 5]
"""
import argparse
import os
import sys
import time

import numpy as np

from paired import REPO_DIR, Side, compare, print_table, torch_env

NUM_FEATURES = 39


def make_batches(count: int, batch: int, seed: int = 0, min_frames: int = 100, max_frames: int = 250,
                 bucket: int = 50) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(audio [b, T, 39] float32 zero-padded, lengths [b] int64)], T = longest rounded up to `bucket`."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_frames, max_frames + 1, size=count)
    out = []
    for start in range(0, count, batch):
        lens = lengths[start:start + batch]
        frames = -(-int(lens.max()) // bucket) * bucket
        mask = np.arange(frames)[None, :] < lens[:, None]
        audio = rng.normal(size=(len(lens), frames, NUM_FEATURES)).astype(np.float32) * mask[..., None]
        out.append((audio, lens.astype(np.int64)))
    return out


def speech_config() -> dict:
    """configs/shapes_gru.py's speech tower fields."""
    sys.path.insert(0, REPO_DIR)
    from vgs_jax import config_lib
    return config_lib.load_config(os.path.join(REPO_DIR, "configs", "shapes_gru.py")).model.speech.to_dict()


def embedding_work(speech: dict, batches: dict, seed: int = 0):
    """(info, run) of our jitted speech tower for `bench/paired.py`."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from vgs_jax.models import registry

    encoder = registry.build_speech_encoder("platalea_gru", speech, NUM_FEATURES, rngs=nnx.Rngs(seed))
    graphdef, state = nnx.split(encoder)
    embed = jax.jit(lambda s, x, m: nnx.merge(graphdef, s)(x, m))
    data = [(jnp.asarray(a), jnp.asarray(np.arange(a.shape[1])[None, :] < n[:, None]))
            for a, n in make_batches(**batches)]

    def run():
        for audio, mask in data:
            np.asarray(embed(state, audio, mask))

    start = time.perf_counter()
    run()  # compiles every batch shape
    params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(encoder, nnx.Param)))
    return {"params": params, "compile_s": time.perf_counter() - start}, run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", type=int, default=2500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torch_python", default=sys.executable)
    args = parser.parse_args()
    speech = speech_config()
    batches = dict(count=args.captions, batch=args.batch)
    ours = Side("vgs_jax", "embedding_bench:embedding_work", dict(speech=speech, batches=batches))
    ref = Side("pytorch", "torch_platalea:embedding_work", dict(speech=speech, batches=batches, threads=args.threads),
               python=args.torch_python, env=torch_env(args.threads))
    if ours.info["params"] != ref.info["params"]:
        raise AssertionError(f"speech tower parameter counts differ: vgs_jax {ours.info['params']}, "
                             f"PyTorch {ref.info['params']}")
    ref.run()  # warm-up
    row = compare(ours, ref, args.pairs)
    row.update(measure=f"embedding {args.captions} captions, shapes_gru speech tower "
                       f"({ours.info['params'] / 1e6:.3f} M params), batch {args.batch}", scale=args.captions)
    print_table([row], unit="utt/s")


if __name__ == "__main__":
    main()
