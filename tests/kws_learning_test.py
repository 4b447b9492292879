"""Keyword spotting learns: a short `vgs_jax.main` + `vgs_jax.evaluate` run (as users run them) of
configs/shapes_kws.py:tiny on spoken_shapes/quick ranks utterances saying (exact) or showing
(semantic) a keyword clearly above the random baseline.

The run uses a perfect visual tagger (`kws.tagger_targets="scene"`, `loss.oracle_tagger=True`): with
the jointly trained tagger the speech model's targets are still noise at this length (120 steps: exact
P@10 14.7 vs random 26.5), so this test protects the speech model, the loss, the batches' keyword
targets and the evaluation, not the tagger's own learning.
"""

import json
import os
import subprocess
import sys

OVERRIDES = {
    "dataset.name": "spoken_shapes/quick:1.0.0",
    "kws.tagger_targets": "scene",
    "loss.oracle_tagger": True,
    "model.speech.widths": "(32,64,128)",
    "model.speech.hidden": "(128,)",
    "batch_size": 32,
    "num_train_steps": 120,  # ~2 epochs of quick; spotting starts between steps 60 and 120
    "optimizer.schedule": "constant",
    "optimizer.lr_max": 1e-3,
    "eval_every_steps": 120,
    "checkpoint_every_steps": 120,
    "log_every_steps": 40,
}


def _run(module, *args):
    """`python -m module args` on one CPU device, as a CPU user runs it."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_keyword_spotting_beats_random_with_a_perfect_tagger(quick_shapes_data_dir, tmp_path):
    workdir, output = str(tmp_path / "run"), str(tmp_path / "eval.json")
    flags = [f"--config.{k}={v}" for k, v in {**OVERRIDES, "dataset.data_dir": quick_shapes_data_dir}.items()]
    _run("vgs_jax.main", "--config=configs/shapes_kws.py:tiny,v1", f"--workdir={workdir}", *flags)
    _run("vgs_jax.evaluate", f"--workdir={workdir}", f"--output={output}")
    with open(output) as f:
        kws = json.load(f)["keyword_spotting"]
    for relevance in ("exact", "semantic"):  # measured: exact 54.7 vs 26.5, semantic 62.4 vs 33.5
        model, chance = kws["model"][relevance], kws["random"][relevance]
        assert model["keywords_scored"] == 17
        assert model["p_at_10"] > 1.5 * chance["p_at_10"], (relevance, model["p_at_10"], chance["p_at_10"])
        assert model["eer"] < chance["eer"] - 0.08, (relevance, model["eer"], chance["eer"])
