"""Whole-process wall time of the binaries on a tiny config: first run vs a second run that finds
the persistent compilation cache (`vgs_jax.cli.enable_compilation_cache`), and with the cache off.

For each round: `python -m vgs_jax.main --config=CONFIG:tiny --workdir=<new>` then
`python -m vgs_jax.evaluate --workdir=<same> --split=test`, start to exit. Rounds: "cold" (empty
cache folder), "warm" (the same folder again, new workdir) and "off"
(VGS_JAX_COMPILATION_CACHE=off), alternating warm/off `--repeats` times after the cold round.
Builds spoken_shapes/tiny into `--data_dir` first if missing (not timed).

Usage: python bench/process_time_bench.py [--config configs/shapes_gru.py] [--repeats 2]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=REPO_DIR, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return time.perf_counter() - start


def one_round(config: str, data_dir: str, cache: str, scratch: str, tag: str) -> tuple[float, float]:
    env = dict(os.environ, VGS_JAX_COMPILATION_CACHE=cache)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    workdir = os.path.join(scratch, f"run_{tag}")
    train = timed([sys.executable, "-m", "vgs_jax.main", f"--config={config}:tiny", f"--workdir={workdir}",
                   f"--config.dataset.data_dir={data_dir}"], env)
    evaluate = timed([sys.executable, "-m", "vgs_jax.evaluate", f"--workdir={workdir}", "--split=test"], env)
    return train, evaluate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/shapes_gru.py")
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "vgs_jax_bench_tfds"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, REPO_DIR)
    from vgs_jax import data_sources
    data_sources.open_split("spoken_shapes/tiny", "train", data_dir=args.data_dir, build_if_missing=True)
    with tempfile.TemporaryDirectory() as scratch:
        cache = os.path.join(scratch, "cache")
        cold = one_round(args.config, args.data_dir, cache, scratch, "cold")
        warm, off = [], []
        for i in range(args.repeats):
            warm.append(one_round(args.config, args.data_dir, cache, scratch, f"warm{i}"))
            off.append(one_round(args.config, args.data_dir, "off", scratch, f"off{i}"))
    print(f"load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"| {args.config}:tiny, whole process | main s | evaluate s |")
    print("| --- | --- | --- |")
    print(f"| first run (empty cache) | {cold[0]:.1f} | {cold[1]:.1f} |")
    for name, rows in (("second run (cache warm)", warm), ("cache off", off)):
        print(f"| {name}, median of {len(rows)} | {statistics.median(r[0] for r in rows):.1f} | "
              f"{statistics.median(r[1] for r in rows):.1f} |")


if __name__ == "__main__":
    main()
