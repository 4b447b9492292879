"""`model.dtype="bfloat16"` is a mixed-precision policy: the compiled train step multiplies in
bfloat16, while parameters, optimiser state and the loss stay float32."""
import functools

import jax
import numpy as np
import pytest

from vgs_jax import audio_features
from vgs_jax import config_lib
from vgs_jax import flop_count
from vgs_jax import optimizers
from vgs_jax import train
from vgs_jax.models import dual_encoder


def _step_and_state(config):
    template = dual_encoder.Template(train.create_model(config))
    lr = optimizers.create_learning_rate_fn(config.optimizer, steps_per_epoch=10, total_steps=20)
    tx = optimizers.create_optimizer(config.optimizer, lr)
    step = functools.partial(train.train_step, template=template, tx=tx,
                             loss_fn=train.make_loss_fn(config.loss, config.model, None),
                             learning_rate_fn=lr, image_key="image", seed=config.seed)
    return step, train.create_train_state(template.initial_params, template.initial_model_state, tx)


def _batch(num_features: int, batch: int = 8, frames: int = 96):
    rng = np.random.default_rng(0)
    lengths = rng.integers(frames // 2, frames + 1, batch)
    mask = np.arange(frames)[None, :] < lengths[:, None]
    return {"audio": np.where(mask[..., None], rng.normal(size=(batch, frames, num_features)), 0.0).astype(np.float32),
            "audio_mask": mask, "audio_len": lengths.astype(np.int32),
            "image": rng.integers(0, 256, (batch, 64, 64, 3)).astype(np.uint8),
            "image_id": np.arange(batch, dtype=np.int32), "caption_id": np.arange(batch, dtype=np.int32),
            "example_mask": np.ones(batch, bool)}


@pytest.mark.parametrize("spec", ["configs/shapes_gru.py:tiny", "configs/shapes_transformer.py:tiny",
                                  "configs/shapes_resdavenet.py:tiny"])
def test_bfloat16_policy_multiplies_in_bfloat16_and_keeps_float32_state(spec):
    config = config_lib.load_config(spec)
    config.unlock()
    batch = _batch(audio_features.num_features(config.features.recipe))
    shares = {}
    for dtype in ("float32", "bfloat16"):
        config.model.dtype = dtype
        step, state = _step_and_state(config)
        by_dtype = flop_count.matmul_flops_by_dtype(step, state, batch)
        shares[dtype] = by_dtype.get("bfloat16", 0.0) / sum(by_dtype.values())
    assert shares["float32"] == 0.0
    # All encoder matmuls/convs (forward and backward) in bfloat16; what remains float32 is the
    # B x B similarity of the normalised embeddings and its gradient.
    assert shares["bfloat16"] > 0.95, shares
    new_state, metrics = jax.eval_shape(step, state, batch)  # dtypes of the compiled step's outputs
    assert metrics["loss"].dtype == np.float32
    for tree in (new_state["params"], new_state["opt_state"]):
        dtypes = {leaf.dtype for leaf in jax.tree.leaves(tree) if leaf.dtype.kind == "f"}
        assert dtypes == {np.dtype(np.float32)}, dtypes
