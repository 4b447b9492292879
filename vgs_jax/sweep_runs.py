"""Local sweep runs: each point trains as `python -m vgs_jax.main` in its own workdir.

A point's state (overrides, status, exit code, wall seconds) is kept in `<workdir>/sweep_point.json`
so a second sweep call skips finished points and resumes interrupted ones; `summary_rows` and
`format_table` turn the runs' metrics.jsonl into the sweep's summary.
"""

import json
import math
import os
import subprocess
import sys
import time

from vgs_jax import sweep_points

STATE_FILE = "sweep_point.json"  # per point: overrides, status, exit code, wall seconds so far


def _read_state(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_json(path: str, data: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def best_validation(workdir: str) -> dict:
    """{"best_r10", "best_step", "last_step"} from the run's metrics.jsonl (None where absent)."""
    best, best_step, last = -math.inf, None, None
    path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                last = max(last or 0, record.get("step", 0))
                r10 = record.get("eval/speech_to_image_r10")
                if r10 is not None and r10 > best:
                    best, best_step = r10, record["step"]
    return {"best_r10": None if best_step is None else best, "best_step": best_step, "last_step": last}


def run_point(config: str, point: dict, base: dict, workdir: str) -> dict:
    """Trains (or resumes) one point in `workdir` with `python -m vgs_jax.main`; returns its state.
    A point already marked done is skipped. Ctrl-C reaches the run too (it saves a checkpoint);
    the sweep then stops and the next call resumes it."""
    os.makedirs(workdir, exist_ok=True)
    state_path = os.path.join(workdir, STATE_FILE)
    state = _read_state(state_path)
    if state.get("status") == "done":
        return state
    command = [sys.executable, "-m", "vgs_jax.main", f"--config={config}", f"--workdir={workdir}",
               *sweep_points.override_flags({**base, **point})]
    print(f"\n=== {os.path.basename(workdir)}: {' '.join(command[3:])}", flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(command)
    try:
        process.wait()
    except KeyboardInterrupt:
        process.wait()  # the run got the Ctrl-C too and is saving its checkpoint
        raise
    finally:
        code = process.wait()
        status = "done" if code == 0 else "interrupted" if code < 0 or code >= 128 else "failed"
        state = {"overrides": point, "wall_s": state.get("wall_s", 0.0) + time.perf_counter() - start,
                 "status": status, "exit_code": code}
        write_json(state_path, state)
    return state


def summary_rows(names: list[str], states: list[dict], root: str) -> list[dict]:
    return [{"point": name, **best_validation(os.path.join(root, name)), "wall_s": state.get("wall_s"),
             "status": state.get("status", "not run")} for name, state in zip(names, states)]


def format_table(rows: list[dict]) -> str:
    """The summary table: one line per point; the best R@10 marked with '*'."""
    scores = [r["best_r10"] for r in rows if r["best_r10"] is not None]
    top = max(scores) if scores else None
    width = max(len("point"), *(len(r["point"]) for r in rows))
    lines = [f"{'point':<{width}}  best R@10  step  steps  wall s  status"]
    for r in rows:
        r10 = "-" if r["best_r10"] is None else f"{100 * r['best_r10']:.1f}" + ("*" if r["best_r10"] == top else " ")
        wall = "-" if r["wall_s"] is None else f"{r['wall_s']:.0f}"
        lines.append(f"{r['point']:<{width}}  {r10:>9}  {r['best_step'] or '-':>4}  {r['last_step'] or '-':>5}"
                     f"  {wall:>6}  {r['status']}")
    return "\n".join(lines)
