"""Learning test of keyword spotting from visual tags: a short run of configs/shapes_kws.py:tiny on
`spoken_shapes/quick` spots keywords far above the random baseline, through the binaries users run
(`python -m vgs_jax.main`, then `python -m vgs_jax.evaluate`, read back from its JSON)."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERRIDES = {"dataset.name": "spoken_shapes/quick", "num_train_steps": 150, "batch_size": 16,
             "optimizer.lr_max": 2e-3, "optimizer.warmup_steps": 10, "log_every_steps": 50,
             "eval_every_steps": 1000, "checkpoint_every_steps": 1000}


def _run(*args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device
    env.update(PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_keyword_spotting_learns_from_visual_tags(quick_shapes_data_dir, tmp_path):
    workdir, output = str(tmp_path / "run"), str(tmp_path / "eval.json")
    flags = [f"--config.{k}={v}" for k, v in {**OVERRIDES, "dataset.data_dir": quick_shapes_data_dir}.items()]
    _run("vgs_jax.main", "--config=configs/shapes_kws.py:tiny", f"--workdir={workdir}", *flags)
    _run("vgs_jax.evaluate", f"--workdir={workdir}", f"--output={output}")
    with open(output) as f:
        kws = json.load(f)["keyword_spotting"]
    for relevance in ("exact", "semantic"):
        model, chance = kws["model"][relevance], kws["random"][relevance]
        assert model["keywords_scored"] == 17
        assert model["p_at_10"] > 2 * chance["p_at_10"], (relevance, model["p_at_10"], chance["p_at_10"])
        assert model["eer"] < chance["eer"] - 0.15, (relevance, model["eer"], chance["eer"])
