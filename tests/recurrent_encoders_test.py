"""Tests for the RHN and speech2image encoders against slow NumPy loops and PyTorch formulas."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax.models.conv_rnn_encoders import Speech2ImageEncoder
from vgs_jax.models.recurrent_encoders import RHNLayer, RHNSpeechEncoder, ScalarAttentionPooling
from vgs_jax.models.recurrent_layers import BiLSTM, LSTMLayer


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_rhn(layer, x, length):
    """Slow loop over one sequence x [T, in] (valid frames only) -> [length, H]."""
    p = {k: np.asarray(getattr(layer, k)[...]) for k in ("w_h", "w_t", "b_h", "b_t", "u_h", "u_t", "c_h", "c_t")}
    s = np.zeros(layer.hidden)
    out = []
    for t in range(length):
        for l in range(layer.depth):
            if l == 0:
                h = np.tanh(x[t] @ p["w_h"] + p["b_h"] + s @ p["u_h"][0])
                g = _sig(x[t] @ p["w_t"] + p["b_t"] + s @ p["u_t"][0])
            else:
                h = np.tanh(s @ p["u_h"][l] + p["c_h"][l - 1])
                g = _sig(s @ p["u_t"][l] + p["c_t"][l - 1])
            s = h * g + s * (1 - g)
        out.append(s)
    return np.array(out).reshape(length, layer.hidden)


def _numpy_lstm(layer, x, length, reverse=False):
    w_ih, w_hh = np.asarray(layer.w_ih[...]), np.asarray(layer.w_hh[...])
    b = np.asarray(layer.b_ih[...]) + np.asarray(layer.b_hh[...])
    hd = layer.hidden
    h, c = np.zeros(hd), np.zeros(hd)
    out = np.zeros((length, hd))
    order = range(length - 1, -1, -1) if reverse else range(length)
    for t in order:
        g = w_ih @ x[t] + w_hh @ h + b
        i, f, gg, o = _sig(g[:hd]), _sig(g[hd:2 * hd]), np.tanh(g[2 * hd:3 * hd]), _sig(g[3 * hd:])
        c = f * c + i * gg
        h = o * np.tanh(c)
        out[t] = h
    return out


def _batch(rng, lengths, t_max, d):
    x = rng.normal(size=(len(lengths), t_max, d)).astype(np.float32)
    mask = np.arange(t_max)[None, :] < np.array(lengths)[:, None]
    return jnp.asarray(x), jnp.asarray(mask)


def test_rhn_layer_hand_case_depth1():
    layer = RHNLayer(1, 1, 1, rngs=nnx.Rngs(0))
    layer.w_h[...] = jnp.ones((1, 1))
    layer.w_t[...] = jnp.zeros((1, 1))
    layer.b_h[...] = jnp.zeros((1,))
    layer.b_t[...] = jnp.zeros((1,))
    layer.u_h[...] = jnp.zeros((1, 1, 1))
    layer.u_t[...] = jnp.zeros((1, 1, 1))
    # t = 0.5 always; s1 = 0.5 tanh(1); s2 = 0.5 tanh(2) + 0.5 s1.
    out = layer(jnp.array([[[1.0], [2.0]]]), jnp.array([[True, True]]))
    s1 = 0.5 * np.tanh(1.0)
    np.testing.assert_allclose(np.asarray(out)[0, :, 0], [s1, 0.5 * np.tanh(2.0) + 0.5 * s1], rtol=1e-6)


@pytest.mark.parametrize("depth", [1, 3])
def test_rhn_layer_matches_numpy_loop(depth):
    layer = RHNLayer(5, 7, depth, rngs=nnx.Rngs(1))
    # Larger weights than the 0.04 init so the test exercises the nonlinearity.
    for name in ("w_h", "w_t", "u_h", "u_t"):
        p = getattr(layer, name)
        p[...] = p[...] * 20.0
    lengths = [6, 3, 0]
    x, mask = _batch(np.random.default_rng(0), lengths, 6, 5)
    out = np.asarray(layer(x, mask))
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(out[b, :n], _numpy_rhn(layer, np.asarray(x[b]), n), rtol=1e-5, atol=1e-5)
        assert np.all(out[b, n:] == 0)


def test_rhn_init_matches_reference():
    layer = RHNLayer(4, 8, 2, rngs=nnx.Rngs(0))
    assert np.all(np.asarray(layer.b_t[...]) == -2.0) and np.all(np.asarray(layer.c_t[...]) == -2.0)
    assert np.max(np.abs(np.asarray(layer.u_h[...]))) <= 0.04
    assert layer.c_h[...].shape == (1, 8)


def test_scalar_attention_matches_numpy():
    pool = ScalarAttentionPooling(3, 4, rngs=nnx.Rngs(0))
    x, mask = _batch(np.random.default_rng(1), [5, 2], 5, 3)
    out = np.asarray(pool(x, mask))
    w1, b1 = np.asarray(pool.hidden_layer.kernel[...]), np.asarray(pool.hidden_layer.bias[...])
    w2, b2 = np.asarray(pool.out_layer.kernel[...]), np.asarray(pool.out_layer.bias[...])
    for b, n in enumerate([5, 2]):
        h = np.asarray(x[b, :n])
        logits = (np.tanh(h @ w1 + b1) @ w2 + b2)[:, 0]
        a = np.exp(logits - logits.max())
        a /= a.sum()
        np.testing.assert_allclose(out[b], a @ h, rtol=1e-5, atol=1e-6)


def test_scalar_attention_unmasked_spreads_mass_to_padding():
    pool = ScalarAttentionPooling(3, 4, mask_padding=False, rngs=nnx.Rngs(0))
    x, mask = _batch(np.random.default_rng(1), [2], 5, 3)
    alpha = np.asarray(pool.weights(x, mask))
    assert alpha[0, 2:].sum() > 0 and abs(alpha.sum() - 1) < 1e-5


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_layer_matches_numpy_loop(reverse):
    layer = LSTMLayer(4, 6, rngs=nnx.Rngs(2))
    lengths = [7, 4]
    x, mask = _batch(np.random.default_rng(2), lengths, 7, 4)
    out = np.asarray(layer(x, mask, reverse=reverse))
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(out[b, :n], _numpy_lstm(layer, np.asarray(x[b]), n, reverse),
                                   rtol=1e-5, atol=1e-5)
        assert np.all(out[b, n:] == 0)


def test_bilstm_equals_two_directions():
    bi = BiLSTM(4, 5, rngs=nnx.Rngs(3))
    x, mask = _batch(np.random.default_rng(3), [6, 2], 6, 4)
    out = np.asarray(bi(x, mask))
    np.testing.assert_allclose(out[..., :5], np.asarray(bi.forward(x, mask)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[..., 5:], np.asarray(bi.backward(x, mask, reverse=True)), rtol=1e-6, atol=1e-6)


def _tiny(kind, **kw):
    if kind == "rhn":
        return RHNSpeechEncoder(6, conv_channels=5, conv_kernel=3, conv_stride=2, hidden=8, num_layers=2,
                                depth=2, attention_hidden=4, rngs=nnx.Rngs(0), **kw)
    return Speech2ImageEncoder(6, rnn=kind, conv_channels=5, conv_kernel=3, conv_stride=2, hidden=4,
                               num_layers=2, attention_hidden=4, rngs=nnx.Rngs(0), **kw)


@pytest.mark.parametrize("kind", ["rhn", "gru", "lstm"])
def test_shapes_and_padding_invariance(kind):
    model = _tiny(kind)
    x, mask = _batch(np.random.default_rng(4), [20, 11, 7], 20, 6)
    frames = model.frame_outputs(x, mask)  # __call__ returns frames["pooled"]
    out = frames["pooled"]
    assert out.shape == (3, model.out_features) and out.dtype == jnp.float32
    assert frames["mask"].shape == (3, 9)
    alone = model(x[1:2, :11], mask[1:2, :11])
    np.testing.assert_allclose(np.asarray(out[1]), np.asarray(alone[0]), rtol=1e-5, atol=1e-6)


def test_rhn_residual_stacking():
    model = _tiny("rhn")
    x, mask = _batch(np.random.default_rng(5), [20], 20, 6)
    f = model.frame_outputs(x, mask)
    expected = f["rhn_0"] + model.layers[1](f["rhn_0"], f["mask"])
    np.testing.assert_allclose(np.asarray(f["rhn_1"]), np.asarray(expected), rtol=1e-6, atol=1e-6)


def _count(model):
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


def _gru_torch(in_f, h):
    return 3 * h * in_f + 3 * h * h + 6 * h


def test_speech2image_param_counts_reference_sizes():
    h, att = 1024, 128
    attn = 2 * h * att + att + att * 2 * h + 2 * h
    conv = 39 * 64 * 6
    gru = 2 * _gru_torch(64, h) + 3 * 2 * _gru_torch(2 * h, h)
    lstm = gru // 3 * 4
    m = nnx.eval_shape(lambda: Speech2ImageEncoder(39, rnn="gru", rngs=nnx.Rngs(0)))
    assert _count(m) == conv + 64 + gru + attn  # platalea + the conv bias
    m = nnx.eval_shape(lambda: Speech2ImageEncoder(39, rnn="lstm", rngs=nnx.Rngs(0)))
    assert _count(m) == conv + 64 + lstm + attn


def test_rhn_param_count_reference_sizes():
    h, depth = 1024, 2
    layer = lambda i: 2 * (i * h + h) + depth * 2 * h * h + (depth - 1) * 2 * h
    expected = 39 * 64 * 6 + layer(64) + 3 * layer(h) + (h * 128 + 128) + (128 + 1)
    m = nnx.eval_shape(lambda: RHNSpeechEncoder(39, rngs=nnx.Rngs(0)))
    assert _count(m) == expected and m.out_features == 1024


@pytest.mark.parametrize("kind", ["rhn", "lstm"])
def test_jitted_forward_backward(kind):
    model = _tiny(kind)
    x, mask = _batch(np.random.default_rng(6), [20, 9], 20, 6)

    @nnx.jit
    def grads(m, x, mask):
        return nnx.grad(lambda m: jnp.sum(m(x, mask) ** 2))(m)

    g = grads(model, x, mask)
    leaves = jax.tree.leaves(g)
    assert leaves and all(np.all(np.isfinite(np.asarray(v))) for v in leaves)
    assert any(np.any(np.asarray(v) != 0) for v in leaves)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="rnn="):
        Speech2ImageEncoder(39, rnn="rnn", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="depth"):
        RHNLayer(3, 4, 0, rngs=nnx.Rngs(0))
    model = _tiny("rhn")
    with pytest.raises(ValueError, match="features"):
        model(jnp.zeros((1, 20, 5)), jnp.ones((1, 20), bool))
