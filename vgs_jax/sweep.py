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

import os

from absl import app
from absl import flags

from vgs_jax import cli
from vgs_jax import skypilot
from vgs_jax import sweep_points
from vgs_jax import sweep_runs

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
        states.append(sweep_runs.run_point(FLAGS.config, point, base, os.path.join(root, name)))
    rows = sweep_runs.summary_rows(names, states, root)
    sweep_runs.write_json(os.path.join(root, "summary.json"), {"config": FLAGS.config, "set": base, "points": rows})
    print(f"\nSweep {root} ({FLAGS.config}), validation speech->image R@10 in %:\n{sweep_runs.format_table(rows)}")
    failed = [r["point"] for r in rows if r["status"] != "done"]
    if failed:
        raise RuntimeError(f"{len(failed)} point(s) did not finish: {', '.join(failed)} (see their output "
                           "above). Run the same command again to retry them; finished points are skipped.")


if __name__ == "__main__":
    cli.run(main)
