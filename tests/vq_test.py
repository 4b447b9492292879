"""Tests for vgs_jax.models.vq: nearest code, straight-through, commitment, EMA update, stats, warm start."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax.checkpointing import fit_tree
from vgs_jax.models.resdavenet import ResDavenet
from vgs_jax.models.vq import (EMAState, VectorQuantizer, VQState, code_statistics, nearest_codes, quantize,
                               update_ema)


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    with jax.default_matmul_precision("highest"):
        yield


def _np_nearest(x, codebook):
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    out = []
    for v in flat:
        best, best_d = 0, np.inf
        for k, c in enumerate(codebook.astype(np.float64)):
            d = float(np.sum((v - c) ** 2))
            if d < best_d:
                best, best_d = k, d
        out.append(best)
    return np.array(out).reshape(x.shape[:-1])


def _np_update(codebook, counts, sums, x, mask, decay, eps):
    counts, sums = counts.astype(np.float64).copy(), sums.astype(np.float64).copy()
    k = codebook.shape[0]
    codes = _np_nearest(x, codebook)
    bc, bs = np.zeros(k), np.zeros_like(sums)
    for idx in np.ndindex(*mask.shape):
        if mask[idx]:
            bc[codes[idx]] += 1
            bs[codes[idx]] += x[idx]
    counts = decay * counts + (1 - decay) * bc
    sums = decay * sums + (1 - decay) * bs
    n = counts.sum()
    counts = (counts + eps) / (n + k * eps) * n
    return sums / counts[:, None], counts, sums


def test_nearest_codes_matches_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 7, 5)).astype(np.float32)
    cb = rng.normal(size=(11, 5)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(nearest_codes(jnp.asarray(x), jnp.asarray(cb))), _np_nearest(x, cb))


def test_quantize_values_and_commitment_over_valid_frames():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 6, 4)).astype(np.float32)
    cb = rng.normal(size=(8, 4)).astype(np.float32)
    mask = np.arange(6)[None, :] < np.array([[6], [3]])
    q, aux = quantize(jnp.asarray(x), jnp.asarray(mask), jnp.asarray(cb), commitment_cost=0.25)
    codes = _np_nearest(x, cb)
    np.testing.assert_allclose(np.asarray(q), cb[codes], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(aux["codes"]), codes)
    diffs = [np.sum((x[b, t] - cb[codes[b, t]]) ** 2) for b in range(2) for t in range(6) if mask[b, t]]
    np.testing.assert_allclose(float(aux["commitment_loss"]), 0.25 * sum(diffs) / (len(diffs) * 4), rtol=1e-5)
    x2 = x.copy()
    x2[1, 3:] = 1e3  # padded frames must not change the loss
    _, aux2 = quantize(jnp.asarray(x2), jnp.asarray(mask), jnp.asarray(cb), commitment_cost=0.25)
    np.testing.assert_allclose(float(aux2["commitment_loss"]), float(aux["commitment_loss"]), rtol=1e-6)


def test_straight_through_gradient_is_identity():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 5, 3)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(2, 5, 3)).astype(np.float32))
    cb = jnp.asarray(rng.normal(size=(4, 3)).astype(np.float32))
    mask = jnp.ones((2, 5), bool)
    grad = jax.grad(lambda v: jnp.sum(quantize(v, mask, cb)[0] * w))(x)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(w), atol=1e-6)
    # The commitment loss pulls x towards its (fixed) code: gradient 2 * beta * (x - q) / (N * D).
    g2 = jax.grad(lambda v: quantize(v, mask, cb, 1.0)[1]["commitment_loss"])(x)
    q = cb[_np_nearest(np.asarray(x), np.asarray(cb))]
    np.testing.assert_allclose(np.asarray(g2), 2 * (np.asarray(x) - q) / x.size, rtol=1e-5, atol=1e-7)


def test_ema_update_hand_checked_and_padding_ignored():
    state = EMAState(jnp.array([[0.0], [10.0]]), jnp.array([1.0, 1.0]), jnp.array([[0.0], [10.0]]))
    x = jnp.array([[[1.0], [2.0], [9.0], [100.0]]])
    mask = jnp.array([[True, True, True, False]])
    new = update_ema(state, x, mask, decay=0.5, epsilon=0.0)
    # codes [0, 0, 1]; counts 0.5*1 + 0.5*[2, 1] = [1.5, 1.0]; sums 0.5*[0, 10] + 0.5*[3, 9] = [1.5, 9.5].
    np.testing.assert_allclose(np.asarray(new.counts), [1.5, 1.0])
    np.testing.assert_allclose(np.asarray(new.sums), [[1.5], [9.5]])
    np.testing.assert_allclose(np.asarray(new.codebook), [[1.0], [9.5]])
    alone = update_ema(state, x[:, :3], mask[:, :3], decay=0.5, epsilon=0.0)
    for a, b in zip(new, alone):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b))


def test_ema_update_matches_loop_with_smoothing():
    rng = np.random.default_rng(3)
    cb = rng.normal(size=(6, 3)).astype(np.float32)
    counts = rng.uniform(0.5, 2, size=6).astype(np.float32)
    sums = (cb * counts[:, None]).astype(np.float32)
    x = rng.normal(size=(3, 9, 3)).astype(np.float32)
    mask = np.arange(9)[None, :] < np.array([[9], [4], [0]])
    new = update_ema(EMAState(*map(jnp.asarray, (cb, counts, sums))), jnp.asarray(x), jnp.asarray(mask),
                     decay=0.9, epsilon=0.1)
    ref = _np_update(cb, counts, sums, x, mask, 0.9, 0.1)
    for a, b in zip(new, ref):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-6)


def test_perplexity_and_usage():
    codes = jnp.array([[0, 1, 2, 3, 5, 5], [0, 1, 2, 3, 7, 7]])
    mask = jnp.array([[True] * 4 + [False] * 2, [True] * 4 + [False] * 2])
    perp, usage = code_statistics(codes, mask, 8)
    np.testing.assert_allclose(float(perp), 4.0, rtol=1e-6)  # uniform over 4 used codes
    np.testing.assert_allclose(float(usage), 0.5)
    perp1, usage1 = code_statistics(jnp.zeros((5,), jnp.int32), jnp.ones((5,), bool), 8)
    assert float(perp1) == pytest.approx(1.0) and float(usage1) == pytest.approx(1 / 8)
    p = np.array([3, 1]) / 4  # non-uniform: exp(entropy)
    perp2, _ = code_statistics(jnp.array([0, 0, 0, 1]), jnp.ones((4,), bool), 2)
    np.testing.assert_allclose(float(perp2), np.exp(-np.sum(p * np.log(p))), rtol=1e-6)
    perp0, usage0 = code_statistics(codes, jnp.zeros_like(mask), 8)
    assert float(perp0) == 0.0 and float(usage0) == 0.0


def test_module_init_state_and_update():
    vq = VectorQuantizer(16, 4, init="uniform", rngs=nnx.Rngs(0))
    cb = np.asarray(vq.codebook[...])
    assert cb.shape == (16, 4) and np.all(np.abs(cb) <= 1 / 16)
    np.testing.assert_allclose(np.asarray(vq.ema_counts[...]), np.ones(16))
    np.testing.assert_allclose(np.asarray(vq.ema_sums[...]), cb)
    assert len(jax.tree.leaves(nnx.state(vq, nnx.Param))) == 0
    assert len(jax.tree.leaves(nnx.state(vq, VQState))) == 3
    vqn = VectorQuantizer(64, 2, init="normal", init_mass=2.0, rngs=nnx.Rngs(1))
    assert 0.5 < float(np.std(np.asarray(vqn.codebook[...]))) < 1.5
    np.testing.assert_allclose(np.asarray(vqn.ema_sums[...]), 2 * np.asarray(vqn.codebook[...]), rtol=1e-6)
    x = jnp.asarray(np.random.default_rng(4).normal(size=(2, 5, 4)).astype(np.float32))
    mask = jnp.ones((2, 5), bool)
    expected = update_ema(vq.ema_state(), x, mask, decay=vq.decay, epsilon=vq.epsilon)
    q, aux = vq(x, mask)
    assert q.shape == x.shape and set(aux) == {"codes", "commitment_loss", "perplexity", "usage"}
    vq.update(x, mask)
    np.testing.assert_allclose(np.asarray(vq.codebook[...]), np.asarray(expected.codebook))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="init"):
        VectorQuantizer(4, 2, init="kmeans", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="decay"):
        VectorQuantizer(4, 2, decay=1.0, rngs=nnx.Rngs(0))
    vq = VectorQuantizer(4, 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="mask shape"):
        vq(jnp.zeros((2, 3, 2)), jnp.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"\[\.\.\., 2\]"):
        vq(jnp.zeros((2, 3, 5)), jnp.ones((2, 3), bool))
    with pytest.raises(ValueError, match="nested mappings"):
        fit_tree([1], {}, partial=True)


def _small(vq_on, seed):
    return ResDavenet(widths=(4, 6, 6, 8, 8), depths=(1, 1, 1, 1), kernel=3, vq_on=vq_on, codebook_size=5,
                      rngs=nnx.Rngs(seed))


def test_warm_start_copies_matching_paths_and_keeps_codebooks():
    old = nnx.to_pure_dict(nnx.state(_small((False,) * 5, 0)))
    new_model = _small((False, True, True, False, False), 1)
    new = nnx.to_pure_dict(nnx.state(new_model))
    merged, copied, skipped = fit_tree(new, old, partial=True)
    assert skipped == sorted(f"quantizers/{i}/{n}" for i in (1, 2) for n in ("codebook", "ema_counts", "ema_sums"))
    assert "conv1/kernel" in copied and "layers/3/0/bn2/mean" in copied
    np.testing.assert_array_equal(merged["conv1"]["kernel"], old["conv1"]["kernel"])
    np.testing.assert_array_equal(merged["quantizers"][1]["codebook"], new["quantizers"][1]["codebook"])
    nnx.replace_by_pure_dict(nnx.state(new_model), merged)  # the merged dict fits the new model
    # A shape mismatch is skipped, not copied.
    old["conv1"]["kernel"] = np.zeros((1, 40, 3), np.float32)
    _, copied2, skipped2 = fit_tree(nnx.state(new_model), old, partial=True)
    assert "conv1/kernel" in skipped2 and "conv1/kernel" not in copied2
