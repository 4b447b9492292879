"""Tests for vgs_jax.models.hg2017 (survey Table 3): parameter count, NumPy reference forward, padding."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax import config_lib
from vgs_jax.models import registry
from vgs_jax.models.hg2017 import HG2017SpeechEncoder


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    with jax.default_matmul_precision("highest"):
        yield


def _mask(lengths, t):
    return jnp.asarray(np.arange(t)[None, :] < np.asarray(lengths)[:, None])


@nnx.jit
def _call(model, x, mask):
    return model(x, mask)


def _np_conv_relu(h, kernel, bias):
    """h [L, in], kernel [k, in, out], zero padding k//2 each side, stride 1 -> ReLU [L, out], a loop."""
    k = kernel.shape[0]
    hp = np.concatenate([np.zeros((k // 2, h.shape[1])), h, np.zeros((k // 2, h.shape[1]))])
    out = np.stack([sum(hp[t + j] @ kernel[j] for j in range(k)) for t in range(len(h))]) + bias
    return np.maximum(out, 0.0)


def _np_pool(h):
    """Max over frames {2t-1, 2t, 2t+1} that exist: [L, C] -> [ceil(L/2), C]."""
    return np.stack([h[max(2 * t - 1, 0):2 * t + 2].max(axis=0) for t in range((len(h) + 1) // 2)])


def _np_hg2017(model, x):
    """One unpadded utterance [L, 40] through Table 3's layers, written out -> unit vector [C]."""
    h = np.asarray(x, np.float64)
    h = (h - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + 1e-5)
    for k, conv in enumerate(model.convs):
        h = _np_conv_relu(h, np.asarray(conv.kernel[...], np.float64), np.asarray(conv.bias[...], np.float64))
        if k in (1, 2, 3):
            h = _np_pool(h)
    v = h.mean(axis=0)
    return v / max(np.linalg.norm(v), 1e-12)   # a 1-frame utterance normalises to 0: stays 0


def test_parameter_count_of_table_3():
    abstract = nnx.eval_shape(lambda: HG2017SpeechEncoder(rngs=nnx.Rngs(0)))
    count = sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    # conv1 40*128+128, conv2 128*11*256+256, conv3 256*17*512+512, conv4 512*17*512+512,
    # conv5 512*17*1024+1024 (PyTorch Conv weight + bias).
    assert count == 5_248 + 360_704 + 2_228_736 + 4_456_960 + 8_913_920 == 15_965_568


def test_matches_numpy_reference_and_ignores_padding():
    rng = np.random.default_rng(0)
    model = HG2017SpeechEncoder(widths=(6, 8, 8, 8, 10), rngs=nnx.Rngs(0))
    lengths = [23, 9, 1]
    feats = (rng.normal(size=(3, 23, 40)) * 5 - 40).astype(np.float32)
    out = _call(model, jnp.asarray(feats), _mask(lengths, 23))
    assert out.shape == (3, 10)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(np.asarray(out[b]), _np_hg2017(model, feats[b, :n]), rtol=2e-4, atol=2e-6)
    padded = np.concatenate([feats, np.full((3, 17, 40), 55.0, np.float32)], axis=1)
    frames = nnx.jit(lambda m, x, k: m.frame_outputs(x, k))(model, jnp.asarray(padded), _mask(lengths, 40))
    assert [frames[f"conv{k}"].shape for k in range(1, 6)] == [(3, 40, c) for c in (6, 8, 8, 8, 10)]
    np.testing.assert_allclose(np.asarray(frames["pooled"]), np.asarray(out), rtol=1e-5, atol=1e-6)
    assert not np.any(np.asarray(frames["conv5"])[2, 1:])     # zero outside the input mask
    assert model.capabilities.output == "pooled" and model.capabilities.frame_outputs[-1] == "conv5"


def test_config_builds_registered_encoder_and_bad_fields_are_named():
    config = config_lib.load_config("configs/shapes_hg2017.py:tiny,v1")
    model = registry.build_speech_encoder(config.model.speech_encoder, config.model.speech, 40,
                                          rngs=nnx.Rngs(0))
    assert isinstance(model, HG2017SpeechEncoder) and model.out_features == 16
    with pytest.raises(ValueError, match="widths must be 5 positive ints"):
        HG2017SpeechEncoder(widths=(4, 4), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"features must be \[batch, time, 40\]"):
        model(jnp.zeros((1, 5, 39)), jnp.ones((1, 5), bool))
