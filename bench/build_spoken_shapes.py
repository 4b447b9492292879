"""Builds a spoken_shapes config into a temporary directory and prints a table.

Usage: python bench/build_spoken_shapes.py [--config=small] [--workers=N] [--keep=DIR]
Columns: wall time of download_and_prepare, examples, hours of audio, MB on disk, examples/s.
"""

import argparse
import dataclasses
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tfds_builders import spoken_shapes  # pylint: disable=wrong-import-position


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="small", help="tiny, small or large")
    parser.add_argument("--workers", type=int, default=None,
                        help="override the config's num_workers (0 = in-process)")
    parser.add_argument("--keep", default=None, help="build here instead of a temporary dir")
    args = parser.parse_args()
    configs = {c.name: c for c in spoken_shapes.Builder.BUILDER_CONFIGS}
    if args.config not in configs:
        raise SystemExit(f"Unknown --config={args.config!r}; choose one of {sorted(configs)}.")
    config = configs[args.config]
    if args.workers is not None:
        config = dataclasses.replace(config, num_workers=args.workers)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.keep or tmp
        start = time.perf_counter()
        builder = spoken_shapes.Builder(config=config, data_dir=data_dir)
        builder.download_and_prepare()
        wall = time.perf_counter() - start
        rows = []
        for split in ("train", "validation", "test"):
            src = builder.as_data_source(split=split)
            samples = sum(int(src[i]["audio"].shape[0]) for i in range(len(src)))
            rows.append((split, len(src), samples / spoken_shapes.speech.SAMPLE_RATE / 3600))
        files = pathlib.Path(builder.data_dir).rglob("*")
        size = sum(f.stat().st_size for f in files if f.is_file())
    total = sum(r[1] for r in rows)
    print(f"spoken_shapes/{config.name}: num_workers={config.num_workers}, "
          f"cpu_count={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    print("| split | examples | hours of audio |")
    print("| --- | --- | --- |")
    for split, n, hours in rows:
        print(f"| {split} | {n} | {hours:.2f} |")
    print()
    print("| wall time (s) | examples | hours of audio | MB on disk | examples/s |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {wall:.1f} | {total} | {sum(r[2] for r in rows):.2f} | {size / 1e6:.1f} | "
          f"{total / wall:.1f} |")


if __name__ == "__main__":
    main()
