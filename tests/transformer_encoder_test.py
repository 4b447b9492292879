"""Tests for the Transformer speech encoder: one layer vs NumPy, positions, padding, counts, grads."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax.models.transformer_encoder import (
    TransformerEncoderLayer, TransformerSpeechEncoder, sinusoidal_positions)


def _ln(x, scale, bias, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * scale + bias


def _numpy_layer(layer, x, length, num_heads):
    """PyTorch TransformerEncoderLayer (post-norm, ReLU, eval) on one sequence x [T, d], keys < length."""
    a = layer.self_attn
    w_in, b_in = np.asarray(a.in_proj_weight[...]), np.asarray(a.in_proj_bias[...])
    w_out, b_out = np.asarray(a.out_proj_weight[...]), np.asarray(a.out_proj_bias[...])
    t, d = x.shape
    hd = d // num_heads
    qkv = x @ w_in.T + b_in
    q, k, v = qkv[:, :d], qkv[:, d:2 * d], qkv[:, 2 * d:]
    ctx = np.zeros((t, d))
    for h in range(num_heads):
        sl = slice(h * hd, (h + 1) * hd)
        for i in range(t):
            scores = np.array([q[i, sl] @ k[j, sl] / math.sqrt(hd) for j in range(length)])
            w = np.exp(scores - scores.max())
            w /= w.sum()
            ctx[i, sl] = sum(w[j] * v[j, sl] for j in range(length))
    y = _ln(x + ctx @ w_out.T + b_out, np.asarray(layer.norm1.scale[...]), np.asarray(layer.norm1.bias[...]))
    ff = np.maximum(y @ np.asarray(layer.linear1.kernel[...]) + np.asarray(layer.linear1.bias[...]), 0)
    ff = ff @ np.asarray(layer.linear2.kernel[...]) + np.asarray(layer.linear2.bias[...])
    return _ln(y + ff, np.asarray(layer.norm2.scale[...]), np.asarray(layer.norm2.bias[...]))


def test_layer_matches_numpy_reference_with_padding_mask():
    layer = TransformerEncoderLayer(8, 2, 12, rngs=nnx.Rngs(0))
    layer.self_attn.in_proj_bias[...] = jax.random.normal(jax.random.key(1), (24,)) * 0.1
    layer.norm1.scale[...] = jnp.linspace(0.5, 1.5, 8)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 8)).astype(np.float32)
    lengths = [5, 3]
    mask = np.arange(5)[None] < np.array(lengths)[:, None]
    out = np.asarray(layer(jnp.asarray(x), jnp.asarray(mask)))
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(out[b], _numpy_layer(layer, x[b].astype(np.float64), n, 2),
                                   rtol=1e-4, atol=1e-5)


def test_sinusoidal_positions_hand_values():
    pe = np.asarray(sinusoidal_positions(3, 4))
    np.testing.assert_allclose(pe[0], [0, 1, 0, 1], atol=1e-7)
    np.testing.assert_allclose(pe[2], [math.sin(2), math.cos(2), math.sin(0.02), math.cos(0.02)], rtol=1e-5)
    assert sinusoidal_positions(2, 5).shape == (2, 5)


def _tiny(**kw):
    kw = dict(dict(conv_channels=5, conv_kernel=3, conv_stride=2, d_model=8, num_heads=2, num_layers=2,
                   ff_dim=16, attention_hidden=4), **kw)
    return TransformerSpeechEncoder(6, rngs=nnx.Rngs(0), **kw)


def _batch(lengths, t_max, seed=0):
    x = np.random.default_rng(seed).normal(size=(len(lengths), t_max, 6)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(np.arange(t_max)[None] < np.array(lengths)[:, None])


@pytest.mark.parametrize("positions", ["none", "sinusoidal", "learned"])
def test_shapes_and_padding_invariance(positions):
    model = _tiny(positions=positions, max_len=32)
    x, mask = _batch([20, 11, 7], 20)
    out = model(x, mask)
    assert out.shape == (3, 8) and out.dtype == jnp.float32
    alone = model(x[1:2, :11], mask[1:2, :11])
    np.testing.assert_allclose(np.asarray(out[1]), np.asarray(alone[0]), rtol=1e-5, atol=1e-6)
    frames = model.frame_outputs(x, mask)
    assert frames["layer_1"].shape == (3, 9, 8) and frames["mask"].shape == (3, 9)
    np.testing.assert_allclose(np.asarray(frames["pooled"]), np.asarray(out), rtol=1e-6)


def test_positions_change_output_and_identity_projection():
    x, mask = _batch([20], 20)
    a = _tiny(positions="none")(x, mask)
    b = _tiny(positions="sinusoidal")(x, mask)
    assert not np.allclose(np.asarray(a), np.asarray(b))
    assert _tiny(d_model=6, conv_channels=6).proj is None


def test_dropout_train_vs_eval():
    model = _tiny(dropout=0.5)
    x, mask = _batch([20, 9], 20)
    model.eval()
    e1, e2 = model(x, mask), model(x, mask)
    np.testing.assert_array_equal(np.asarray(e1), np.asarray(e2))
    model.train()
    assert not np.allclose(np.asarray(model(x, mask)), np.asarray(e1))


def _count(model):
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_param_count_platalea_reference_sizes():
    d, ff, att, layers = 512, 1024, 128, 4
    torch_layer = (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d) + 2 * 2 * d
    expected = 39 * 64 * 6 + (64 * d + d) + layers * torch_layer + (d * att + att + att * d + d)
    model = nnx.eval_shape(lambda: TransformerSpeechEncoder(39, rngs=nnx.Rngs(0)))
    assert _count(model) == expected and model.out_features == 512
    learned = nnx.eval_shape(lambda: TransformerSpeechEncoder(39, positions="learned", max_len=100,
                                                              rngs=nnx.Rngs(0)))
    assert _count(learned) == expected + 100 * d


def test_jitted_forward_backward():
    model = _tiny(positions="learned", max_len=16)
    x, mask = _batch([20, 9], 20)

    @nnx.jit
    def grads(m, x, mask):
        return nnx.grad(lambda m: jnp.sum(m(x, mask) ** 2))(m)

    leaves = jax.tree.leaves(grads(model, x, mask))
    assert leaves and all(np.all(np.isfinite(np.asarray(v))) for v in leaves)
    assert any(np.any(np.asarray(v) != 0) for v in leaves)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="positions="):
        _tiny(positions="rotary")
    with pytest.raises(ValueError, match="num_heads"):
        _tiny(num_heads=3)
    with pytest.raises(ValueError, match="max_len"):
        _tiny(positions="sinusoidal", max_len=4)(*_batch([20], 20))
