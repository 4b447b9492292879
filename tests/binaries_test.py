"""The README's commands, in tiny form: `vgs_jax.main` and `vgs_jax.evaluate` as subprocesses."""

import json
import os
import subprocess
import sys


def _run(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_main_then_evaluate(shapes_data_dir, tmp_path):
    workdir = str(tmp_path / "run")
    config = os.path.abspath("configs/shapes_gru.py") + ":tiny"
    common = [f"--config={config}", f"--workdir={workdir}", f"--config.dataset.data_dir={shapes_data_dir}"]

    typo = _run("vgs_jax.main", *common, "--config.optimizer.lr_maxx=0.1", cwd=tmp_path)
    assert typo.returncode != 0
    assert "lr_maxx" in typo.stderr
    assert not os.path.exists(os.path.join(workdir, "checkpoints"))

    trained = _run("vgs_jax.main", *common, "--config.batch_size=16", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "step 6/6" in trained.stdout and "Validation at step 6" in trained.stdout
    again = _run("vgs_jax.main", *common, "--config.batch_size=16", cwd=tmp_path)
    assert again.returncode == 0 and "Already trained to step 6" in again.stdout

    evaluated = _run("vgs_jax.evaluate", f"--workdir={workdir}", "--checkpoint=best", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "speech_to_image" in evaluated.stdout
    written = evaluated.stdout.strip().splitlines()[-1].removeprefix("Wrote ")
    assert os.path.dirname(written) == workdir
    report = json.load(open(written))
    assert report["split"] == "test" and 0.0 <= report["speech_to_image"]["r10"] <= 1.0

    missing = _run("vgs_jax.evaluate", f"--workdir={workdir}", "--split=dev", cwd=tmp_path)
    assert missing.returncode != 0 and "Unknown split 'dev'" in missing.stderr
