"""Builds a spoken_shapes config into a temporary directory and prints a table.

Usage: python bench/build_spoken_shapes.py [--config=small] [--version=2.0.0] [--workers=N]
    [--num_train=N] [--keep=DIR]
Columns: wall time of download_and_prepare, examples, hours of audio, MB on disk, examples/s,
and CPU ms per example of this (main) process and of the generation workers (their children
included): unlike wall time, these do not depend on how loaded the machine is.
"""

import argparse
import dataclasses
import os
import pathlib
import resource
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
    parser.add_argument("--version", default=None, help="e.g. 1.0.0 or 2.0.0 (default: VERSION)")
    parser.add_argument("--num_train", type=int, default=None,
                        help="override the config's train images (a shorter measurement)")
    args = parser.parse_args()
    configs = {c.name: c for c in spoken_shapes.Builder.BUILDER_CONFIGS}
    if args.config not in configs:
        raise SystemExit(f"Unknown --config={args.config!r}; choose one of {sorted(configs)}.")
    config = configs[args.config]
    if args.workers is not None:
        config = dataclasses.replace(config, num_workers=args.workers)
    if args.num_train is not None:
        config = dataclasses.replace(config, name=f"{config.name}_{args.num_train}",
                                     num_train=args.num_train)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.keep or tmp
        start, cpu_start = time.perf_counter(), time.process_time()
        builder = spoken_shapes.Builder(config=config, data_dir=data_dir, version=args.version)
        builder.download_and_prepare()
        wall = time.perf_counter() - start
        main_cpu = time.process_time() - cpu_start
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        rows = []
        for split in builder.info.splits:
            src = builder.as_data_source(split=split)
            samples = sum(int(src[i]["audio"].shape[0]) for i in range(len(src)))
            rows.append((split, len(src), samples / spoken_shapes.speech.SAMPLE_RATE / 3600))
        files = pathlib.Path(builder.data_dir).rglob("*")
        size = sum(f.stat().st_size for f in files if f.is_file())
    total = sum(r[1] for r in rows)
    print(f"spoken_shapes/{config.name}:{builder.version}: num_workers={config.num_workers}, "
          f"cpu_count={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    print("| split | examples | hours of audio |")
    print("| --- | --- | --- |")
    for split, n, hours in rows:
        print(f"| {split} | {n} | {hours:.2f} |")
    print()
    worker_cpu = children.ru_utime + children.ru_stime
    print("| wall time (s) | examples | hours of audio | MB on disk | examples/s "
          "| main CPU ms/example | worker CPU ms/example |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {wall:.1f} | {total} | {sum(r[2] for r in rows):.2f} | {size / 1e6:.1f} | "
          f"{total / wall:.1f} | {1000 * main_cpu / total:.1f} | {1000 * worker_cpu / total:.1f} |")


if __name__ == "__main__":
    main()
