"""Learning tests: a short training beats chance by far; the same model at random init does not.

On `spoken_shapes/quick` (100 test images: speech->image R@10 is 10% by chance). Training runs as
users run it: `python -m vgs_jax.main` in a subprocess, on one CPU device (no fake devices), with
command-line overrides. The trained model is scored by `evaluation.evaluate_checkpoint`; the
random-init baseline goes through `evaluation.evaluate_split` with the restored template's initial
parameters and state.

One test per encoder family that fits the time budget: recurrent (platalea GRU, cosine, platalea
hinge) and conv/matchmap (ResDAVEnet: pooled-dot matchmaps, sampled + semi-hard hinges,
BatchNorm, jitter). The transformer family is left out: it needs ~300 steps to pass (R@10 0.37 at
seed 123), which the budget has no room for. See FAMILIES for the measured margins.
"""

import os
import subprocess
import sys

import jax
import pytest

from tfds_builders import spoken_shapes
from vgs_jax import data_sources
from vgs_jax import evaluation
from vgs_jax import input_pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_TEST_IMAGES = spoken_shapes.Builder.builder_configs["quick"].num_test
CHANCE_R10 = 10 / NUM_TEST_IMAGES  # speech->image R@10 of a model that ranks images at random
TRAINED_MIN = 3.0 * CHANCE_R10
RANDOM_INIT_MAX = 1.7 * CHANCE_R10

# family -> (config, overrides of it), trained on one CPU device, validated and checkpointed at the
# last step only. Test-split speech->image R@10 measured with exactly these settings (2 cores):
FAMILIES = {
    # 200 steps of 16: ~50 s of training. Trained 0.45 (seed 123), 0.46 (seed 1); random init 0.09.
    "recurrent": ("configs/shapes_gru.py:tiny,v1", {
        "num_train_steps": 200, "batch_size": 16, "optimizer.lr_max": 2e-3,
        "model.speech.hidden": 64, "model.speech.attention_hidden": 32}),
    # 250 steps of 32 (the semi-hard hinge wants more negatives per batch than 16; 500 steps of 16
    # reached only 0.31): ~65 s of training. Trained 0.41 (seed 123; 0.43 and 0.75 at seeds 123
    # and 1 after 300 steps); random init 0.10. Every run sits on the loss plateau (~4: all four
    # hinges at margin 1) until the embeddings separate; when that happens decides R@10. This seed
    # (123, the config's) failed with float32 features (0.222) and fails at lr_max 6e-3 (0.184,
    # float32); lr_max 1e-3 reached 0.274 / 0.288. Not yet robust to rounding: see README "Benchmarks".
    "conv_matchmap": ("configs/shapes_resdavenet.py:tiny,v1", {
        "num_train_steps": 250, "batch_size": 32, "optimizer.lr_max": 3e-3,
        "model.speech.widths": (16, 32, 32, 64, 64), "model.image.channels": (16, 32, 64)}),
}
COMMON = {"optimizer.warmup_steps": 10, "log_every_steps": 50, "eval_every_steps": 1000,
          "checkpoint_every_steps": 1000}


def _train(family: str, data_dir: str, workdir: str) -> None:
    """`python -m vgs_jax.main` for `family` on spoken_shapes/quick, one CPU device."""
    spec, overrides = FAMILIES[family]
    flags = [f"--config={spec}", f"--workdir={workdir}", "--config.dataset.name=spoken_shapes/quick:1.0.0",
             f"--config.dataset.data_dir={data_dir}"]
    flags += [f"--config.{k}={v}" for k, v in {**COMMON, **overrides}.items()]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device, as a CPU user has
    env.update(PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-m", "vgs_jax.main", *flags], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def _random_init_results(workdir: str) -> dict:
    """Test-split metrics of the run's model at random initialisation (its initial BatchNorm
    statistics too), through the same evaluation as `evaluate_checkpoint`."""
    _, config, template, _ = evaluation.restore_model(workdir)
    return evaluation.evaluate_split(
        template.with_model_state(template.initial_model_state),
        jax.device_get(template.initial_params),  # host arrays, placed like the batches
        data_sources.open_config_split(config.dataset, "test"),
        batch_size=config.eval_batch_size,
        features_config=config.features,
        image_key=config.dataset.image_key,
        mesh=input_pipeline.data_mesh(),
    )


def train_and_score(family: str, data_dir: str, workdir: str) -> tuple[float, float]:
    """(trained, random-init) test speech->image R@10 of a short run of `family` in `workdir`."""
    _train(family, data_dir, workdir)
    step, _, trained = evaluation.evaluate_checkpoint(workdir, split="test")
    random_init = _random_init_results(workdir)
    assert step == FAMILIES[family][1]["num_train_steps"]
    assert trained["speech_to_image"]["n"] == random_init["speech_to_image"]["n"] == 5 * NUM_TEST_IMAGES
    return trained["speech_to_image"]["r10"], random_init["speech_to_image"]["r10"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_short_training_beats_chance_and_random_init_does_not(family, quick_shapes_data_dir,
                                                             tmp_path):
    r10, r10_init = train_and_score(family, quick_shapes_data_dir, str(tmp_path / family))
    print(f"{family}: test speech->image R@10 trained {r10:.3f}, random init {r10_init:.3f}, "
          f"chance {CHANCE_R10:.3f}")
    assert r10_init <= RANDOM_INIT_MAX, f"random init R@10 {r10_init:.3f}, chance {CHANCE_R10:.3f}"
    assert r10 >= TRAINED_MIN, (f"{family}: trained R@10 {r10:.3f} < {TRAINED_MIN:.3f} "
                                f"(3x chance); random init {r10_init:.3f}")
