"""Tests for vgs_jax.models.davenet, resdavenet and conv_map_layers: NumPy reference forwards, padding invariance, lengths, jitter, counts."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax.models import registry
from vgs_jax.models.conv_map_layers import downsampled_lengths, max_pool_time, temporal_jitter
from vgs_jax.models.davenet import Davenet
from vgs_jax.models.resdavenet import ResDavenet
from tests.model_test_helpers import full_precision_matmuls, length_mask  # noqa: F401 (autouse fixture)

EPS = 1e-5


@nnx.jit
def _encode(model, x, mask, key=None):
    """One compiled forward (eager op-by-op dispatch of these small models is slow on CPU)."""
    return model.encode(x, mask, key=key)


@nnx.jit
def _davenet(model, x, mask):
    return model(x, mask)


@nnx.jit
def _update(model, aux):
    model.update_codebooks(aux)


def _np(v):
    return np.asarray(v[...], np.float64)


def _np_conv(h, kernel, bias=None, stride=1):
    """h [L, in], kernel [k, in, out] (flax layout), zero padding k//2 each side -> [L', out], loop."""
    k = kernel.shape[0]
    hp = np.concatenate([np.zeros((k // 2, h.shape[1])), h, np.zeros((k // 2, h.shape[1]))])
    n_out = (len(hp) - k) // stride + 1
    out = np.zeros((n_out, kernel.shape[2]))
    for t in range(n_out):
        for j in range(k):
            out[t] += hp[t * stride + j] @ kernel[j]
    return out if bias is None else out + bias


def _np_pool(h):
    """Max-pool k3 s2 pad1 of an unpadded [L, C] sequence (out-of-range taps ignored)."""
    n_out = (len(h) - 1) // 2 + 1
    return np.stack([h[max(2 * t - 1, 0):2 * t + 2].max(axis=0) for t in range(n_out)])


def _np_bn(seqs, bn, train):
    """BatchNorm over a list of unpadded [L, C] sequences; train: biased stats over all their frames."""
    if train:
        allf = np.concatenate(seqs).reshape(-1, seqs[0].shape[-1])
        mean, var = allf.mean(axis=0), allf.var(axis=0)
    else:
        mean, var = _np(bn.mean), _np(bn.var)
    return [(s - mean) / np.sqrt(var + EPS) * _np(bn.scale) + _np(bn.bias) for s in seqs]


def _np_davenet(model, feats, lengths, train):
    seqs = [feats[b, :n].astype(np.float64) for b, n in enumerate(lengths)]
    seqs = [s[..., None] for s in seqs]
    seqs = [s[..., 0] for s in _np_bn(seqs, model.input_norm, train)]
    convs = model.convs
    seqs = [np.maximum(_np_conv(s, _np(convs[0].kernel), _np(convs[0].bias)), 0) for s in seqs]
    for conv in convs[1:]:
        seqs = [_np_pool(np.maximum(_np_conv(s, _np(conv.kernel), _np(conv.bias)), 0)) for s in seqs]
    return seqs


@pytest.mark.parametrize("train", [True, False])
def test_davenet_matches_numpy_per_utterance(train):
    rng = np.random.default_rng(0)
    model = Davenet(rngs=nnx.Rngs(0))
    model.input_norm.scale[...] = jnp.array([1.7])
    model.input_norm.bias[...] = jnp.array([-0.3])
    if not train:
        model.input_norm.mean[...] = jnp.array([-40.0])
        model.input_norm.var[...] = jnp.array([90.0])
        model.eval()
    lengths = [37, 16, 5]
    feats = (rng.normal(size=(3, 40, 40)) * 10 - 40).astype(np.float32)
    h, m = _davenet(model, jnp.asarray(feats), length_mask(lengths, 40))
    assert h.shape == (3, 3, 1024) and m.shape == (3, 3)
    ref = _np_davenet(model, feats, lengths, train)
    for b, n in enumerate(lengths):
        n_out = math.ceil(n / 16)
        assert int(m[b].sum()) == n_out and len(ref[b]) == n_out
        np.testing.assert_allclose(np.asarray(h[b, :n_out]), ref[b], rtol=2e-4, atol=2e-5)
        assert np.all(np.asarray(h[b, n_out:]) == 0)


def test_davenet_running_stats_ignore_padding_and_padding_invariance():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(2, 21, 40)).astype(np.float32) + 3.0
    lengths = [21, 9]
    model = Davenet(rngs=nnx.Rngs(1))
    padded = np.concatenate([feats, np.full((2, 30, 40), 77.0, np.float32)], axis=1)
    h1, m1 = _davenet(model, jnp.asarray(feats), length_mask(lengths, 21))
    valid = np.concatenate([feats[0, :21], feats[1, :9]])
    np.testing.assert_allclose(float(model.input_norm.mean[0]), 0.1 * valid.mean(), rtol=1e-5)
    h2, m2 = _davenet(model, jnp.asarray(padded), length_mask(lengths, 51))
    np.testing.assert_array_equal(np.asarray(m2[:, :2]), np.asarray(m1))
    np.testing.assert_allclose(np.asarray(h2[:, :2]), np.asarray(h1), rtol=1e-5, atol=1e-6)
    model.eval()
    e1, _ = _davenet(model, jnp.asarray(feats), length_mask(lengths, 21))
    e2, _ = _davenet(model, jnp.asarray(padded), length_mask(lengths, 51))
    np.testing.assert_allclose(np.asarray(e2[:, :2]), np.asarray(e1), rtol=1e-5, atol=1e-6)
    pooled = model.pooled(jnp.asarray(padded), length_mask(lengths, 51))
    np.testing.assert_allclose(np.linalg.norm(np.asarray(pooled), axis=1), 1.0, rtol=1e-5)
    mean0 = np.asarray(e1[1, :1]).mean(axis=0)
    np.testing.assert_allclose(np.asarray(pooled[1]), mean0 / np.linalg.norm(mean0), rtol=1e-4, atol=1e-6)


def _param_count(model_fn):
    abstract = nnx.eval_shape(model_fn)
    return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


def test_davenet_parameter_count_matches_pytorch_formula():
    def conv(cin, cout, kh, kw):  # PyTorch Conv2d weight + bias
        return cin * cout * kh * kw + cout
    pytorch = 2 + conv(1, 128, 40, 1) + conv(128, 256, 1, 11) + conv(256, 512, 1, 17) \
        + conv(512, 512, 1, 17) + conv(512, 1024, 1, 17)
    assert _param_count(lambda: Davenet(rngs=nnx.Rngs(0))) == pytorch


def test_resdavenet_parameter_count_matches_pytorch_formula():
    widths, depths, k = (128, 256, 256, 512, 1024), (2, 2, 2, 2), 9
    bn = lambda c: 2 * c  # noqa: E731  (gamma, beta; running stats are buffers)
    total = 40 * widths[0] + bn(widths[0])  # conv1 (40x1, no bias) + BN
    for i in range(4):
        cin, c = widths[i], widths[i + 1]
        total += k * cin * c + bn(c) + k * c * c + bn(c) + cin * c + bn(c)  # first block + 1x1 shortcut
        total += (depths[i] - 1) * (2 * (k * c * c + bn(c)))
    pytorch = total + 2  # the reference's unused input batchnorm1
    assert _param_count(lambda: ResDavenet(rngs=nnx.Rngs(0))) == pytorch - 2
    vq = _param_count(lambda: ResDavenet(vq_on=(False, True, True, False, False), rngs=nnx.Rngs(0)))
    assert vq == pytorch - 2  # codebooks are VQState, not Param


def _np_resdavenet(model, feats, lengths, train):
    """Per-utterance NumPy forward (no jitter); BN statistics pooled over the batch's valid frames."""
    seqs = [feats[b, :n].astype(np.float64) for b, n in enumerate(lengths)]
    seqs = [_np_conv(s, _np(model.conv1.kernel)) for s in seqs]
    seqs = [np.maximum(s, 0) for s in _np_bn(seqs, model.bn1, train)]
    stages = [None] + list(model.layers)
    for i in range(5):
        if i > 0:
            for block in stages[i]:
                y = [_np_conv(s, _np(block.conv1.kernel), stride=block.stride) for s in seqs]
                y = [np.maximum(v, 0) for v in _np_bn(y, block.bn1, train)]
                y = _np_bn([_np_conv(v, _np(block.conv2.kernel)) for v in y], block.bn2, train)
                if block.shortcut_conv is not None:
                    sc = _np_bn([_np_conv(s, _np(block.shortcut_conv.kernel), stride=block.stride) for s in seqs],
                                block.shortcut_bn, train)
                else:
                    sc = seqs
                seqs = [np.maximum(a + b, 0) for a, b in zip(y, sc)]
        quant = model.quantizers[i]
        if quant is not None:
            cb = _np(quant.codebook)
            seqs = [cb[np.argmin(((s[:, None, :] - cb[None]) ** 2).sum(-1), axis=1)] for s in seqs]
    return seqs


@pytest.mark.parametrize("train", [True, False])
def test_resdavenet_matches_numpy_and_ignores_padding(train):
    rng = np.random.default_rng(2)
    model = ResDavenet(5, widths=(4, 6, 6, 8, 8), depths=(1, 2, 1, 1), kernel=3, jitter=0.0,
                       vq_on=(False, True, False, False, False), codebook_size=7, rngs=nnx.Rngs(2))
    if not train:
        _encode(model, jnp.asarray(rng.normal(size=(2, 20, 5)).astype(np.float32)), length_mask([20, 11], 20))
        model.eval()
    lengths = [33, 17, 2]
    feats = rng.normal(size=(3, 33, 5)).astype(np.float32)
    h, m, aux = _encode(model, jnp.asarray(feats), length_mask(lengths, 33))
    ref = _np_resdavenet(model, feats, lengths, train)
    for b, n in enumerate(lengths):
        n_out = math.ceil(n / 16)
        assert int(m[b].sum()) == n_out and len(ref[b]) == n_out
        np.testing.assert_allclose(np.asarray(h[b, :n_out]), ref[b], rtol=2e-4, atol=2e-5)
    assert set(aux) == {"vq_loss", "vq_inputs", "quant2"} and float(aux["vq_loss"]) > 0
    padded = np.concatenate([feats, rng.normal(size=(3, 40, 5)).astype(np.float32) * 50], axis=1)
    h2, m2, aux2 = _encode(model, jnp.asarray(padded), length_mask(lengths, 73))
    np.testing.assert_allclose(np.asarray(h2[:, :h.shape[1]]), np.asarray(h), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(aux2["vq_loss"]), float(aux["vq_loss"]), rtol=1e-5)


def test_lengths_pooling_and_floor_rounding():
    lengths = np.arange(0, 70)
    ceil = np.asarray(downsampled_lengths(jnp.asarray(lengths)))
    np.testing.assert_array_equal(ceil, [math.ceil(n / 16) for n in lengths])
    np.testing.assert_array_equal(np.asarray(downsampled_lengths(jnp.asarray(lengths), rounding="floor")),
                                  lengths // 16)
    h = np.random.default_rng(3).normal(size=(2, 9, 3)).astype(np.float32)
    got = np.asarray(max_pool_time(jnp.asarray(h)))
    np.testing.assert_allclose(got, np.stack([_np_pool(h[b].astype(np.float64)) for b in range(2)]), rtol=1e-6)
    model = ResDavenet(5, widths=(4, 4, 4, 4, 4), depths=(1, 1, 1, 1), kernel=3, length_rounding="floor",
                       jitter=0.0, rngs=nnx.Rngs(0))
    hh, mm, _ = _encode(model, jnp.ones((2, 40, 5)), length_mask([40, 31], 40))
    np.testing.assert_array_equal(np.asarray(mm.sum(1)), [2, 1])
    assert np.all(np.asarray(hh[1, 1:]) == 0)


def test_jitter_centred_and_reference():
    b, t, p = 64, 200, 0.12
    h = jnp.broadcast_to(jnp.arange(t, dtype=jnp.float32)[None, :, None], (b, t, 1))
    lengths = jnp.asarray(np.r_[np.full(b - 1, t), 50])
    out = np.asarray(temporal_jitter(h, lengths, jax.random.key(0), p, "centred"))[..., 0]
    shift = out - np.arange(t)[None, :]
    assert set(np.unique(shift)) <= {-1, 0, 1}
    assert out[-1, 50:].tolist() == list(range(50, 200)) and out[-1, :50].max() <= 49 and out.min() >= 0
    inner = shift[:-1, 1:-1]
    assert abs((inner == -1).mean() - p / 2) < 0.01 and abs((inner == 1).mean() - p / 2) < 0.01
    assert not np.all(shift[0] == shift[1])  # independent per utterance
    ref = np.asarray(temporal_jitter(h, lengths, jax.random.key(1), p, "reference"))[..., 0]
    rshift = ref - np.arange(t)[None, :]
    assert set(np.unique(rshift[:-1, :-2])) <= {0, 1, 2}
    np.testing.assert_array_equal(rshift[0, :-2], rshift[1, :-2])  # shared across the batch
    assert abs((rshift[0, :-2] == 1).mean() - (1 - 2 * p)) < 0.08
    assert ref[:-1, -1].max() == t - 1  # clamped at the last valid frame


def test_train_eval_switch_and_key_requirement():
    model = ResDavenet(5, widths=(4, 4, 4, 4, 4), depths=(1, 1, 1, 1), kernel=3, vq_on=(True,) * 5,
                       codebook_size=3, rngs=nnx.Rngs(0))
    x, m = jnp.ones((2, 32, 5)), length_mask([32, 20], 32)
    with pytest.raises(ValueError, match="key="):
        _encode(model, x, m)
    h_a, _, aux = _encode(model, x, m, jax.random.key(0))
    before = np.asarray(model.quantizers[0].codebook[...])
    _update(model, aux)
    assert not np.allclose(before, np.asarray(model.quantizers[0].codebook[...]))
    model.eval()
    assert model.deterministic and model.layers[0][0].bn1.use_running_average
    stats = np.asarray(model.bn1.mean[...])
    e1 = _encode(model, x, m)[0]
    np.testing.assert_allclose(np.asarray(_encode(model, x, m, jax.random.key(5))[0]), np.asarray(e1))
    np.testing.assert_array_equal(np.asarray(model.bn1.mean[...]), stats)  # eval leaves running stats alone
    model.train()
    assert not model.deterministic and not model.bn1.use_running_average
    with pytest.raises(ValueError, match="vq_inputs"):
        model.update_codebooks({})


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="features must be"):
        Davenet(rngs=nnx.Rngs(0))(jnp.zeros((2, 10, 39)), jnp.ones((2, 10), bool))
    with pytest.raises(ValueError, match="mask shape"):
        Davenet(rngs=nnx.Rngs(0))(jnp.zeros((2, 10, 40)), jnp.ones((2, 9), bool))
    with pytest.raises(ValueError, match="widths"):
        ResDavenet(widths=(1, 2), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="jitter"):
        ResDavenet(jitter_mode="left", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="rounding"):
        downsampled_lengths(jnp.array([3]), rounding="round")
    assert registry.SPEECH_ENCODERS["davenet"] is Davenet and registry.SPEECH_ENCODERS["resdavenet"] is ResDavenet


def test_max_pool_time_differentiates_under_jit():

    h = jnp.arange(2 * 7 * 3, dtype=jnp.float32).reshape(2, 7, 3)
    grad = jax.jit(jax.grad(lambda x: jnp.sum(max_pool_time(x))))(h)
    assert grad.shape == h.shape and bool(jnp.all(jnp.isfinite(grad)))
