"""The binaries as users meet them: one-line errors, SIGTERM / Ctrl-C / kill -9 and resume, a full
disk, `evaluate --output` into a new folder, a changed config without config.json.

Each runs `python -m vgs_jax.<binary>` as a subprocess with a relative --workdir (cwd = a tmp dir).
The README's own commands are run literally by readme_commands_test.py.
"""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from vgs_jax import checkpointing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "shapes_gru.py") + ":tiny,v1"
# 12 steps: checkpoints at 4, 8, 12; validation (and best) at 6, 12; a progress line every step.
LONG = ["--config.num_train_steps=12", "--config.checkpoint_every_steps=4", "--config.eval_every_steps=6",
        "--config.log_every_steps=1"]


def _env():
    return {**os.environ, "PYTHONPATH": REPO}


def _run(*args, cwd, file_size_limit_kb=None):
    command = [sys.executable, "-m", *args]
    if file_size_limit_kb:  # bash's ulimit: no fork-time Python code in this (multithreaded) process
        command = ["bash", "-c", f'ulimit -f {file_size_limit_kb} && exec "$@"', "bash", *command]
    return subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)


def _main_args(data_dir, workdir, *extra):
    return ["vgs_jax.main", f"--config={CONFIG}", f"--workdir={workdir}", f"--config.dataset.data_dir={data_dir}",
            *extra]


def _one_error_line(stderr):
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [l for l in lines if l.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize("extra,code,message", [
    (["--config.optimizer.lr_maxx=0.1"], 2,
     'error: --config.optimizer.lr_maxx: no such config field. Did you mean "lr_max" instead of "lr_maxx"?'),
    (["--config.batch_size=0"], 2, "error: Invalid config: --config.batch_size=0: must be an integer >= 1."),
    (["--config.dataset.name=spoken_shapes/tinyy"], 1, "Unknown spoken_shapes config 'tinyy'; choose one of"),
])
def test_errors_are_one_line(shapes_data_dir, tmp_path, extra, code, message):
    result = _run(*_main_args(shapes_data_dir, "run", *extra), cwd=tmp_path)
    assert result.returncode == code, result.stderr[-3000:]
    assert message in _one_error_line(result.stderr)
    assert not os.path.exists(tmp_path / "run" / "config.json")


def test_debug_flag_shows_the_traceback(shapes_data_dir, tmp_path):
    result = _run(*_main_args(shapes_data_dir, "run", "--config.batch_size=0", "--debug"), cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr and "ConfigValueError" in result.stderr


def test_evaluate_without_a_run_says_to_train_first(tmp_path):
    missing = _run("vgs_jax.evaluate", "--workdir=nothing_here", cwd=tmp_path)
    assert missing.returncode == 1
    assert "Train first" in _one_error_line(missing.stderr)


def _read_until(process, marker, lines):
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            return
    raise AssertionError(f"{marker!r} never printed:\n{''.join(lines)[-3000:]}")


def _interrupted_run(data_dir, cwd, marker, sig):
    """Starts training, sends `sig` once `marker` is printed; returns (returncode, stdout, stderr)."""
    process = subprocess.Popen([sys.executable, "-m", *_main_args(data_dir, "run", *LONG)], cwd=cwd, env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        _read_until(process, marker, lines)
        process.send_signal(sig)
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    return process.returncode, "".join(lines) + out, err


def _finished_run(workdir):
    with checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
        step, params = ckpt.restore_params("latest")
        data = ckpt._latest.restore(step, args=checkpointing.ocp.args.Composite(
            data=checkpointing.ocp.args.JsonRestore()))["data"]
        best = ckpt.best_step(), ckpt.best_metric()
    timing = ("train/steps_per_sec", "train/utterances_per_sec")
    metrics = [{k: v for k, v in json.loads(line).items() if k not in timing}
               for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return step, params, data, best, metrics


def test_signals_and_kill_resume_bit_identically(shapes_data_dir, tmp_path):
    reference = _run(*_main_args(shapes_data_dir, "reference", *LONG), cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]

    code, out, err = _interrupted_run(shapes_data_dir, tmp_path, "step 3/12", signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err[-3000:]
    line = _one_error_line(err)
    assert "Stopped by SIGTERM after step " in line and f"{tmp_path}/run/checkpoints/" in line
    assert "Resume: python -m vgs_jax.main --config=" in line and "--workdir=run" in line

    code, out, err = _interrupted_run(shapes_data_dir, tmp_path, "Validation at step 6", signal.SIGINT)
    assert code == 128 + signal.SIGINT and "Stopped by SIGINT after step " in _one_error_line(err)

    # kill -9 while the best checkpoint of step 12 is being written (it was step 6 before)
    code, _, _ = _interrupted_run(shapes_data_dir, tmp_path, "Validation at step 12", signal.SIGKILL)
    assert code == -signal.SIGKILL

    resumed = _run(*_main_args(shapes_data_dir, "run", *LONG), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _finished_run(str(tmp_path / "reference")), _finished_run(str(tmp_path / "run"))
    assert a[0] == b[0] == 12 and a[2] == b[2] and a[3] == b[3] and a[4] == b[4]
    jax.tree.map(np.testing.assert_array_equal, a[1], b[1])

    evaluated = _run("vgs_jax.evaluate", "--workdir=run", "--output=new/folder/eval.json", cwd=tmp_path)
    assert evaluated.returncode == 0 and (tmp_path / "new" / "folder" / "eval.json").exists(), evaluated.stderr

    os.remove(tmp_path / "run" / "config.json")
    changed = _run(*_main_args(shapes_data_dir, "run", *LONG, "--config.optimizer.lr_max=0.1"), cwd=tmp_path)
    assert changed.returncode == 1 and "sys.meta_path" not in changed.stderr
    assert "fields ['optimizer.lr_max'] differ" in _one_error_line(changed.stderr)


def test_full_disk_stops_cleanly(shapes_data_dir, tmp_path):
    # RLIMIT_FSIZE: writing past 600 KB fails with EFBIG ("File too large"), like a full disk; the
    # first checkpoints (~400 KB) fit, a later one does not.
    result = _run(*_main_args(shapes_data_dir, "run", *LONG), cwd=tmp_path, file_size_limit_kb=600)
    assert result.returncode == 1, result.stderr[-3000:]
    line = _one_error_line(result.stderr)
    assert "Saving checkpoint" in line and "File too large" in line and "re-run the same command" in line, line
    assert "sys.meta_path is None" not in result.stderr and "Event loop is closed" not in result.stderr
    leftovers = [os.path.join(root, d) for root, dirs, _ in os.walk(tmp_path / "run") for d in dirs
                 if d.endswith("-tmp")]
    assert not leftovers, (leftovers, line)
