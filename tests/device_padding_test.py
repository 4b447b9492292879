"""Any batch size on any device count: a global batch of B = 100 on 8 devices is padded to 104 rows
(`example_mask` False), and one train step on it equals the same 100 examples on one device, unpadded:
loss and metrics, gradients, updated params and model state (BatchNorm statistics, codebooks)."""

import functools

from flax import nnx
import jax
import numpy as np
import optax
import pytest

from vgs_jax import audio_features
from vgs_jax import config_lib
from vgs_jax import evaluation
from vgs_jax import inference
from vgs_jax import input_pipeline
from vgs_jax import train
from vgs_jax.models import dual_encoder
from vgs_jax.models import image_trunks

BATCH = 100
HOP = 160


def _source(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"audio": rng.integers(-3000, 3000, int(rng.integers(20, 60)) * HOP).astype(np.int16),
             "image": rng.integers(0, 256, (64, 64, 3)).astype(np.uint8),
             "image_id": i // 2, "caption_id": i} for i in range(n)]


def _toy_featurizer(num_features: int):
    """int16 [N] -> float32 [N // HOP, num_features]: the first samples of each 10 ms frame, scaled."""
    def featurize(waveform):
        frames = len(waveform) // HOP
        return (waveform[:frames * HOP].reshape(frames, HOP)[:, :num_features] / 3000.0).astype(np.float32)
    return featurize


def _padded_and_plain_batch(config) -> tuple[dict, dict]:
    """The pipeline's batch of 100 examples on 8 devices (104 rows) and its 100 real rows."""
    num_features = audio_features.num_features(config.features.recipe)
    featurizer = audio_features.Featurizer(_toy_featurizer(num_features), pad_value=0.0, num_features=num_features)
    batch = next(input_pipeline.make_train_iterator(
        _source(BATCH), global_batch_size=BATCH, featurizer=featurizer, seed=0, max_frames=None,
        bucket_boundaries=None, num_threads=0, prefetch_batches=0))
    assert batch["example_mask"].tolist() == [True] * BATCH + [False] * 4
    return batch, {k: v[:BATCH] for k, v in batch.items()}


def _gru_hinge_plus_infonce():
    """The tiny GRU whose objective is platalea's hinge plus InfoNCE (both losses in one step)."""
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    infonce = config.loss.copy_and_resolve_references()
    infonce.name = "infonce"
    hinge_fn = train.make_loss_fn(config.loss, config.model)
    infonce_fn = train.make_loss_fn(infonce, config.model)

    def loss_fn(*args):
        (hinge, _), (nce, _) = hinge_fn(*args), infonce_fn(*args)
        return hinge + nce, {"platalea_hinge": hinge, "infonce": nce}

    assert config.loss.name == "platalea_hinge"
    return config, loss_fn


def _resdavenet_vq_semihard():
    """Tiny ResDAVEnet-VQ {2,3}: BatchNorm, codebooks, jitter, sampled + semi-hard hinges."""
    config = config_lib.load_config("configs/shapes_resdavenet.py:tiny,vq=23,v1")
    assert config.loss.name == "semihard_hinge" and config.model.speech.jitter > 0
    return config, train.make_loss_fn(config.loss, config.model)


@pytest.mark.parametrize("setup", [_gru_hinge_plus_infonce, _resdavenet_vq_semihard])
def test_padded_step_on_eight_devices_equals_unpadded_step_on_one(setup):
    config, loss_fn = setup()
    mesh = input_pipeline.data_mesh()
    assert mesh.size == 8
    padded, plain = _padded_and_plain_batch(config)

    template = dual_encoder.Template(train.create_model(config))
    tx = optax.sgd(1.0)  # new params = params - gradients
    state = train.create_train_state(template.initial_params, template.initial_model_state, tx)
    step = jax.jit(functools.partial(
        train.train_step, template=template, tx=tx, loss_fn=loss_fn,
        learning_rate_fn=optax.constant_schedule(1.0), image_key="image", seed=config.seed))
    one_device = jax.devices()[0]
    one, m1 = step(jax.device_put(state, one_device), jax.device_put(plain, one_device))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    eight, m8 = step(jax.device_put(state, replicated), input_pipeline.shard_batch(padded, mesh))

    m1, m8 = jax.device_get((m1, m8))
    assert set(m1) == set(m8)
    for key in m1:
        np.testing.assert_allclose(np.asarray(m8[key], float), np.asarray(m1[key], float), rtol=1e-4, atol=1e-6,
                                   err_msg=key)
    grads = lambda new: jax.tree.map(lambda p0, p1: np.asarray(p0) - np.asarray(p1), state["params"], new["params"])
    g1, g8 = grads(one), grads(eight)
    assert all(np.any(g != 0) for g in jax.tree.leaves(g1["speech_encoder"]))
    scale = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(g1))
    for path, a, b in _leaves(g1, g8):  # e.g. a conv bias before a GroupNorm has gradient ~0: absolute tolerance
        np.testing.assert_allclose(b, a, rtol=2e-3, atol=1e-5 * scale, err_msg=path)
    for path, a, b in _leaves(one["model_state"], eight["model_state"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=path)


def _leaves(a, b):
    """(path, leaf of a, leaf of b) as NumPy, for two pytrees of the same structure."""
    paths = jax.tree_util.tree_leaves_with_path(a)
    return [(jax.tree_util.keystr(p), np.asarray(x), np.asarray(y))
            for (p, x), y in zip(paths, jax.tree.leaves(b))]


def test_resnet_trunk_batchnorm_statistics_come_from_valid_rows_only(monkeypatch):
    # One bottleneck per stage keeps the test small; every kind of BatchNorm (stem, bn1..bn3,
    # downsample) is still there. Padding rows hold extreme pixels, at positions 1 and 4.
    monkeypatch.setitem(image_trunks.RESNET_BLOCKS, 50, (1, 1, 1, 1))
    plain_trunk = nnx.jit(lambda: image_trunks.ResNet50Trunk(out_features=8, rngs=nnx.Rngs(0)))()
    padded_trunk = nnx.clone(plain_trunk)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 64, 64, 3)).astype(np.uint8)
    padded = np.concatenate([images[:1], np.zeros_like(images[:1]), images[1:], np.full_like(images[:1], 255)])
    mask = np.array([True, False, True, True, False])
    call = nnx.jit(lambda trunk, x, m: trunk(x, m)[0])
    stats = lambda trunk: nnx.to_pure_dict(nnx.state(trunk, nnx.BatchStat))
    initial = stats(plain_trunk)

    want = call(plain_trunk, images, None)
    got = call(padded_trunk, padded, mask)
    np.testing.assert_allclose(np.asarray(got)[mask], np.asarray(want), rtol=1e-4, atol=1e-5)
    for path, a, b in _leaves(stats(plain_trunk), stats(padded_trunk)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=path)
    assert all(not np.allclose(a, b) for _, a, b in _leaves(initial, stats(padded_trunk)))  # all updated


def test_evaluation_pads_any_eval_batch_size_like_training():
    """Evaluation batches follow training's rule (`input_pipeline.padded_batch_size`: masked padding
    rows up to a multiple of the device count): eval batch sizes that 8 devices do not divide give
    the embeddings and metrics of one that they do."""
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    template = dual_encoder.Template(train.create_model(config))
    source = _source(30)
    num_features = audio_features.num_features(config.features.recipe)
    featurizer = audio_features.Featurizer(_toy_featurizer(num_features), pad_value=0.0, num_features=num_features)
    run = lambda fn, batch_size: fn(
        template, template.initial_params, source, batch_size=batch_size, featurizer=featurizer,
        features_config=config.features, image_key="image", mesh=input_pipeline.data_mesh())
    assert [input_pipeline.padded_batch_size(b) for b in (5, 12, 16)] == [8, 16, 16]
    want = run(inference.embed_split, 16)
    want_metrics = run(evaluation.evaluate_split, 16)
    for batch_size in (5, 12, 30):
        got = run(inference.embed_split, batch_size)
        for key in ("z_speech", "z_image"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=f"{key} at {batch_size}")
        for key in ("caption_image", "image_id", "caption_id"):
            np.testing.assert_array_equal(got[key], want[key])
        assert run(evaluation.evaluate_split, batch_size) == want_metrics
