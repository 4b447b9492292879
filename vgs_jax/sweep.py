"""Runs a sweep of one config: `python -m vgs_jax.sweep --config=CONFIG --workdir=DIR`.

The points are the config file's `get_sweep()` (or `--sweep_file`; see `vgs_jax.sweep_points`).
Locally (default) they train one after another, each as `python -m vgs_jax.main` in
`DIR/<point name>`; a second call skips finished points and resumes an interrupted one from its
checkpoint. At the end a table lists per point the best validation speech->image R@10, its step,
the steps trained and the wall time (also written to `DIR/summary.json`).
`--launcher=skypilot --out=SPECS` writes one SkyPilot task YAML per point instead (`sky launch
SPECS/<name>.yaml`; `--num_nodes`, `--accelerators`, ...; see `vgs_jax.skypilot`).
`--set=FIELD=VALUE` (repeatable) applies to every point, e.g. `--set=dataset.data_dir=/data`.
"""

import json
import math
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

from vgs_jax import cli
from vgs_jax import skypilot
from vgs_jax import sweep_points

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "Config file with a get_sweep(), e.g. configs/shapes_gru.py:tiny.")
flags.DEFINE_string("workdir", None, "Folder of the sweep: one sub-folder per point.")
flags.DEFINE_string("sweep_file", None, "Points from this JSON list (or .py with get_sweep()) instead.")
flags.DEFINE_multi_string("set", [], "FIELD=VALUE for every point, e.g. --set=dataset.data_dir=/data.")
flags.DEFINE_enum("launcher", "local", ["local", "skypilot"], "Run here, or write SkyPilot task YAML.")
flags.DEFINE_string("out", None, "--launcher=skypilot: folder for the task YAML files.")
flags.DEFINE_integer("num_nodes", 1, "--launcher=skypilot: nodes per run (one JAX process each).")
flags.DEFINE_string("accelerators", None, "--launcher=skypilot: e.g. H100:8 or tpu-v5e-16.")
flags.DEFINE_string("cloud", None, "--launcher=skypilot: e.g. gcp, aws (default: SkyPilot chooses).")
flags.DEFINE_bool("use_spot", False, "--launcher=skypilot: spot instances (runs resume on relaunch).")
flags.DEFINE_string("mount_source", None, "--launcher=skypilot: bucket mounted at --workdir on every node "
                    "(e.g. gs://bucket/sweep), so all nodes and relaunches share the runs' workdirs.")
flags.mark_flags_as_required(["config", "workdir"])

STATE_FILE = "sweep_point.json"  # per point: overrides, status, exit code, wall seconds so far


def _read_state(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_json(path: str, data: dict) -> None:
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
        _write_json(state_path, state)
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


def write_specs(names: list[str], points: list[dict], base: dict) -> list[str]:
    """One SkyPilot task YAML per point in --out; returns their paths."""
    if not FLAGS.out:
        raise app.UsageError("--launcher=skypilot needs --out=FOLDER for the task YAML files.")
    if not FLAGS.workdir.startswith("/"):
        raise app.UsageError(f"--workdir={FLAGS.workdir}: with --launcher=skypilot give an absolute path on the "
                             "nodes, e.g. /runs/sweep (with --mount_source=gs://BUCKET/sweep mounted there).")
    if FLAGS.num_nodes > 1 and not FLAGS.mount_source:
        raise app.UsageError(f"--num_nodes={FLAGS.num_nodes}: the nodes write one checkpoint together, so "
                             "--workdir must be shared: give --mount_source=gs://BUCKET/PATH (or s3://...).")
    mounts = {FLAGS.workdir.rstrip("/"): FLAGS.mount_source} if FLAGS.mount_source else None
    os.makedirs(FLAGS.out, exist_ok=True)
    paths, tasks = [], {}
    for name, point in zip(names, points):
        task = skypilot.task_name(name)
        if task in tasks:
            raise ValueError(f"Points {tasks[task]} and {name} get the same SkyPilot task name {task}; "
                             "make their overrides differ in more than punctuation.")
        tasks[task] = name
        text = skypilot.task_yaml(
            task, [f"--config={FLAGS.config}", *sweep_points.override_flags({**base, **point})],
            workdir=f"{FLAGS.workdir.rstrip('/')}/{name}", num_nodes=FLAGS.num_nodes,
            accelerators=FLAGS.accelerators, cloud=FLAGS.cloud, use_spot=FLAGS.use_spot,
            mounts=mounts)
        paths.append(os.path.join(FLAGS.out, f"{task}.yaml"))
        with open(paths[-1], "w") as f:
            f.write(text)
    return paths


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    base = sweep_points.parse_set(FLAGS.set)
    points = sweep_points.load_points(FLAGS.config, FLAGS.sweep_file)
    sweep_points.check_against_config(FLAGS.config, points, base)
    names = [sweep_points.point_name(p) for p in points]
    if FLAGS.launcher == "skypilot":
        paths = write_specs(names, points, base)
        print(f"Wrote {len(paths)} SkyPilot task(s); launch each with `sky launch -c NAME FILE` "
              f"(or `sky jobs launch FILE`):\n" + "\n".join(paths))
        return
    root = os.path.abspath(FLAGS.workdir)
    os.makedirs(root, exist_ok=True)
    states = []
    for name, point in zip(names, points):
        states.append(run_point(FLAGS.config, point, base, os.path.join(root, name)))
    rows = summary_rows(names, states, root)
    _write_json(os.path.join(root, "summary.json"), {"config": FLAGS.config, "set": base, "points": rows})
    print(f"\nSweep {root} ({FLAGS.config}), validation speech->image R@10 in %:\n{format_table(rows)}")
    failed = [r["point"] for r in rows if r["status"] != "done"]
    if failed:
        raise RuntimeError(f"{len(failed)} point(s) did not finish: {', '.join(failed)} (see their output "
                           "above). Run the same command again to retry them; finished points are skipped.")


if __name__ == "__main__":
    cli.run(main)
