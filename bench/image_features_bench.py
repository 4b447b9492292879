"""Speed of ten-crop image feature extraction (vgs_jax.extract_image_features): images / second.

    .venv/bin/python bench/image_features_bench.py [--models resnet152,vgg16] [--images 2] [--repeats 2]

For each model (random init, no weights file): host preprocessing (RGB, Resize(256), TenCrop(224)) of
`images` random 320 x 480 uint8 images, then the jit-compiled model on the 10 x `images` crops and the
mean over crops, exactly as the extractor runs it. Median of `repeats` timed steps after one compile
step (compile time reported separately). Prints one table; no assertions.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from vgs_jax import extract_image_features as ex  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet152,vgg16", help="comma-separated --model names")
    parser.add_argument("--images", type=int, default=2, help="images per step (x10 crops)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (320, 480, 3), dtype=np.uint8) for _ in range(args.images)]
    print(f"backend {jax.default_backend()} ({jax.device_count()} devices; the model runs on one), "
          f"{args.images} images of 320x480 -> 10 crops of 224x224 each, median of {args.repeats}")
    print(f"{'model':<10} {'dim':>5} {'prep s':>8} {'model s':>8} {'img/s':>8} {'crops/s':>8} {'compile s':>10}")
    for name in args.models.split(","):
        embed = ex.make_embed_fn(ex.check_model(name).build(nnx.Rngs(0)))

        def step():
            t0 = time.perf_counter()
            crops = np.stack([ex.preprocess(img) for img in images])
            t1 = time.perf_counter()
            out = ex.ten_crop_mean(embed, crops)
            return t1 - t0, time.perf_counter() - t1, out

        _, first_model, out = step()
        prep, model = zip(*[step()[:2] for _ in range(args.repeats)])
        prep_s, model_s = float(np.median(prep)), float(np.median(model))
        total = prep_s + model_s
        print(f"{name:<10} {out.shape[1]:>5} {prep_s:8.3f} {model_s:8.3f} {args.images / total:8.2f} "
              f"{10 * args.images / total:8.1f} {max(first_model - model_s, 0.0):10.1f}")


if __name__ == "__main__":
    main()
