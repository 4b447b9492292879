"""Helpers shared by the model tests: a random train batch, an un-jitted train step with its state,
exact float32 matmuls, length masks."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgs_jax import optimizers
from vgs_jax import train
from vgs_jax.models import dual_encoder


def train_batch(num_features: int = 40, batch: int = 8, frames: int = 96, seed: int = 0) -> dict:
    """A random padded batch as the input pipeline yields it: audio [batch, frames, num_features] float32
    (zero past each length, lengths in [frames / 2, frames]), masks, 64 x 64 uint8 images, ids."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(frames // 2, frames + 1, batch)
    mask = np.arange(frames)[None, :] < lengths[:, None]
    return {"audio": np.where(mask[..., None], rng.normal(size=(batch, frames, num_features)), 0.0).astype(np.float32),
            "audio_mask": mask, "audio_len": lengths.astype(np.int32),
            "image": rng.integers(0, 256, (batch, 64, 64, 3)).astype(np.uint8),
            "image_id": np.arange(batch, dtype=np.int32), "caption_id": np.arange(batch, dtype=np.int32),
            "example_mask": np.ones(batch, bool)}


def train_step(config, mesh=None):
    """(template, step(state, batch) -> (state, metrics) un-jitted, initial state) of `config`'s model,
    loss and optimiser (schedule of 20 steps, 10 per epoch)."""
    template = dual_encoder.Template(train.create_model(config))
    lr = optimizers.create_learning_rate_fn(config.optimizer, steps_per_epoch=10, total_steps=20)
    tx = optimizers.create_optimizer(config.optimizer, lr)
    step = functools.partial(train.train_step, template=template, tx=tx,
                             loss_fn=train.make_loss_fn(config.loss, config.model, mesh),
                             learning_rate_fn=lr, image_key="image", seed=config.seed)
    return template, step, train.create_train_state(template.initial_params, template.initial_model_state, tx)


@pytest.fixture(autouse=True)
def full_precision_matmuls():
    """Exact float32 matmuls (GPUs default to TF32), so NumPy comparisons hold on any backend; autouse
    in every test module that imports it."""
    with jax.default_matmul_precision("highest"):
        yield


def length_mask(lengths, t: int) -> jax.Array:
    """[B, t] bool, True for frames before each of `lengths` [B]."""
    return jnp.asarray(np.arange(t)[None, :] < np.asarray(lengths)[:, None])
