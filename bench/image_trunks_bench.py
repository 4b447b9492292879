"""Speed of the pixel image trunks (VGG16Trunk, ResNet50Trunk): images / second.

    .venv/bin/python bench/image_trunks_bench.py [--size 112] [--batch 4] [--repeats 3]

For each trunk: `nnx.jit`-compiled eval forward, and a train step body (train-mode forward +
gradient of a squared-output loss w.r.t. all parameters), on random uint8 images [batch, size,
size, 3] on the default backend. Median of `repeats` timed calls after one compile call (compile
time reported separately). Prints one table; no assertions.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from vgs_jax.models import image_trunks  # noqa: E402


@nnx.jit
def _eval_forward(model, images):
    return model(images)[0]


@nnx.jit
def _train_grad(model, images):
    def loss(m):
        return jnp.mean(m(images)[0] ** 2)

    return nnx.grad(loss)(model)


def _time(fn, repeats: int) -> tuple[float, float, jax.Array]:
    start = time.perf_counter()
    result = jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    steady = float(np.median(times))
    return steady, max(first - steady, 0.0), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=112, help="image height = width in pixels")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (args.batch, args.size, args.size, 3),
                                                           dtype=np.uint8))
    print(f"backend {jax.default_backend()}, images [{args.batch}, {args.size}, {args.size}, 3] uint8, "
          f"median of {args.repeats}")
    print(f"{'trunk':<10} {'mode':<12} {'output':<18} {'s/call':>8} {'img/s':>8} {'compile s':>10}")
    for name, cls in (("vgg16", image_trunks.VGG16Trunk), ("resnet50", image_trunks.ResNet50Trunk)):
        model = cls(out_features=1024, rngs=nnx.Rngs(0))
        out_shape = None
        for mode in ("eval fwd", "train grad"):
            if mode == "eval fwd":
                model.eval()
                steady, compile_s, out = _time(lambda: _eval_forward(model, images), args.repeats)
                out_shape = tuple(out.shape)
            else:
                model.train()
                steady, compile_s, _ = _time(lambda: _train_grad(model, images), args.repeats)
            print(f"{name:<10} {mode:<12} {str(out_shape):<18} {steady:8.3f} {args.batch / steady:8.1f} "
                  f"{compile_s:10.1f}")


if __name__ == "__main__":
    main()
