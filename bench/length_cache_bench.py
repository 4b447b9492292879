"""Start-up cost of the utterance-length pass: decoding every waveform vs reading the cache.

Usage:
  python bench/length_cache_bench.py --data_dir=~/tensorflow_datasets --dataset=spoken_shapes/small

Removes the split's cache files first (beside the dataset), then times `example_lengths` twice:
the decoding pass that writes the cache, and the cached read a later start does.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vgs_jax import data_sources  # noqa: E402
from vgs_jax import length_cache  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", required=True)
    p.add_argument("--dataset", default="spoken_shapes/small")
    p.add_argument("--splits", default="train,validation")
    args = p.parse_args()
    print(f"{'split':>10} | {'examples':>8} | {'decode pass s':>13} | {'us/example':>10} | {'cached read s':>13}")
    data_dir = os.path.expanduser(args.data_dir)
    for split in args.splits.split(","):
        source = data_sources.open_split(args.dataset, split, data_dir=data_dir)
        folder = os.fspath(source.dataset_info.data_dir)
        for name in os.listdir(folder):
            if name.startswith(f"{length_cache.PREFIX}.{split}."):
                os.remove(os.path.join(folder, name))
        t0 = time.perf_counter()
        lengths = data_sources.example_lengths(source)
        t_decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        cached = data_sources.example_lengths(data_sources.open_split(args.dataset, split, data_dir=data_dir))
        t_cached = time.perf_counter() - t0
        assert (cached == lengths).all()
        print(f"{split:>10} | {len(source):>8} | {t_decode:>13.2f} | {1e6 * t_decode / len(source):>10.0f} | "
              f"{t_cached:>13.3f}")


if __name__ == "__main__":
    main()
