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


def _config(spec="configs/shapes_gru.py:tiny", loss="platalea_hinge"):
    config = config_lib.load_config(spec)
    config.unlock()
    config.loss.name = loss
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
        "image": rng.integers(0, 256, (batch, 64, 64, 3)).astype(np.uint8),
        "image_id": np.array([0, 0, 1, 2, 2, 3, 4, 4], np.int32)[:batch],
        "example_mask": example_mask,
    }


def _step(config, chunks):
    template = dual_encoder.Template(train.create_model(config))
    lr = optimizers.create_learning_rate_fn(config.optimizer, steps_per_epoch=10, total_steps=20)
    tx = optimizers.create_optimizer(config.optimizer, lr)
    step = functools.partial(train.train_step, template=template, tx=tx,
                             loss_fn=train.make_loss_fn(config.loss, config.model), learning_rate_fn=lr,
                             image_key="image", seed=config.seed, embedding_cache_chunks=chunks)
    return jax.jit(step), train.create_train_state(template.initial_params, template.initial_model_state, tx)


def test_cached_step_equals_full_batch_step():
    """Same loss, gradient norm and updated parameters with K = 1 (plain) and K = 2 (cached), with
    sampled impostors (semihard_hinge: the draws depend on the row order, kept)."""
    config = _config(loss="semihard_hinge")
    batch = _batch(config)
    results = []
    for chunks in (1, 2):
        step, state = _step(config, chunks)
        new, metrics = step(state, batch)
        results.append((metrics, new["params"]))
    (want_m, want_p), others = results[0], results[1:]
    assert float(want_m["grad_norm"]) > 0
    for got_m, got_p in others:
        assert float(got_m["loss"]) == pytest.approx(float(want_m["loss"]), rel=1e-6)
        assert float(got_m["grad_norm"]) == pytest.approx(float(want_m["grad_norm"]), rel=1e-5)
        jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7), got_p, want_p)


def test_cached_gradients_equal_full_batch_gradients():
    """The raw parameter gradients, leaf by leaf, with InfoNCE (the learned temperature gets its
    gradient directly from the loss) and same-image exclusion."""
    config = _config(loss="infonce")
    config.loss.exclude_same_image = True
    template = dual_encoder.Template(train.create_model(config))
    loss_fn = train.make_loss_fn(config.loss, config.model)
    batch = _batch(config)
    keys = dict(zip(("k_jitter", "k_loss", "k_dropout"), jax.random.split(jax.random.key(0), 3)))

    def full(params):
        model = template.merge(params, {}, train=True)
        speech = model.encode_speech(batch["audio"], batch["audio_mask"])
        image = model.encode_image(batch["image"], batch["example_mask"])
        return loss_fn(model, speech, image, batch, keys["k_loss"])

    (want, _), want_g = jax.jit(jax.value_and_grad(full, has_aux=True))(template.initial_params)
    (got, _), got_g = jax.jit(functools.partial(
        embedding_cache.cached_value_and_grad, template=template, model_state={}, loss_fn=loss_fn,
        image_key="image", chunks=4, **keys))(template.initial_params, batch)
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    scale = max(float(np.abs(w).max()) for w in jax.tree.leaves(want_g))  # leaves that are ~0 agree to rounding
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6 * scale), got_g, want_g)


def test_refusals_are_clear():
    with pytest.raises(ValueError, match="without mutable state.*speech_encoder"):
        embedding_cache.check_supported(2, model_state={"speech_encoder": {"bn": {"mean": np.zeros(1)}}},
                                        batch_size=8)
    with pytest.raises(ValueError, match="batch_size=10 is not divisible"):
        embedding_cache.check_supported(4, model_state={}, batch_size=10)
    with pytest.raises(ValueError, match="integer >= 1"):
        embedding_cache.check_supported(0, model_state={}, batch_size=8)
    embedding_cache.check_supported(1, model_state={"anything": {"x": np.zeros(1)}}, batch_size=7)
