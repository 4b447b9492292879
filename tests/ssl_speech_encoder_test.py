"""The SSL speech tower: freezing (gradients and optimizer mask), weighted layers, poolings, padding, weights."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax import config_checks
from vgs_jax import config_lib
from vgs_jax import optimizers
from vgs_jax import train
from vgs_jax.analysis import activations
from vgs_jax.models import capabilities as caps
from vgs_jax.models import ssl_weights
from vgs_jax.models.ssl_speech_encoder import SSLSpeechEncoder, normalize_waveform

REF = os.path.join(os.path.dirname(__file__), "data", "ssl_reference")
TINY = dict(size="custom", conv_dim=(4, 4), conv_kernel=(10, 3), conv_stride=(5, 2), conv_bias=False, feat_norm="group", hidden=8,
            num_layers=2, num_heads=2, ff_dim=16, layer_norm_first=False, pos_kernel=4, pos_groups=2,
            attention_hidden=4)


def _encoder(**fields):
    return SSLSpeechEncoder(1, **{**TINY, **fields}, rngs=nnx.Rngs(0))


def _batch():
    wave = np.random.default_rng(0).standard_normal((2, 400)).astype(np.float32)
    mask = np.ones((2, 400), bool)
    mask[1, 300:] = False
    return jnp.asarray(np.where(mask, wave, 0.0)[..., None]), jnp.asarray(mask)


def _flat(tree):
    return {"/".join(str(getattr(k, "key", k)) for k in path): v
            for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


@nnx.jit
def _grads(enc, x, mask):
    return nnx.grad(lambda m: jnp.sum(m(x, mask) ** 2))(enc)


@nnx.jit
def _outputs(enc, x, mask):
    return enc.frame_outputs(x, mask)


@pytest.mark.parametrize("freeze", ["feature_extractor", "all"])
def test_freezing_stops_gradients(freeze):
    enc = _encoder(freeze=freeze, pooling="vectorial")
    grads = _flat(nnx.to_pure_dict(_grads(enc, *_batch())))
    trainable = _flat(SSLSpeechEncoder.trainable_mask(nnx.to_pure_dict(nnx.state(enc, nnx.Param)), freeze))
    frozen_prefix = {"feature_extractor": "ssl/feature_extractor/", "all": "ssl/"}[freeze]
    for name, g in grads.items():
        frozen = name.startswith(frozen_prefix)
        assert trainable[name] == (not frozen), name
        assert np.any(np.asarray(g)) == (not frozen), name  # every other parameter gets a gradient
    assert all(_flat(SSLSpeechEncoder.trainable_mask(nnx.to_pure_dict(nnx.state(enc, nnx.Param)), "none")).values())


def test_train_mask_keeps_frozen_weights_under_weight_decay():
    config = config_lib.load_config("configs/shapes_ssl_vgs.py:tiny,v1")
    config.model.speech.freeze = "all"
    abstract = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: train.create_model(config)), nnx.Param))
    params = jax.tree.map(lambda a: jnp.ones(a.shape, a.dtype), abstract)
    config.optimizer.weight_decay = 0.1
    tx = optimizers.create_optimizer(config.optimizer, lambda step: 1.0, trainable=train.trainable_mask(config, params))
    updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
    moved = {k: bool(np.any(np.asarray(u))) for k, u in _flat(updates).items()}
    assert not any(v for k, v in moved.items() if k.startswith("speech_encoder/ssl/"))
    assert all(v for k, v in moved.items() if not k.startswith("speech_encoder/ssl/"))


@pytest.mark.parametrize("pooling", ["mean", "cls_parallel", "cls_cascaded"])  # vectorial: configs/shapes_ssl_vgs
def test_poolings_ignore_padding(pooling):
    enc = _encoder(pooling=pooling, out_features=6, num_keywords=3, layers="weighted")
    x, mask = _batch()
    out = _outputs(enc, x, mask)
    assert out["pooled"].shape == (2, 6)
    assert set(enc.capabilities.frame_outputs) <= set(out)
    assert (enc.capabilities.frame_clock.stride, enc.capabilities.frame_clock.kernel) == (10, 20)
    garbage = _outputs(enc, jnp.where(mask[..., None], x, 9.0), mask)  # what padding holds must not matter
    np.testing.assert_allclose(out["pooled"], garbage["pooled"], atol=1e-5)
    if pooling != "mean":
        return
    # The slow obvious versions: the weighted sum of hidden states (equal weights at init), the average
    # of the valid frames, then the projection.
    states = [out["input"], out["layer_0"], out["layer_1"]]
    np.testing.assert_allclose(out["features"], sum(states) / 3, atol=1e-5)
    f, m = np.asarray(out["features"]), np.asarray(out["mask"])
    manual = np.stack([f[b][m[b]].mean(0) for b in range(2)])
    np.testing.assert_allclose(out["pooled"], enc.proj(jnp.asarray(manual)), atol=1e-5)
    enc.layer_weights[...] = jnp.array([0.0, 0.0, 60.0])
    np.testing.assert_allclose(_outputs(enc, x, mask)["features"], out["layer_1"], atol=1e-5)


def test_frame_times_on_the_sample_clock():
    times = activations.frame_times(caps.FrameClock(320, 400), "raw")  # the published conv stack
    assert times["frame_step"] == pytest.approx(0.02) and times["frame_start"] == pytest.approx(199.5 / 16000)


def test_normalize_waveform_uses_valid_samples_only():
    x, mask = _batch()
    got = np.asarray(normalize_waveform(x[..., 0], mask))
    row = np.asarray(x[1, :300, 0], np.float64)
    np.testing.assert_allclose(got[1, :300], (row - row.mean()) / np.sqrt(row.var() + 1e-7), atol=1e-5)
    assert not np.any(got[1, 300:])


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="recipe='raw'"):
        SSLSpeechEncoder(39, **TINY, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="conv_dim .* must be given together"):
        _encoder(conv_kernel=(10,))
    with pytest.raises(ValueError, match="pooling='max'.*cls_parallel"):
        _encoder(pooling="max")
    with pytest.raises(ValueError, match="fewer than the conv stack's receptive field \\(20\\)"):
        _encoder()(jnp.zeros((1, 15, 1)), jnp.ones((1, 15), bool))
    config = config_lib.load_config("configs/places_fast_vgs_coarse.py")
    with pytest.raises(config_checks.ConfigValueError, match="model.speech.weights='pretrained/wav2vec_small.pt'"):
        config_checks.check_training_config(config)  # before any data is read
    with pytest.raises(FileNotFoundError, match="'pretrained/wav2vec_small.pt' does not exist.*wav2vec_small.pt"):
        train.create_model(config)


def test_weights_field_loads_the_checkpoint():
    hf = json.load(open(os.path.join(REF, "wav2vec2", "config.json")))
    fields = ssl_weights.model_fields_from_hf_config(hf)
    del fields["conv_layers"]
    enc = SSLSpeechEncoder(1, size="custom", conv_dim=hf["conv_dim"], conv_kernel=hf["conv_kernel"],
                           conv_stride=hf["conv_stride"], **fields, weights=os.path.join(REF, "wav2vec2"),
                           rngs=nnx.Rngs(0))
    state, _ = ssl_weights.load_state_dict(os.path.join(REF, "wav2vec2"))
    np.testing.assert_array_equal(enc.ssl.feature_projection.kernel[...],
                                  state["feature_projection.projection.weight"].T)
