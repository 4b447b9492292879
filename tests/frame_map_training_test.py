"""Frame-map models (DAVEnet, ResDAVEnet-VQ) and the loss family in the trainer: the train step,
model state (BatchNorm statistics, VQ codebooks), optimizers, schedules, matchmap evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vgs_jax import config_lib
from vgs_jax import evaluation
from vgs_jax import input_pipeline
from vgs_jax import optimizers
from vgs_jax import retrieval
from vgs_jax import train
from vgs_jax.models import dual_encoder
from vgs_jax.objectives import similarity
from tests import model_test_helpers as helpers


def _step_fn(config, mesh=None):
    template, step, state = helpers.train_step(config, mesh)
    return template, jax.jit(step), state


def _config(spec):
    config = config_lib.load_config(spec)
    config.unlock()
    return config


def test_step_decay_schedule_counts_epochs_from_one():
    fn = optimizers.step_decay_schedule(lr=1.0, factor=0.5, every_epochs=3, steps_per_epoch=10)
    # epochs 1, 2 -> 0.5^0; epochs 3..5 -> 0.5^1; epoch 6 -> 0.5^2 (DAVEnet's lr * f^(epoch // n)).
    expected = {0: 1.0, 19: 1.0, 20: 0.5, 49: 0.5, 50: 0.25}
    for step, value in expected.items():
        assert float(fn(step)) == pytest.approx(value)
    with pytest.raises(ValueError, match="decay_epochs"):
        optimizers.step_decay_schedule(lr=1.0, factor=0.5, every_epochs=0, steps_per_epoch=10)


def test_sgd_momentum_matches_pytorch_and_frozen_leaves_never_move():
    config = config_lib.base_config()
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.weight_decay = 0.1
    params = {"image_encoder": {"embedder": {"w": np.array([1.0])}, "features": {"w": np.array([2.0])}},
              "speech_encoder": {"w": np.array([3.0])}}
    trainable = {"image_encoder": {"embedder": {"w": True}, "features": {"w": False}}, "speech_encoder": {"w": True}}
    tx = optimizers.create_optimizer(config.optimizer, lambda step: 0.5, trainable=trainable)
    opt_state = tx.init(params)
    grads = jax.tree.map(lambda p: np.array([1.0]), params)
    # PyTorch SGD: d = g + wd * p; buf = d (first step), then buf = m * buf + d; p -= lr * buf.
    w, buf = 3.0, None
    p = params
    for _ in range(3):
        d = 1.0 + 0.1 * w
        buf = d if buf is None else 0.9 * buf + d
        w -= 0.5 * buf
        updates, opt_state = tx.update(grads, opt_state, p)
        p = optax.apply_updates(p, updates)
    assert float(p["speech_encoder"]["w"][0]) == pytest.approx(w, rel=1e-6)
    assert float(p["image_encoder"]["features"]["w"][0]) == 2.0  # frozen: no gradient, no decay
    assert float(p["image_encoder"]["embedder"]["w"][0]) != 1.0
    config.optimizer.name = "rmsprop"
    with pytest.raises(ValueError, match="rmsprop"):
        optimizers.create_optimizer(config.optimizer, lambda step: 0.5)


def test_resdavenet_vq_step_updates_batch_stats_codebooks_and_adds_commitment():
    config = _config("configs/shapes_resdavenet.py:tiny,vq=23,v1")
    template, step, state = _step_fn(config)
    new_state, metrics = step(state, helpers.train_batch())
    before, after = state["model_state"], new_state["model_state"]
    assert set(after) == set(before)
    changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), before, after)
    speech = changed["speech_encoder"]
    assert speech["bn1"]["mean"] and speech["bn1"]["var"]
    assert speech["quantizers"][1]["codebook"] and speech["quantizers"][2]["ema_counts"]
    assert float(metrics["loss"]) == pytest.approx(float(metrics["retrieval_loss"] + metrics["vq_loss"]), rel=1e-5)
    assert float(metrics["vq_loss"]) > 0
    assert 1.0 <= float(metrics["quant2_perplexity"]) <= 16.0
    assert int(new_state["step"]) == 1


def test_batchnorm_step_on_eight_devices_equals_one_device():
    config = _config("configs/shapes_resdavenet.py:tiny,v1")
    mesh = input_pipeline.data_mesh()
    assert mesh.size == 8
    _, step, state = _step_fn(config)
    batch = helpers.train_batch(batch=16)
    one, m1 = step(jax.device_put(state, jax.devices()[0]), jax.device_put(batch, jax.devices()[0]))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    eight, m8 = step(jax.device_put(state, replicated), input_pipeline.shard_batch(batch, mesh))
    assert float(m1["loss"]) == pytest.approx(float(m8["loss"]), rel=1e-4)
    for a, b in zip(jax.tree.leaves(one["params"]), jax.tree.leaves(eight["params"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-3, atol=2e-5)
    for a, b in zip(jax.tree.leaves(one["model_state"]), jax.tree.leaves(eight["model_state"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_step_randomness_follows_the_step_counter():
    config = _config("configs/shapes_transformer.py:tiny,v1")
    config.model.speech.dropout = 0.5
    config.model.speech.num_layers = 1
    config.features.recipe = "davenet_logmel"  # 40 features, as the synthetic batch
    _, step, state = _step_fn(config)
    batch = helpers.train_batch()
    _, a = step(state, batch)
    _, b = step(state, batch)
    later = dict(state, step=jnp.asarray(5, jnp.int32))
    _, c = step(later, batch)
    assert float(a["loss"]) == float(b["loss"])  # same step, same dropout masks
    assert float(a["loss"]) != float(c["loss"])  # another step, fresh masks


def test_davenet_matchmap_scores_ignore_padding():
    config = _config("configs/shapes_davenet.py:tiny,v1")
    template = dual_encoder.Template(train.create_model(config))
    model = template.merge(template.initial_params)  # eval mode
    batch = helpers.train_batch(batch=4, frames=80)
    padded = np.pad(batch["audio"], ((0, 0), (0, 48), (0, 0)))
    padded_mask = np.pad(batch["audio_mask"], ((0, 0), (0, 48)))
    image = model.encode_image(batch["image"])
    short = similarity.similarity_matrix(model.encode_speech(batch["audio"], batch["audio_mask"]), image, "MISA")
    long = similarity.similarity_matrix(model.encode_speech(padded, padded_mask), image, "MISA")
    np.testing.assert_allclose(np.asarray(short), np.asarray(long), rtol=1e-5, atol=1e-5)


def test_score_matrix_equals_a_slow_matchmap_loop():
    rng = np.random.default_rng(1)
    n, m, t, e = 7, 3, 5, 4
    lengths = rng.integers(1, t + 1, n)
    emb = {
        "z_speech": rng.normal(size=(n, e)).astype(np.float32),
        "z_image": rng.normal(size=(m, e)).astype(np.float32),
        "speech_map": rng.normal(size=(n, t, e)).astype(np.float32),
        "speech_map_mask": np.arange(t)[None, :] < lengths[:, None],
        "image_map": rng.normal(size=(m, 2, 3, e)).astype(np.float32),
        "image_map_mask": np.ones((m, 2, 3), bool),
    }
    for name in ("MISA", "SIMA", "SISA", "fragment"):
        slow = np.zeros((n, m), np.float32)
        for a in range(n):
            for i in range(m):
                mm = emb["image_map"][i].reshape(6, e) @ emb["speech_map"][a, :lengths[a]].T  # [cells, frames]
                slow[a, i] = {"MISA": mm.max(0).mean(), "SIMA": mm.max(1).mean(), "SISA": mm.mean(),
                              "fragment": np.maximum(mm.max(1), 0).sum()}[name]
        np.testing.assert_allclose(evaluation.score_matrix(emb, name), slow, rtol=1e-5, atol=1e-5)


def test_retrieval_from_scores_equals_retrieval_from_embeddings():
    rng = np.random.default_rng(2)
    zs, zi = rng.normal(size=(30, 8)).astype(np.float32), rng.normal(size=(10, 8)).astype(np.float32)
    zi[3] = zi[4]  # a tie
    ci = np.repeat(np.arange(10), 3)
    expected = retrieval.retrieval_metrics(zs, zi, ci)
    scores = np.asarray(jnp.matmul(zs, zi.T, precision=jax.lax.Precision.HIGHEST))
    assert retrieval.retrieval_metrics_from_scores(scores, ci, chunk_size=7) == expected


def test_sigmoid_loss_in_the_trainer_chunked_equals_plain():
    config = _config("configs/shapes_davenet.py:tiny,v1")
    config.model.similarity = "cosine"
    config.model.temperature_init = 0.1
    config.model.logit_bias_init = -10.0
    config.loss.name = "sigmoid"
    config.optimizer.schedule = "constant"  # a non-zero first step, so the bias must move
    mesh = input_pipeline.data_mesh()
    batch = helpers.train_batch(batch=16)
    results = []
    for chunked in (False, True):
        config.loss.chunked = chunked
        _, step, state = _step_fn(config, mesh)
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        new, metrics = step(jax.device_put(state, replicated), input_pipeline.shard_batch(batch, mesh))
        results.append((float(metrics["loss"]), new["params"]["logit_bias"]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-5)
    assert float(results[0][1]) != -10.0  # the bias is learned


def test_objective_and_similarity_mismatches_are_clear_errors():
    config = _config("configs/shapes_davenet.py:tiny,v1")
    config.loss.name = "platalea_hinge"
    with pytest.raises(ValueError, match="similarity='cosine'"):
        train.make_loss_fn(config.loss, config.model)
    config.model.similarity = "cosine"
    config.loss.name = "sigmoid"
    with pytest.raises(ValueError, match="logit_bias_init"):
        train.make_loss_fn(config.loss, config.model)
    config.loss.name = "triplet"
    with pytest.raises(ValueError, match="triplet"):
        train.make_loss_fn(config.loss, config.model)
    gru = _config("configs/shapes_gru.py:tiny,v1")
    gru.model.similarity = "MISA"
    with pytest.raises(ValueError, match="frame maps"):
        train.create_model(gru)


def test_vq_warm_start_copies_the_seed_run(shapes_data_dir, tmp_path):
    seed = _config("configs/shapes_resdavenet.py:tiny,v1")
    seed.dataset.data_dir = shapes_data_dir
    seed.num_train_steps = 2
    train.train_and_evaluate(seed, str(tmp_path / "seed"))
    _, _, template, seed_params = evaluation.restore_model(str(tmp_path / "seed"), "best")

    vq = _config("configs/shapes_resdavenet.py:tiny,vq=23,v1")
    vq.dataset.data_dir = shapes_data_dir
    vq.init_from = str(tmp_path / "seed")
    trainer = train.Trainer(vq)
    start = jax.device_get(trainer.initial_state)
    np.testing.assert_array_equal(start["params"]["speech_encoder"]["conv1"]["kernel"],
                                  seed_params["speech_encoder"]["conv1"]["kernel"])
    fresh = dual_encoder.Template(train.create_model(vq)).initial_model_state
    np.testing.assert_array_equal(start["model_state"]["speech_encoder"]["quantizers"][1]["codebook"],
                                  fresh["speech_encoder"]["quantizers"][1]["codebook"])
    vq.init_from = str(tmp_path / "missing")
    with pytest.raises(Exception, match="missing"):
        train.Trainer(vq)
