"""The README's "Adding a speech encoder" example, run as written: its code block defines the
encoder, one registry line registers it, and it trains (tiny), evaluates and is analysed."""

import os
import re

import ml_collections
import numpy as np

from vgs_jax import evaluation
from vgs_jax import train
from vgs_jax.analysis import suite
from vgs_jax.models import registry

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _readme_encoder_module() -> dict:
    """Executes the python block of README section "Adding a speech encoder"; returns its namespace."""
    with open(README) as f:
        text = f.read()
    section = text.split("### Adding a speech encoder", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace = {"__name__": "vgs_jax.models.mean_pool_encoder"}
    exec(compile(code, "README.md: Adding a speech encoder", "exec"), namespace)
    return namespace


def test_readme_encoder_registers_trains_evaluates_and_is_analysed(tiny_config, tmp_path, monkeypatch):
    encoder_class = _readme_encoder_module()["MeanPoolSpeechEncoder"]
    monkeypatch.setitem(registry.SPEECH_ENCODERS, "mean_pool", encoder_class)
    config = tiny_config
    config.model.speech_encoder = "mean_pool"
    config.model.speech = ml_collections.ConfigDict(dict(conv_channels=16, hidden=32))
    workdir = str(tmp_path / "run")

    train.train_and_evaluate(config, workdir)
    step, _, results = evaluation.evaluate_checkpoint(workdir, split="test")
    assert step == config.num_train_steps
    assert np.isfinite(results["speech_to_image"]["meanr"])

    settings = suite.SuiteSettings(max_probe_frames=300, probe_max_iter=50, max_abx_items=100,
                                   max_rsa_utterances=16, word_min_count=3)
    report = suite.analyze_workdir(workdir, max_utterances=16, settings=settings,
                                   analyses=("probes", "rsa", "boundaries"))
    assert report["analyses"] == ["probes", "rsa", "boundaries"]
    assert report["layers"] == ["conv", "dense", "pooled"]  # what the encoder declared, then "pooled"
    for layer in ("conv", "dense"):
        row = report["trained"][layer]
        assert row["local_probe"]["test_frames"] > 0 and np.isfinite(row["local_probe"]["accuracy"])
        assert row["boundaries"]["num_ref"] > 0 and all(np.isfinite(v) for v in row["rsa"].values())
