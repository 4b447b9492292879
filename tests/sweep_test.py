"""`python -m vgs_jax.sweep`: a two-point local sweep of shapes_gru:tiny (summary, skipping finished
points, resuming an interrupted one) and SkyPilot task YAML checked by SkyPilot's own schema."""

import json
import os
import shutil
import stat
import subprocess
import sys

import jax
import jsonschema
import numpy as np
import pytest
import yaml

from vgs_jax import checkpointing
from vgs_jax import skypilot
from vgs_jax import sweep_points
from vgs_jax import sweep_runs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 3 steps per point: checkpoints at 2 and 3, validation at 3; one padded length (one compilation).
SHORT = ["--set=num_train_steps=3", "--set=checkpoint_every_steps=2", "--set=eval_every_steps=3",
         "--set=log_every_steps=1", "--set=features.bucket_boundaries=(512,)"]
POINTS = ["optimizer.lr_max=0.001", "optimizer.lr_max=0.003"]
# SkyPilot 0.14.1's task and resources JSON schemas (sky.utils.schemas), which `sky launch` checks.
SCHEMA = os.path.join(REPO, "tests", "data", "skypilot_task_schema.json")


def _sweep(*args, env):
    done = subprocess.run([sys.executable, "-m", "vgs_jax.sweep", "--config=configs/shapes_gru.py:tiny,v1", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return done


@pytest.fixture
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=REPO, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env


def _table(stdout: str) -> dict[str, list[str]]:
    rows = stdout[stdout.index("best R@10"):].splitlines()[1:]
    return {row.split()[0]: row.split()[1:] for row in rows if row.strip()}


def test_local_sweep_summarises_skips_and_resumes(shapes_data_dir, tmp_path, env):
    root = str(tmp_path / "sweep")
    args = [f"--workdir={root}", f"--set=dataset.data_dir={shapes_data_dir}", *SHORT]
    done = _sweep(*args, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    table = _table(done.stdout)
    assert sorted(table) == POINTS
    for name in POINTS:
        metrics = [json.loads(line) for line in open(os.path.join(root, name, "metrics.jsonl"))]
        r10 = [m["eval/speech_to_image_r10"] for m in metrics if "eval/speech_to_image_r10" in m]
        best_r10, best_step, steps, wall, status = table[name]
        assert float(best_r10.rstrip("*")) == pytest.approx(100 * max(r10), abs=0.05)
        assert (best_step, steps, status) == ("3", "3", "done") and float(wall) > 0
        with open(os.path.join(root, name, "config.json")) as f:
            assert f"optimizer.lr_max={json.load(f)['optimizer']['lr_max']}" == name
    summary = json.load(open(os.path.join(root, "summary.json")))
    assert [p["point"] for p in summary["points"]] == POINTS

    # The second point was interrupted after its step-2 checkpoint: the next call skips the first
    # and resumes the second, ending with the same parameters.
    second = os.path.join(root, POINTS[1])
    shutil.copytree(second, str(tmp_path / "finished"))
    for folder in ("checkpoints", "checkpoints_best"):
        shutil.rmtree(os.path.join(second, folder, "3"))
    state = json.load(open(os.path.join(second, sweep_runs.STATE_FILE)))
    json.dump({**state, "status": "interrupted", "exit_code": 143}, open(os.path.join(second, sweep_runs.STATE_FILE), "w"))
    done = _sweep(*args, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"=== {POINTS[0]}" not in done.stdout and f"=== {POINTS[1]}" in done.stdout
    assert "Resumed from step 2" in done.stdout
    again = _table(done.stdout)
    assert again[POINTS[0]] == table[POINTS[0]]
    assert float(again[POINTS[1]][3]) > float(table[POINTS[1]][3])  # wall time adds up over attempts
    with checkpointing.Checkpointer(second, read_only=True) as a, \
            checkpointing.Checkpointer(str(tmp_path / "finished"), read_only=True) as b:
        jax.tree.map(np.testing.assert_array_equal, a.restore_params("latest"), b.restore_params("latest"))


def test_skypilot_specs_pass_skypilots_schema_and_run_script(tmp_path):
    out = tmp_path / "specs"
    done = subprocess.run([sys.executable, "-m", "vgs_jax.sweep", "--config=configs/shapes_gru.py:tiny,v1",
                           "--workdir=/runs/sweep", "--launcher=skypilot", f"--out={out}", "--num_nodes=2",
                           "--accelerators=H100:8", "--use_spot", "--mount_source=gs://bucket/sweep",
                           "--set=dataset.data_dir=/data/tfds"], cwd=REPO, env={**os.environ, "PYTHONPATH": REPO},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    files = sorted(os.listdir(out))
    assert files == ["vgs-optimizer-lr-max-0-001.yaml", "vgs-optimizer-lr-max-0-003.yaml"]
    schema = json.load(open(SCHEMA))
    # A stand-in `python` that prints its arguments, to run the task's `run` script as node 1 would.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (bin_dir / "python").chmod(stat.S_IRWXU)
    for name, lr in zip(files, ("0.001", "0.003")):
        task = yaml.safe_load((out / name).read_text())
        jsonschema.validate(task, schema["task"])
        jsonschema.validate(task["resources"], schema["resources"])
        assert task["num_nodes"] == 2 and task["resources"] == {"accelerators": "H100:8", "use_spot": True}
        assert task["file_mounts"] == {"/runs/sweep": {"source": "gs://bucket/sweep", "mode": "MOUNT"}}
        node = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SKYPILOT_NODE_IPS": "10.0.0.7\n10.0.0.8",
                "SKYPILOT_NUM_NODES": "2", "SKYPILOT_NODE_RANK": "1"}
        ran = subprocess.run(["bash", "-c", task["run"]], env=node, capture_output=True, text=True, timeout=30)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.split("\n")[:-1] == [
            "-m", "vgs_jax.main", "--config=configs/shapes_gru.py:tiny,v1", "--config.dataset.data_dir=/data/tfds",
            f"--config.optimizer.lr_max={lr}", f"--workdir=/runs/sweep/optimizer.lr_max={lr}",
            "--coordinator_address=10.0.0.7:12355", "--num_processes=2", "--process_id=1"]
        try:
            import sky  # pylint: disable=import-outside-toplevel
        except ImportError:
            continue
        parsed = sky.Task.from_yaml(str(out / name))
        assert parsed.num_nodes == 2


def test_single_node_task_has_no_multiprocess_flags():
    text = skypilot.task_yaml("vgs-a", ["--config=c.py"], workdir="/runs/a", accelerators="tpu-v5e-8")
    task = yaml.safe_load(text)
    jsonschema.validate(task, json.load(open(SCHEMA))["task"])
    assert "coordinator_address" not in task["run"] and "file_mounts" not in task
    assert task["run"] == "set -e\npython -m vgs_jax.main \\\n  --config=c.py \\\n  --workdir=/runs/a\n"


@pytest.mark.parametrize("points,message", [
    ([], "non-empty list"),
    ([{"optimizer.lr_max": 1e-3}, {"optimizer.lr_max": 1e-3}], "Points 0 and 1 .* are the same"),
    (["lr=1"], "Point 0 .* must be a dict"),
])
def test_malformed_sweeps_are_named(points, message):
    with pytest.raises(ValueError, match=message):
        sweep_points.check_points(points, "test.json")


def test_unknown_field_of_a_point_is_named_before_anything_runs(tmp_path):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps([{"optimizer.lr_max": 1e-3}, {"optimizer.lr_maxx": 1e-3}]))
    points = sweep_points.load_points("configs/shapes_gru.py:tiny,v1", str(path))
    with pytest.raises(ValueError, match=r"Sweep point 1 \(optimizer.lr_maxx=0.001\): cannot set config field "
                                         "'optimizer.lr_maxx'"):
        sweep_points.check_against_config("configs/shapes_gru.py:tiny,v1", points, {})


def test_point_names_and_flag_values():
    assert sweep_points.point_name({}) == "base"
    assert sweep_points.point_name({"features.bucket_boundaries": (512,), "loss.name": "info nce"}) == \
        "features.bucket_boundaries=512,loss.name=info_nce"
    assert sweep_points.point_name({"features.bucket_boundaries": [256, 512]}) == "features.bucket_boundaries=256-512"
    long_name = sweep_points.point_name({f"field{i}": i for i in range(40)})
    assert len(long_name) == sweep_points.MAX_NAME
    assert sweep_points.override_flags({"a.b": True, "c": (1, 2), "d": 0.5}) == [
        "--config.a.b=true", "--config.c=(1, 2)", "--config.d=0.5"]
    assert sweep_points.parse_set(["dataset.data_dir=/x", "batch_size=64"]) == {"dataset.data_dir": "/x",
                                                                                "batch_size": 64}
    assert skypilot.task_name("optimizer.lr_max=0.001") == "vgs-optimizer-lr-max-0-001"
    assert len(skypilot.task_name("x" * 200)) <= 63
