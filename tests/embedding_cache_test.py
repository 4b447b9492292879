"""Embedding-cache training (vgs_jax.embedding_cache): the gradient equals the full-batch one."""

import functools

import jax
import numpy as np
import pytest

from vgs_jax import audio_features
from vgs_jax import config_lib
from vgs_jax import embedding_cache
from vgs_jax import optimizers
from vgs_jax import train
from vgs_jax.models import dual_encoder


def _config(spec="configs/shapes_gru.py:tiny,v1", loss="platalea_hinge"):
    config = config_lib.load_config(spec)
    config.unlock()
    config.loss.name = loss
    config.model.image_encoder = "linear"  # precomputed image vectors: a quicker compile than the pixel CNN
    config.model.image = {"input_dim": 12}
    config.optimizer.schedule = "constant"
    config.optimizer.name = "sgd"  # updates proportional to the gradient (Adam's first step is its sign)
    return config


def _batch(config, batch=8, frames=40, seed=0):
    rng = np.random.default_rng(seed)
    features = audio_features.num_features(config.features.recipe)
    lengths = rng.integers(frames // 2, frames + 1, batch)
    mask = np.arange(frames)[None, :] < lengths[:, None]
    example_mask = np.ones(batch, bool)
    example_mask[5] = False  # a padding row
    return {
        "audio": np.where(mask[..., None], rng.normal(size=(batch, frames, features)), 0.0).astype(np.float32),
        "audio_mask": mask,
        "image": rng.normal(size=(batch, 12)).astype(np.float32),
        "image_id": np.array([0, 0, 1, 2, 2, 3, 4, 4], np.int32)[:batch],
        "example_mask": example_mask,
    }


def test_cached_train_step_has_the_full_batch_gradient():
    """train_step with K = 4 sub-batches vs jax.grad of the full-batch loss, leaf by leaf: InfoNCE
    (the learned temperature gets its gradient directly from the loss) with same-image exclusion
    and a padding row, so a sub-batch put back in the wrong row order would change the loss. With
    SGD at learning rate 1 the first update is exactly minus the gradient."""
    config = _config(loss="infonce")
    config.loss.exclude_same_image = True
    config.optimizer.lr_max = 1.0
    template = dual_encoder.Template(train.create_model(config))
    loss_fn = train.make_loss_fn(config.loss, config.model)
    batch = _batch(config)

    def full(params):
        model = template.merge(params, {}, train=True)
        speech = model.encode_speech(batch["audio"], batch["audio_mask"])
        image = model.encode_image(batch["image"], batch["example_mask"])
        return loss_fn(model, speech, image, batch, jax.random.key(0))[0]

    want, want_g = jax.jit(jax.value_and_grad(full))(template.initial_params)
    lr = optimizers.create_learning_rate_fn(config.optimizer, steps_per_epoch=10, total_steps=20)
    tx = optimizers.create_optimizer(config.optimizer, lr)
    step = functools.partial(train.train_step, template=template, tx=tx, loss_fn=loss_fn, learning_rate_fn=lr,
                             image_key="image", seed=config.seed, embedding_cache_chunks=4)
    state = train.create_train_state(template.initial_params, {}, tx)
    new, metrics = jax.jit(step)(state, batch)
    assert float(metrics["loss"]) == pytest.approx(float(want), rel=1e-6)
    want_norm = float(np.sqrt(sum(np.sum(np.square(g)) for g in jax.tree.leaves(want_g))))
    assert float(metrics["grad_norm"]) == pytest.approx(want_norm, rel=1e-5) and want_norm > 0
    got_g = jax.tree.map(lambda old, upd: np.float64(old) - np.float64(upd), state["params"], new["params"])
    scale = max(float(np.abs(w).max()) for w in jax.tree.leaves(want_g))
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6 * scale), got_g, want_g)


def test_refusals_are_clear():
    with pytest.raises(ValueError, match="without mutable state.*speech_encoder"):
        embedding_cache.check_supported(2, model_state={"speech_encoder": {"bn": {"mean": np.zeros(1)}}},
                                        batch_size=8)
    with pytest.raises(ValueError, match="batch_size=10 is not divisible"):
        embedding_cache.check_supported(4, model_state={}, batch_size=10)
    with pytest.raises(ValueError, match="padded to 16 rows"):
        embedding_cache.check_supported(3, model_state={}, batch_size=12, padded_batch_size=16)
    with pytest.raises(ValueError, match="integer >= 1"):
        embedding_cache.check_supported(0, model_state={}, batch_size=8)
    embedding_cache.check_supported(1, model_state={"anything": {"x": np.zeros(1)}}, batch_size=7)
