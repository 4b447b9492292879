"""Two JAX processes (CPU, gloo collectives, 2 devices each) train one tiny model with
`python -m vgs_jax.main --coordinator_address=... --num_processes=2 --process_id=I`: the loss is the
global batch's, one checkpoint is written from both, a restart from it reproduces the uninterrupted
run bit for bit, and the single-process `evaluate` binary reads the result."""

import json
import os
import shutil
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from vgs_jax import checkpointing
from vgs_jax import distributed
from vgs_jax import input_pipeline
from vgs_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 3 steps (the fewest with a resume point after a step of nonzero learning rate: the warm-up's
# step 1 has lr 0), every loss logged, checkpoints at 2 and 3, validation (and best checkpoint) at 3
# only; one padded length (one compilation of the step).
SHORT = ["--config.num_train_steps=3", "--config.log_every_steps=1", "--config.checkpoint_every_steps=2",
         "--config.eval_every_steps=100", "--config.features.bucket_boundaries=(512,)"]


@pytest.fixture
def env(tmp_path):
    """Subprocess environment: CPU, and a persistent compilation cache the launches share."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PYTHONPATH=REPO, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return env


def _with_devices(env: dict, devices: int) -> dict:
    return {**env, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _train_two_processes(env: dict, data_dir: str, workdir: str, logs: str) -> list[str]:
    """Runs the 2-process training to the end; returns each process's output."""
    address = f"localhost:{_free_port()}"
    command = [sys.executable, "-m", "vgs_jax.main", "--config=configs/shapes_gru.py:tiny,v1", f"--workdir={workdir}",
               f"--config.dataset.data_dir={data_dir}", *SHORT, f"--coordinator_address={address}",
               "--num_processes=2"]
    processes, files = [], []
    try:
        for i in range(2):
            files.append(open(f"{logs}.{i}.log", "w+"))
            processes.append(subprocess.Popen(command + [f"--process_id={i}"], cwd=REPO, env=_with_devices(env, 2),
                                              stdout=files[-1], stderr=subprocess.STDOUT))
        codes = [p.wait(timeout=400) for p in processes]
    finally:
        for p in processes:
            p.kill()
    outputs = []
    for f in files:
        f.seek(0)
        outputs.append(f.read())
        f.close()
    assert codes == [0, 0], "\n----\n".join(o[-3000:] for o in outputs)
    return outputs


def _records(workdir: str) -> dict[int, dict]:
    records = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            records.setdefault(record["step"], {}).update(record)
    return records


def _state(workdir: str, which="latest"):
    with checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
        return ckpt.restore_model_variables(which)


def test_two_processes_train_resume_and_evaluate(tiny_config, shapes_data_dir, env, tmp_path):
    uninterrupted = str(tmp_path / "uninterrupted")
    out = _train_two_processes(env, shapes_data_dir, uninterrupted, str(tmp_path / "first"))
    assert "JAX process 0 of 2; 2 local of 4 cpu devices." in out[0]
    assert "on 4 device(s)" in out[0] and "step 3/3" in out[0]
    assert "step 3/3" not in out[1]  # only process 0 reports
    with checkpointing.Checkpointer(uninterrupted, read_only=True) as ckpt:
        assert ckpt.all_steps() == [2, 3] and ckpt.best_step() == 3
    records = _records(uninterrupted)

    # The loss of step 1 is the global batch's: the same as one process computing the whole batch.
    tiny_config.num_train_steps = 3
    tiny_config.features.bucket_boundaries = (512,)
    trainer = train.Trainer(tiny_config)
    batch = input_pipeline.shard_batch(next(trainer.train_iterator()), trainer.mesh)
    _, metrics = trainer.train_step(trainer.initial_state, batch)
    np.testing.assert_allclose(records[1]["train/loss"], float(metrics["loss"]), rtol=1e-6)

    # Restart from the step-2 checkpoint the two processes wrote: the same losses and parameters.
    resumed = str(tmp_path / "resumed")
    shutil.copytree(uninterrupted, resumed, ignore=shutil.ignore_patterns("run.lock"))
    shutil.rmtree(os.path.join(resumed, "checkpoints", "3"))
    shutil.rmtree(os.path.join(resumed, "checkpoints_best", "3"))
    out = _train_two_processes(env, shapes_data_dir, resumed, str(tmp_path / "second"))
    assert f"Resumed from step 2 ({resumed})." in out[0]
    again = _records(resumed)
    timeless = lambda record: {k: v for k, v in record.items() if "per_sec" not in k}
    assert timeless(again[3]) == timeless(records[3])
    a, b = _state(uninterrupted), _state(resumed)
    assert a[0] == b[0] == 3
    jax.tree.map(np.testing.assert_array_equal, a[1:], b[1:])

    # One process evaluates the result (validation split: the numbers training logged at step 3).
    output = str(tmp_path / "eval.json")
    done = subprocess.run([sys.executable, "-m", "vgs_jax.evaluate", f"--workdir={resumed}", "--split=validation",
                           f"--output={output}"], cwd=REPO, env=_with_devices(env, 1), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(output) as f:
        results = json.load(f)
    assert results["step"] == 3
    for direction in ("speech_to_image", "image_to_speech"):
        for name, value in results[direction].items():
            np.testing.assert_allclose(value, records[3][f"eval/{direction}_{name}"], rtol=1e-6)


def test_incomplete_multiprocess_flags_are_a_usage_error(env):
    done = subprocess.run([sys.executable, "-m", "vgs_jax.main", "--config=configs/shapes_gru.py:tiny,v1",
                           "--workdir=unused", "--coordinator_address=localhost:1234"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "--coordinator_address given without --num_processes --process_id" in done.stderr


@pytest.mark.parametrize("kwargs,message", [
    (dict(coordinator_address="localhost:1234", num_processes=2), r"without --process_id"),
    (dict(num_processes=2, process_id=0), r"--num_processes --process_id given without --coordinator_address"),
    (dict(coordinator_address="localhost", num_processes=2, process_id=0), r"must be HOST:PORT"),
    (dict(coordinator_address="localhost:1234", num_processes=2, process_id=2), r"--process_id=2 must be in \[0, "),
])
def test_bad_multiprocess_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        distributed.initialize(**kwargs)


def test_no_multiprocess_arguments_is_a_single_process_run():
    assert distributed.initialize() is False
    n = jax.device_count()
    assert distributed.describe() == f"JAX process 0 of 1; {n} local of {n} cpu devices."
