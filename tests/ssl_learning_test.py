"""Learning test of the grounded + self-supervised model (configs/shapes_ssl_vgs.py with ssl_weight=1): a short
run on `spoken_shapes/tiny` learns to retrieve its training images from their spoken captions, which random
initialisation does not, while the masked-prediction term (weight 1, larger than the retrieval loss all along)
falls too.

Retrieval is scored on the training split (120 captions, 24 images: R@1 4.2% by chance): tiny's test split has
8 images, too few to tell learning from chance, and 30 steps from raw waveforms do not generalise (quick 1.0.0
needs ~300 steps of a larger model to reach test R@10 13-16%, README "Self-supervised speech front ends").
The model is `:tiny`'s with 10 ms frames (conv strides 5, 8, 4; HuBERT's 20 ms needs a deeper stack) and the
first 2 s of each caption, so that the masked spans (10 frames) are 100 ms as in HuBERT.

Measured (one CPU device, seed 123, 30 steps of 16 at 3e-3): training-split speech->image R@1 23.3%, random init
3.3%; masked-prediction loss 2.74 (steps 1-3) -> 2.03 (steps 28-30), the entropy of the k-means cluster prior
(2.03 nats of 8 clusters): in 30 steps the head learns the cluster frequencies, not yet the context (150 steps:
2.02, top-1 accuracy 0.20 = the largest cluster's share).
"""

import json
import os

import jax

from vgs_jax import config_lib
from vgs_jax import data_sources
from vgs_jax import evaluation
from vgs_jax import input_pipeline
from vgs_jax import train

STEPS = 30
CHANCE_R1 = 1 / 24  # tiny's 24 training images
OVERRIDES = {"num_train_steps": STEPS, "batch_size": 16, "optimizer.lr_max": 3e-3, "optimizer.warmup_steps": 3,
             "log_every_steps": 3, "eval_every_steps": 1000, "checkpoint_every_steps": 1000,
             "model.speech.conv_kernel": (10, 8, 4), "model.speech.conv_stride": (5, 8, 4),
             "model.speech.conv_dim": (16, 16, 16), "model.speech.hidden": 32, "model.speech.ff_dim": 64,
             "features.max_frames": 32000, "features.bucket_boundaries": (32000,)}


def _logged(workdir: str, key: str) -> list[float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [r[key] for r in map(json.loads, f) if key in r]


def test_grounded_ssl_model_learns_to_retrieve_and_its_masked_prediction_loss_falls(shapes_data_dir, tmp_path):
    config = config_lib.load_config("configs/shapes_ssl_vgs.py:tiny,v1,ssl_weight=1")
    with config.unlocked():
        config.dataset.data_dir = shapes_data_dir
        for name, value in OVERRIDES.items():
            *parents, leaf = name.split(".")
            node = config
            for parent in parents:
                node = node[parent]
            node[leaf] = value
    workdir = str(tmp_path / "ssl")
    train.train_and_evaluate(config, workdir)
    _, config, template, params = evaluation.restore_model(workdir)
    kwargs = dict(batch_size=config.eval_batch_size, features_config=config.features,
                  image_key=config.dataset.image_key, mesh=input_pipeline.data_mesh())
    source = data_sources.open_config_split(config.dataset, "train")
    trained = evaluation.evaluate_split(template, params, source, **kwargs)["speech_to_image"]
    random_init = evaluation.evaluate_split(template.with_model_state(template.initial_model_state),
                                            jax.device_get(template.initial_params), source, **kwargs)["speech_to_image"]
    ssl, grounding = _logged(workdir, "train/ssl_loss"), _logged(workdir, "train/retrieval_loss")
    print(f"train-split R@1 trained {trained['r1']:.3f}, random init {random_init['r1']:.3f}; ssl loss {ssl}; "
          f"retrieval loss {grounding}")
    assert trained["n"] == 120
    assert random_init["r1"] <= 1.7 * CHANCE_R1, random_init
    assert trained["r1"] >= 3 * CHANCE_R1, (trained, random_init)
    assert ssl[-1] < ssl[0] - 0.3, ssl  # 2.74 -> 2.03 measured
    assert min(ssl) > max(grounding), (ssl, grounding)  # the SSL term weighs more than the grounding term
