"""Tests for vgs_jax.models.pooling against slow NumPy loops."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax.models.pooling import VectorialAttentionPooling, mean_pool, torch_uniform_init


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    """Exact float32 matmuls (GPUs default to TF32), so the NumPy comparisons hold on any backend."""
    with jax.default_matmul_precision("highest"):
        yield


def _lengths_mask(lengths, t):
    return np.arange(t)[None, :] < np.asarray(lengths)[:, None]


def _np_attention(pool, h, lengths, mask_padding):
    """Per-sequence loop: the reference formula written out with NumPy."""
    w1 = np.asarray(pool.hidden_layer.kernel[...]); b1 = np.asarray(pool.hidden_layer.bias[...])
    w2 = np.asarray(pool.out_layer.kernel[...]); b2 = np.asarray(pool.out_layer.bias[...])
    out = np.zeros((h.shape[0], h.shape[2]))
    for b, n in enumerate(lengths):
        hb = h[b].astype(np.float64).copy()
        hb[n:] = 0.0
        if mask_padding:
            hb = hb[:n]
        if hb.shape[0] == 0:
            continue
        logits = np.tanh(hb @ w1 + b1) @ w2 + b2
        e = np.exp(logits - logits.max(axis=0))
        alpha = e / e.sum(axis=0)
        out[b] = (alpha * hb).sum(axis=0)
    return out


def test_torch_uniform_init_bounds_and_error():
    x = np.asarray(torch_uniform_init(16)(jax.random.key(0), (4000,)))
    assert x.min() >= -0.25 and x.max() <= 0.25 and x.max() > 0.24 and x.min() < -0.24
    with pytest.raises(ValueError, match="fan_in"):
        torch_uniform_init(0)


def test_mean_pool_matches_loop():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(3, 5, 4)).astype(np.float32)
    lengths = [5, 2, 0]
    got = np.asarray(mean_pool(jnp.asarray(h), jnp.asarray(_lengths_mask(lengths, 5))))
    want = np.stack([h[0].mean(0), h[1, :2].mean(0), np.zeros(4)])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    # Hand case: mean of 1 and 3.
    got = mean_pool(jnp.array([[[1.0], [3.0], [100.0]]]), jnp.array([[True, True, False]]))
    assert float(got[0, 0]) == 2.0


@pytest.mark.parametrize("mask_padding", [True, False])
def test_attention_matches_loop(mask_padding):
    pool = VectorialAttentionPooling(6, 4, mask_padding=mask_padding, rngs=nnx.Rngs(1))
    rng = np.random.default_rng(1)
    h = rng.normal(size=(3, 7, 6)).astype(np.float32)
    lengths = [7, 3, 1]
    got = np.asarray(pool(jnp.asarray(h), jnp.asarray(_lengths_mask(lengths, 7))))
    np.testing.assert_allclose(got, _np_attention(pool, h, lengths, mask_padding), rtol=1e-5, atol=1e-6)


def test_attention_weights_sum_to_one_per_dimension():
    pool = VectorialAttentionPooling(5, 3, rngs=nnx.Rngs(2))
    h = jax.random.normal(jax.random.key(3), (2, 6, 5))
    mask = jnp.asarray(_lengths_mask([6, 4], 6))
    alpha = np.asarray(pool.weights(h, mask))
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(alpha[1, 4:] == 0.0)


def test_masked_attention_is_padding_invariant_reference_is_not():
    rng = np.random.default_rng(4)
    short = rng.normal(size=(1, 5, 8)).astype(np.float32)
    long = rng.normal(size=(1, 12, 8)).astype(np.float32)
    batch = np.concatenate([np.pad(short, ((0, 0), (0, 7), (0, 0)), constant_values=3.0), long])
    mask_alone = jnp.ones((1, 5), bool)
    mask_batch = jnp.asarray(_lengths_mask([5, 12], 12))
    for mask_padding, should_match in [(True, True), (False, False)]:
        pool = VectorialAttentionPooling(8, 4, mask_padding=mask_padding, rngs=nnx.Rngs(5))
        alone = np.asarray(pool(jnp.asarray(short), mask_alone))[0]
        in_batch = np.asarray(pool(jnp.asarray(batch), mask_batch))[0]
        assert np.allclose(alone, in_batch, atol=1e-5) == should_match


def test_all_padding_row_gives_zeros_not_nan():
    pool = VectorialAttentionPooling(4, 2, rngs=nnx.Rngs(0))
    out = np.asarray(pool(jnp.ones((2, 3, 4)), jnp.array([[True, False, False], [False, False, False]])))
    assert np.all(np.isfinite(out)) and np.all(out[1] == 0.0)


def test_hidden_layer_is_orthogonal():
    pool = VectorialAttentionPooling(16, 8, rngs=nnx.Rngs(0))
    k = np.asarray(pool.hidden_layer.kernel[...])  # [16, 8]: orthonormal columns
    np.testing.assert_allclose(k.T @ k, np.eye(8), atol=1e-5)


def test_bad_shapes_raise():
    pool = VectorialAttentionPooling(4, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="mask shape"):
        pool(jnp.ones((2, 3, 4)), jnp.ones((2, 4), bool))
    with pytest.raises(ValueError, match="features"):
        pool(jnp.ones((2, 3, 5)), jnp.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"\[batch, time, features\]"):
        mean_pool(jnp.ones((2, 3)), jnp.ones((2, 3), bool))
