"""Tests for vgs_jax.models.conv_rnn_encoders and recurrent_layers: GRU vs a NumPy loop, packing semantics, conv, param counts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax.models.conv_rnn_encoders import Conv1dFrontEnd, PlataleaSpeechEncoder
from vgs_jax.models.recurrent_layers import BiGRU, GRULayer, conv_output_lengths, reverse_within_length
from tests.model_test_helpers import full_precision_matmuls, length_mask  # noqa: F401 (autouse fixture)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_gru(layer, x):
    """PyTorch nn.GRU equations, one unpadded sequence x [L, in] -> [L, H], float64 loop."""
    w_ih = np.asarray(layer.w_ih[...], np.float64); w_hh = np.asarray(layer.w_hh[...], np.float64)
    b_ih = np.asarray(layer.b_ih[...], np.float64); b_hh = np.asarray(layer.b_hh[...], np.float64)
    hsz = layer.hidden
    h = np.zeros(hsz)
    out = []
    for x_t in x.astype(np.float64):
        gi = w_ih @ x_t + b_ih
        gh = w_hh @ h + b_hh
        r = _sigmoid(gi[:hsz] + gh[:hsz])
        z = _sigmoid(gi[hsz:2 * hsz] + gh[hsz:2 * hsz])
        n = np.tanh(gi[2 * hsz:] + r * gh[2 * hsz:])
        h = (1 - z) * n + z * h
        out.append(h)
    return np.array(out).reshape(len(x), hsz)


def _padded_batch(seqs, t, pad_value=0.0):
    x = np.full((len(seqs), t, seqs[0].shape[1]), pad_value, np.float32)
    for i, s in enumerate(seqs):
        x[i, :len(s)] = s
    return jnp.asarray(x), length_mask([len(s) for s in seqs], t)


def test_reverse_within_length_hand_case_and_involution():
    x = jnp.arange(10).reshape(2, 5)
    got = reverse_within_length(x, jnp.array([3, 5]))
    np.testing.assert_array_equal(got, [[2, 1, 0, 3, 4], [9, 8, 7, 6, 5]])
    np.testing.assert_array_equal(reverse_within_length(got, jnp.array([3, 5])), x)
    np.testing.assert_array_equal(reverse_within_length(x, jnp.array([0, 1])), x)


def test_gru_param_layout_is_pytorch():
    layer = GRULayer(5, 3, rngs=nnx.Rngs(0))
    shapes = {k: v.shape for k, v in [("w_ih", layer.w_ih), ("w_hh", layer.w_hh), ("b_ih", layer.b_ih),
                                         ("b_hh", layer.b_hh)]}
    assert shapes == {"w_ih": (9, 5), "w_hh": (9, 3), "b_ih": (9,), "b_hh": (9,)}
    assert float(jnp.max(jnp.abs(layer.w_ih[...]))) <= 1 / np.sqrt(3)


@pytest.mark.parametrize("reverse", [False, True])
def test_gru_layer_matches_numpy_loop(reverse):
    layer = GRULayer(4, 6, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, 4)).astype(np.float32) for n in (9, 4, 1, 0)]
    x, mask = _padded_batch(seqs, 11, pad_value=7.0)
    got = np.asarray(layer(x, mask, reverse=reverse))
    for i, s in enumerate(seqs):
        want = _np_gru(layer, s[::-1])[::-1] if reverse else _np_gru(layer, s)
        np.testing.assert_allclose(got[i, :len(s)], want, rtol=1e-5, atol=1e-5)
        assert np.all(got[i, len(s):] == 0.0)


def test_bigru_matches_numpy_loop_and_ignores_padding():
    bi = BiGRU(3, 5, rngs=nnx.Rngs(1))
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(n, 3)).astype(np.float32) for n in (8, 5, 2)]
    x, mask = _padded_batch(seqs, 8)
    got = np.asarray(bi(x, mask))
    assert got.shape == (3, 8, 10)
    for i, s in enumerate(seqs):
        want = np.concatenate([_np_gru(bi.forward, s), _np_gru(bi.backward, s[::-1])[::-1]], axis=1)
        np.testing.assert_allclose(got[i, :len(s)], want, rtol=1e-5, atol=1e-5)
        assert np.all(got[i, len(s):] == 0.0)
    # More padding, with garbage values, never changes valid outputs.
    x2, mask2 = _padded_batch(seqs, 13, pad_value=-50.0)
    got2 = np.asarray(bi(x2, mask2))
    np.testing.assert_allclose(got2[:, :8], got, rtol=1e-6, atol=1e-6)
    assert np.all(got2[:, 8:] == 0.0)


def test_conv_output_lengths_hand_cases():
    got = conv_output_lengths(jnp.array([0, 3, 5, 6, 7, 8, 500]), 6, 2)
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 1, 2, 248])


def test_conv_front_end_matches_numpy_and_masks():
    conv = Conv1dFrontEnd(3, 4, kernel=6, stride=2, rngs=nnx.Rngs(2))
    assert not hasattr(conv.conv, "bias") or conv.conv.bias is None
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 15, 3)).astype(np.float32)
    mask = length_mask([15, 9], 15)
    y, m = conv(jnp.asarray(x), mask)
    k = np.asarray(conv.conv.kernel[...])  # [kernel, in, out]
    assert y.shape == (2, 5, 4)
    want = np.stack([[np.einsum("kd,kdo->o", x[b, 2 * t:2 * t + 6], k) for t in range(5)] for b in range(2)])
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(m, [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    with pytest.raises(ValueError, match="fewer than the conv kernel"):
        conv(jnp.ones((1, 5, 3)), jnp.ones((1, 5), bool))
    with pytest.raises(ValueError, match="features per frame"):
        conv(jnp.ones((1, 9, 4)), jnp.ones((1, 9), bool))
    biased = Conv1dFrontEnd(3, 4, use_bias=True, rngs=nnx.Rngs(0))
    assert biased.conv.bias.shape == (4,)


def _tiny_encoder(mask_padding=True, seed=0):
    return PlataleaSpeechEncoder(5, conv_channels=6, hidden=7, num_layers=2, attention_hidden=4,
                                 mask_padding=mask_padding, rngs=nnx.Rngs(seed))


def test_encoder_shapes_and_frame_outputs():
    enc = _tiny_encoder()
    assert enc.out_features == 14
    x = jax.random.normal(jax.random.key(0), (3, 40, 5))
    mask = length_mask([40, 20, 6], 40)
    assert enc(x, mask).shape == (3, 14)
    outs = enc.frame_outputs(x, mask)
    assert {k: v.shape for k, v in outs.items()} == {
        "conv": (3, 18, 6), "gru_0": (3, 18, 14), "gru_1": (3, 18, 14), "pooled": (3, 14), "mask": (3, 18)}
    np.testing.assert_array_equal(outs["mask"].sum(1), [18, 8, 1])
    np.testing.assert_allclose(outs["pooled"], enc(x, mask), rtol=1e-6)
    assert np.all(np.asarray(outs["gru_1"])[1, 8:] == 0.0)


def test_encoder_embedding_independent_of_batch_padding():
    enc = _tiny_encoder()
    rng = np.random.default_rng(3)
    short = rng.normal(size=(23, 5)).astype(np.float32)
    long = rng.normal(size=(61, 5)).astype(np.float32)
    alone = np.asarray(enc(jnp.asarray(short[None]), jnp.ones((1, 23), bool)))[0]
    x, mask = _padded_batch([short, long], 70, pad_value=2.5)
    in_batch = np.asarray(enc(x, mask))[0]
    np.testing.assert_allclose(in_batch, alone, rtol=1e-5, atol=1e-5)
    # The reference pooling (mask_padding=False) does depend on the batch's padding.
    ref = _tiny_encoder(mask_padding=False)
    alone_ref = np.asarray(ref(jnp.asarray(short[None]), jnp.ones((1, 23), bool)))[0]
    assert not np.allclose(np.asarray(ref(x, mask))[0], alone_ref, atol=1e-5)


def _count(tree):
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(tree))


def test_reference_param_count_matches_pytorch():
    def gru_layer(inp, h):  # both directions: W_ih, W_hh, b_ih, b_hh
        return 2 * (3 * h * inp + 3 * h * h + 2 * 3 * h)

    conv = 39 * 64 * 6
    grus = gru_layer(64, 1024) + 3 * gru_layer(2048, 1024)
    att = 2048 * 128 + 128 + 128 * 2048 + 2048
    assert (conv, gru_layer(64, 1024), 3 * gru_layer(2048, 1024), att) == (14976, 6696960, 56659968, 526464)
    assert conv + grus + att == 63898368
    enc = nnx.eval_shape(lambda: PlataleaSpeechEncoder(39, rngs=nnx.Rngs(0)))
    params = nnx.state(enc, nnx.Param)
    assert _count(params) == 63898368
    assert _count(nnx.state(enc.conv, nnx.Param)) == conv
    assert _count(nnx.state(enc.pool, nnx.Param)) == att
    assert _count(nnx.state(enc)) == _count(params)  # only nnx.Param state


def test_jitted_forward_backward_tiny():
    enc = PlataleaSpeechEncoder(5, hidden=16, num_layers=1, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(enc, nnx.Param)
    x = jax.random.normal(jax.random.key(1), (4, 30, 5))
    mask = length_mask([30, 25, 12, 7], 30)

    @jax.jit
    def loss_and_grad(params, x, mask):
        def loss(p):
            return jnp.sum(nnx.merge(graphdef, p)(x, mask) ** 2)
        return jax.value_and_grad(loss)(params)

    value, grads = loss_and_grad(params, x, mask)
    assert np.isfinite(float(value))
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
    assert all(np.isfinite(norms)) and all(n > 0 for n in norms)


def test_registry_and_errors():
    with pytest.raises(ValueError, match="num_layers"):
        PlataleaSpeechEncoder(5, num_layers=0, rngs=nnx.Rngs(0))
    enc = _tiny_encoder()
    with pytest.raises(ValueError, match="mask shape"):
        enc(jnp.ones((2, 20, 5)), jnp.ones((2, 19), bool))
