"""Paired benchmark harness: ours and a reference implementation of the same work, alternating.

Each side runs in its own child process (`python bench/paired.py --child MODULE:FUNC ...`), so peak
RSS is per implementation and never cumulative. `FUNC(**kwargs)` (in a bench/ module) builds the
work and returns `(info, run)`: `info` a dict (parameter count, compile seconds, ...), `run()` one
timed unit of work (a train step, an embedding pass) returning after its result is on the host. The
parent sends "run" to one side at a time, alternating which goes first in each pair, so both see
the same machine load; the idle side blocks on its stdin. Reported: the median seconds of each side
over the pairs, the median of the per-pair ratios reference / ours (> 1: ours is faster), the same
ratio of the children's CPU seconds (all threads; under a loaded machine this moves far less than
wall time for single-threaded work, and for multi-threaded work it compares CPU spent, not waiting),
and each side's peak RSS. Only NumPy is imported here: the reference side needs neither JAX nor the project.

Thread policy (the same 2 cores for both): XLA's CPU client uses every core; the PyTorch child gets
`torch.set_num_threads(threads)`, OMP_NUM_THREADS and OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads
sleep instead of spinning while the other side runs).
"""
import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)


class Side:
    """One implementation in its own child process, driven over stdin/stdout (one JSON line each)."""

    def __init__(self, name: str, target: str, kwargs: dict, python: str = sys.executable,
                 env: dict | None = None):
        self.name = name
        child_env = dict(os.environ)
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_DIR, child_env.get("PYTHONPATH")) if p)
        child_env.update(env or {})  # an explicit PYTHONPATH here (e.g. another checkout) wins
        self.proc = subprocess.Popen(
            [python, os.path.abspath(__file__), "--child", target, "--kwargs", json.dumps(kwargs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=child_env, cwd=REPO_DIR)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: the child process exited (code {self.proc.wait()}); "
                               "its error is printed above.")
        return json.loads(line)

    def run(self) -> tuple[float, float]:
        """One unit of work: (wall seconds, CPU seconds of the child's threads)."""
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        out = self._read()
        return out["s"], out["cpu_s"]

    def close(self) -> dict:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        out = self._read()
        self.proc.wait()
        return out


def torch_env(threads: int) -> dict:
    """Environment of a PyTorch child: `threads` OpenMP/MKL threads that sleep when idle."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}


def compare(ours: Side, ref: Side, pairs: int) -> dict:
    """Alternate `pairs` runs of each side (ours first in even pairs); medians, ratio, peak RSS."""
    m_ours, m_ref = [], []
    for i in range(pairs):
        if i % 2 == 0:
            m_ours.append(ours.run())
            m_ref.append(ref.run())
        else:
            m_ref.append(ref.run())
            m_ours.append(ours.run())
    rss_ours, rss_ref = ours.close()["peak_rss_mb"], ref.close()["peak_rss_mb"]
    (t_ours, cpu_ours), (t_ref, cpu_ref) = zip(*m_ours), zip(*m_ref)
    return dict(ours_s=statistics.median(t_ours), ref_s=statistics.median(t_ref),
                speedup=statistics.median(r / o for o, r in zip(t_ours, t_ref)),
                cpu_speedup=statistics.median(r / o for o, r in zip(cpu_ours, cpu_ref)),
                ours_min_max=(min(t_ours), max(t_ours)), ref_min_max=(min(t_ref), max(t_ref)),
                ours_rss_mb=rss_ours, ref_rss_mb=rss_ref, rss_ratio=rss_ours / rss_ref,
                ours_info=ours.info, ref_info=ref.info, pairs=pairs)


def load() -> str:
    """The 1/5/15-minute load averages, to print beside every table."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_table(rows: list[dict], unit: str = "s") -> None:
    """Markdown table of `compare` results; rows carry a "measure" label (and optional "scale":
    seconds -> the printed unit, e.g. utterances per second)."""
    print(f"load average (1/5/15 min): {load()}")
    print(f"| measure | ours {unit} | reference {unit} | ours speed-up (median of pair ratios) | "
          "by CPU seconds | ours compile s | ours peak RSS MiB | reference peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        scale = r.get("scale")
        show = (lambda s: f"{scale / s:.1f}") if scale else (lambda s: f"{s:.3f}")
        compile_s = r["ours_info"].get("compile_s")
        compile_text = "none" if compile_s is None else f"{compile_s:.1f}"
        print(f"| {r['measure']} | {show(r['ours_s'])} | {show(r['ref_s'])} | {r['speedup']:.2f}x | "
              f"{r['cpu_speedup']:.2f}x | "
              f"{compile_text} | {r['ours_rss_mb']:.0f} | {r['ref_rss_mb']:.0f} |", flush=True)


def _child(target: str, kwargs: dict) -> None:
    module, func = target.split(":")
    sys.path.insert(0, BENCH_DIR)
    info, run = getattr(importlib.import_module(module), func)(**kwargs)
    out = sys.stdout
    sys.stdout = sys.stderr  # library chatter must not corrupt the protocol
    out.write(json.dumps(info) + "\n")
    out.flush()
    for command in sys.stdin:
        if command.strip() == "quit":
            break
        start, cpu_start = time.perf_counter(), time.process_time()
        run()
        out.write(json.dumps({"s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu_start}) + "\n")
        out.flush()
    out.write(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}) + "\n")
    out.flush()


def random_batch(seed: int, batch: int, frames: int, min_frames: int, num_features: int,
                 image_dim: int) -> dict:
    """The same NumPy batch on both sides: audio [B, T, F] float32 (zero past each length), lengths
    [B] int, mask [B, T] bool, image [B, image_dim] float32."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_frames, frames + 1, size=batch)
    mask = np.arange(frames)[None, :] < lengths[:, None]
    audio = rng.normal(size=(batch, frames, num_features)).astype(np.float32) * mask[..., None]
    image = rng.normal(size=(batch, image_dim)).astype(np.float32)
    return {"audio": audio, "lengths": lengths, "mask": mask, "image": image}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", required=True, help="MODULE:FUNC in bench/ building the work")
    parser.add_argument("--kwargs", default="{}", help="JSON keyword arguments of FUNC")
    args = parser.parse_args()
    _child(args.child, json.loads(args.kwargs))
