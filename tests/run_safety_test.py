"""A training run keeps what it has: relative paths, failed saves, damaged checkpoints, bad configs,
non-finite states, two runs on one workdir, logs after a resume (in-process; the binaries'
behaviour under signals and full disks is in binaries_test.py)."""

import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from vgs_jax import checkpointing
from vgs_jax import config_checks
from vgs_jax import evaluation
from vgs_jax import optimizers
from vgs_jax import train
from vgs_jax import workdir as run_workdir


def _params(workdir, which="latest"):
    with checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
        return ckpt.restore_params(which)


def _assert_same_params(a, b):
    assert a[0] == b[0]
    jax.tree.map(np.testing.assert_array_equal, a[1], b[1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shapes_data_dir):
    """A finished tiny run (checkpoints at steps 3 and 6) to copy and damage."""
    from vgs_jax import config_lib

    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    config.dataset.data_dir = shapes_data_dir
    workdir = str(tmp_path_factory.mktemp("trained") / "run")
    train.train_and_evaluate(config, workdir)
    return workdir


def test_relative_workdir_and_init_from(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_config.num_train_steps = 3
    train.train_and_evaluate(tiny_config, "runs/relative")
    with checkpointing.Checkpointer("runs/relative", read_only=True) as ckpt:
        assert ckpt.all_steps() == [3]
    step, _, _ = evaluation.evaluate_checkpoint("runs/relative", split="test")
    assert step == 3
    tiny_config.init_from = "runs/relative"
    start = jax.device_get(train.Trainer(tiny_config).initial_state)["params"]
    saved = checkpointing.fit_tree(start, _params(str(tmp_path / "runs/relative"), "best")[1], where="best").tree
    _assert_same_params((0, start), (0, saved))


class _CountingIterator:
    def __init__(self, iterator, counter):
        self._iterator, self._counter = iterator, counter

    def __next__(self):
        self._counter.append(1)
        return next(self._iterator)

    def get_state(self):
        return self._iterator.get_state()

    def set_state(self, state):
        self._iterator.set_state(state)


def test_a_failed_save_stops_training_at_once(tiny_config, tmp_path, monkeypatch):
    real_save, real_iterator, batches = ocp.CheckpointManager.save, train.Trainer.train_iterator, []

    def failing_save(self, step, *args, **kwargs):
        if step == 3 and "checkpoints_best" not in str(self.directory):
            raise OSError(28, "No space left on device")
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(train.Trainer, "train_iterator", lambda self: _CountingIterator(real_iterator(self), batches))
    monkeypatch.setattr(ocp.CheckpointManager, "save", failing_save)
    workdir = str(tmp_path / "run")
    with pytest.raises(checkpointing.CheckpointSaveError,
                       match=r"checkpoints/3 failed: OSError.*No space left.*stopped at step 3"):
        train.train_and_evaluate(tiny_config, workdir)
    assert len(batches) == 3  # no step after the failed save (6 were planned)
    assert os.listdir(os.path.join(workdir, "checkpoints")) == []  # no partial checkpoint left
    # The best checkpoint saved just before is intact, and the run resumes from it (writing it as
    # the periodic checkpoint of step 3 too, so "latest" stays the newest state).
    monkeypatch.setattr(ocp.CheckpointManager, "save", real_save)
    train.train_and_evaluate(tiny_config, workdir)
    with checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
        assert ckpt.all_steps() == [3, 6]


def _damage(step_dir, how):
    state = os.path.join(step_dir, "state")
    arrays = sorted(os.path.join(root, f) for root, _, files in os.walk(state) for f in files
                    if "/d/" in os.path.join(root, f))
    biggest = max(arrays, key=os.path.getsize)
    if how == "truncated":
        with open(biggest, "r+b") as f:
            f.truncate(os.path.getsize(biggest) // 2)
    elif how == "garbage":
        with open(biggest, "r+b") as f:
            f.seek(os.path.getsize(biggest) // 3)
            f.write(os.urandom(64))
    elif how == "zeroed":
        with open(biggest, "r+b") as f:
            f.write(bytes(os.path.getsize(biggest)))
    elif how == "no_metadata":
        os.remove(os.path.join(state, "_METADATA"))
    elif how == "no_manifest":
        os.remove(os.path.join(state, "manifest.ocdbt"))
    elif how == "garbled_data_state":
        with open(os.path.join(step_dir, "data", "metadata"), "w") as f:
            f.write('{"next_index": ')
    elif how == "garbled_checkpoint_metadata":
        with open(os.path.join(step_dir, "_CHECKPOINT_METADATA"), "w") as f:
            f.write("{}")


DAMAGES = ("truncated", "garbage", "zeroed", "no_metadata", "no_manifest", "garbled_data_state",
           "garbled_checkpoint_metadata")


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_checkpoint_is_named_by_evaluate(trained, tmp_path, how):
    workdir = str(tmp_path / "run")
    shutil.copytree(trained, workdir)
    latest = os.path.join(workdir, "checkpoints", "6")
    _damage(latest, how)
    with pytest.raises(checkpointing.CorruptCheckpointError, match=f"{latest}"):
        evaluation.evaluate_checkpoint(workdir, checkpoint="latest", split="test")


@pytest.mark.parametrize("how", ["truncated", "garbled_checkpoint_metadata"])
def test_resume_falls_back_to_the_newest_intact_checkpoint(trained, tiny_config, tmp_path, how, capsys):
    workdir = str(tmp_path / "run")
    shutil.copytree(trained, workdir)
    latest = os.path.join(workdir, "checkpoints", "6")
    _damage(latest, how)
    # The damaged checkpoint is named and kept aside; training resumes from the newest intact one
    # and ends with the parameters of the undamaged run.
    train.train_and_evaluate(tiny_config, workdir)
    out = capsys.readouterr().out
    assert f"Checkpoint {latest} is" in out and "trying the previous checkpoint" in out
    assert os.listdir(os.path.join(workdir, "corrupt_checkpoints")) == ["checkpoints_6"]
    _assert_same_params(_params(workdir), _params(trained))


def test_evaluate_on_another_device_count(trained, tmp_path):
    """A run saved on 8 devices is evaluated by the binary on 1 (as after training on a pod);
    learning_test.py covers 1 -> 8."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    output = str(tmp_path / "eval.json")
    done = subprocess.run([sys.executable, "-m", "vgs_jax.evaluate", f"--workdir={trained}", "--split=test",
                           f"--output={output}"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(output) as f:
        results = json.load(f)
    in_process = evaluation.evaluate_checkpoint(trained, split="test")[2]
    np.testing.assert_allclose(results["speech_to_image"]["r10"], in_process["speech_to_image"]["r10"])


def test_checkpoint_without_integrity_record_is_still_read_and_damage_detected(trained, tiny_config, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(trained, workdir)
    for step in ("3", "6"):
        os.remove(os.path.join(workdir, "checkpoints", step, checkpointing.INTEGRITY_FILE))
    assert evaluation.evaluate_checkpoint(workdir, checkpoint="latest", split="test")[0] == 6
    _damage(os.path.join(workdir, "checkpoints", "6"), "truncated")
    train.train_and_evaluate(tiny_config, workdir)
    _assert_same_params(_params(workdir), _params(trained))


def test_all_checkpoints_damaged_is_an_error_that_keeps_them(trained, tiny_config, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(trained, workdir)
    for folder in ("checkpoints", "checkpoints_best"):
        for step in os.listdir(os.path.join(workdir, folder)):
            _damage(os.path.join(workdir, folder, step), "zeroed")
    with pytest.raises(checkpointing.CorruptCheckpointError, match="No readable checkpoint.*fresh --workdir"):
        train.train_and_evaluate(tiny_config, workdir)
    # A second attempt does not silently start from scratch either.
    with pytest.raises(checkpointing.CorruptCheckpointError, match="corrupt_checkpoints"):
        train.train_and_evaluate(tiny_config, workdir)
    assert len(os.listdir(os.path.join(workdir, "corrupt_checkpoints"))) == 3


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 0, r"batch_size=0: must be an integer >= 1"),
    ("batch_size", -8, r"batch_size=-8: must be an integer >= 1"),
    ("eval_batch_size", 0, r"eval_batch_size=0: must be an integer >= 1"),
    ("num_epochs", 0, r"num_epochs=0: must be an integer >= 1"),
    ("num_train_steps", 0, r"num_train_steps=0: must be >= 1, or -1"),
    ("checkpoint_every_steps", 0, r"checkpoint_every_steps=0"),
    ("optimizer.lr_max", float("inf"), r"optimizer.lr_max=inf: must be a finite number"),
])
def test_bad_config_values_fail_before_any_work(tiny_config, tmp_path, field, value, message):
    if field == "num_epochs":
        tiny_config.num_train_steps = -1
    section, _, name = field.rpartition(".")
    setattr(tiny_config[section] if section else tiny_config, name, value)
    workdir = str(tmp_path / "run")
    with pytest.raises(config_checks.ConfigValueError, match=message):
        train.train_and_evaluate(tiny_config, workdir)
    assert not os.path.exists(workdir)


def test_config_is_written_only_once_training_can_start(tiny_config, tmp_path):
    workdir = str(tmp_path / "run")
    tiny_config.dataset.data_dir = str(tmp_path / "no_data_here")
    tiny_config.dataset.build_if_missing = False
    with pytest.raises(FileNotFoundError, match="not prepared"):
        train.train_and_evaluate(tiny_config, workdir)
    assert not os.path.exists(os.path.join(workdir, "config.json"))
    tiny_config.batch_size = 4  # a corrected retry with another setting is not refused
    with pytest.raises(FileNotFoundError, match="not prepared"):
        train.train_and_evaluate(tiny_config, workdir)


def test_changed_config_is_refused_even_without_config_json(trained, tiny_config, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(trained, workdir)
    os.remove(os.path.join(workdir, "config.json"))
    tiny_config.optimizer.lr_max = 0.5
    with pytest.raises(run_workdir.ConfigMismatchError, match=r"optimizer\.lr_max.*checkpoints/6"):
        train.train_and_evaluate(tiny_config, workdir)
    assert not os.path.exists(os.path.join(workdir, "config.json"))


def test_non_finite_parameters_are_never_saved(tiny_config, tmp_path, monkeypatch):
    # A NaN learning rate keeps step 1's loss finite (it is computed before the update) but makes
    # every parameter NaN: nothing may be saved, and the error must not invent a checkpoint.
    monkeypatch.setattr(optimizers, "create_learning_rate_fn", lambda *a, **k: lambda step: jnp.nan)
    workdir = str(tmp_path / "run")
    with pytest.raises(train.NonFiniteLossError, match="step 1 .*no checkpoint had been written yet"):
        train.train_and_evaluate(tiny_config, workdir)
    with checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
        assert ckpt.all_steps() == [] and ckpt.best_step() is None


def test_second_run_on_a_workdir_is_refused(tiny_config, tmp_path):
    workdir = str(tmp_path / "run")
    with run_workdir.exclusive(workdir):
        with pytest.raises(run_workdir.WorkdirBusyError, match=f"pid {os.getpid()} on .*another --workdir"):
            train.train_and_evaluate(tiny_config, workdir)
    assert sorted(os.listdir(workdir)) == [run_workdir.LOCK_FILE]


def test_metrics_after_a_resume_read_as_one_run(tiny_config, tmp_path):
    workdir = str(tmp_path / "run")
    tiny_config.num_train_steps = 4
    train.train_and_evaluate(tiny_config, workdir)  # logs: train 2, eval 3, train 4, eval 4
    shutil.rmtree(os.path.join(workdir, "checkpoints", "4"))  # as if killed after logging step 4
    shutil.rmtree(os.path.join(workdir, "checkpoints_best"))
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write('{"step": 4, "train/lo')  # a line cut short by the kill
    tiny_config.num_train_steps = 6
    train.train_and_evaluate(tiny_config, workdir)  # resumes from 3: train 4, train 6, eval 6
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["step"] for r in records] == [2, 3, 4, 6, 6]
