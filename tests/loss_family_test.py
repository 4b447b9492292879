"""Tests for the survey's loss family in vgs_jax.objectives against slow NumPy loops."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from vgs_jax.objectives import losses
from vgs_jax.objectives import registry
from vgs_jax.objectives import sigmoid as sigmoid_losses


def _valid(b, mask):
    return np.ones(b, bool) if mask is None else np.asarray(mask)


def _cos(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ----------------------------------------------------------------- slow references
def slow_sampled(sim, img_imp, cap_imp, margin, mask=None):
    s = np.asarray(sim, np.float64)
    valid = _valid(len(s), mask)
    total = 0.0
    for i in range(len(s)):
        if not valid[i]:
            continue
        if img_imp[i] != i:
            total += max(0.0, margin + s[i, img_imp[i]] - s[i, i])
        if cap_imp[i] != i:
            total += max(0.0, margin + s[cap_imp[i], i] - s[i, i])
    return total / max(valid.sum(), 1)


def slow_semihard_rows(s, valid, margin, quirk):
    total = 0.0
    for i in range(len(s)):
        if not valid[i]:
            continue
        cands = [s[i, j] for j in range(len(s)) if j != i and valid[j] and s[i, j] < s[i, i]]
        if quirk:
            imp = max([0.0] + cands)
        elif not cands:
            continue
        else:
            imp = max(cands)
        total += max(0.0, margin + imp - s[i, i])
    return total


def slow_semihard(sim, row_imp, col_imp, margin, mask=None, quirk=False):
    s = np.asarray(sim, np.float64)
    valid = _valid(len(s), mask)
    n = max(valid.sum(), 1)
    sampled = slow_sampled(s, row_imp, col_imp, margin, mask)  # = (row + col) / n
    return sampled + (slow_semihard_rows(s, valid, margin, quirk)
                      + slow_semihard_rows(s.T, valid, margin, quirk)) / n


def slow_sigmoid(zs, zi, t, b, ids=None, mask=None):
    n = len(zs)
    valid = _valid(n, mask)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if not (valid[i] and valid[j]):
                continue
            if i != j and ids is not None and ids[i] == ids[j]:
                continue
            label = 1.0 if i == j else -1.0
            logit = t * _cos(zs[i], zi[j]) + b
            total += math.log1p(math.exp(-label * logit))
    return total / max(valid.sum(), 1)


def _sim(b, seed):
    return np.random.default_rng(seed).normal(size=(b, b)).astype(np.float32)


def _emb(b, e, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, e)).astype(np.float32), rng.normal(size=(b, e)).astype(np.float32)


# ----------------------------------------------------------------- sample_impostors
def test_sample_impostors_uniform_over_other_valid():
    mask = jnp.array([True, False, True, True, True])
    counts = np.zeros((5, 5))
    for k in range(400):
        idx = np.asarray(losses.sample_impostors(jax.random.key(k), mask))
        counts[np.arange(5), idx] += 1
    assert counts[1, 1] == 400                       # padding anchor -> itself
    for i in (0, 2, 3, 4):
        assert counts[i, i] == 0 and counts[i, 1] == 0
        others = [j for j in (0, 2, 3, 4) if j != i]
        assert all(70 <= counts[i, j] <= 200 for j in others)   # ~133 each
    lone = losses.sample_impostors(jax.random.key(0), jnp.array([False, True, False]))
    np.testing.assert_array_equal(np.asarray(lone), [0, 1, 2])
    with pytest.raises(ValueError, match="1-D bool"):
        losses.sample_impostors(jax.random.key(0), jnp.ones((2, 2), bool))


# ----------------------------------------------------------------- sampled (DAVEnet)
def test_sampled_hand_case():
    sim = jnp.array([[1.0, 0.5], [0.2, 0.0]])
    # B = 2: the impostor is always the other example.
    got = float(losses.sampled_impostor_hinge_loss(sim, jax.random.key(0), margin=1.0))
    # anchor 0: 1+0.5-1=0.5 ; 1+0.2-1=0.2 ; anchor 1: 1+0.2-0=1.2 ; 1+0.5-0=1.5
    assert got == pytest.approx((0.5 + 0.2 + 1.2 + 1.5) / 2)


@pytest.mark.parametrize("mask", [None, [True, True, False, True, True, False, True]])
@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_matches_slow_with_same_draws(mask, seed):
    sim = _sim(7, seed)
    m = None if mask is None else jnp.array(mask)
    rng = jax.random.key(seed + 10)
    k_img, k_cap = jax.random.split(rng)
    valid = jnp.ones(7, bool) if m is None else m
    img_imp = np.asarray(losses.sample_impostors(k_img, valid))
    cap_imp = np.asarray(losses.sample_impostors(k_cap, valid))
    want = slow_sampled(sim, img_imp, cap_imp, 0.7, mask)
    got = float(jax.jit(lambda s, r: losses.sampled_impostor_hinge_loss(
        s, r, margin=0.7, mask=m))(sim, rng))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


# ----------------------------------------------------------------- semi-hard (ResDAVEnet-VQ)
def test_semihard_hand_case_and_quirk():
    # Row 0: positive 0.5; impostors -0.2, -0.4 (both negative, semi-hard) -> intended imp -0.2,
    # quirk imp 0. Row 1: positive -1 (no semi-hard impostor). Row 2: positive 2; imp 0.3 / 1.0.
    sim = jnp.array([[0.5, -0.2, -0.4],
                     [0.0, -1.0, 0.3],
                     [1.0, 0.3, 2.0]])
    s = np.asarray(sim, np.float64)
    row_imp, col_imp = [np.asarray(losses.sample_impostors(k, jnp.ones(3, bool)))
                        for k in jax.random.split(jax.random.key(3))]
    sampled = slow_sampled(s, row_imp, col_imp, 1.0)
    # Rows of S, intended: r0 imp -0.2 -> 0.3 ; r1 none -> 0 ; r2 imp 1.0 -> 0.
    # Rows of S^T (columns of S): c0 imp 0.0 -> 0.5 ; c1 none -> 0 ; c2 imp 0.3 -> 0.
    intended = sampled + (0.3 + 0.0 + 0.0 + 0.5 + 0.0 + 0.0) / 3
    # quirk: r0 imp 0 -> 0.5 ; r1 imp 0 -> 2.0 ; r2 -> 0 ; c0 -> .5 ; c1 imp 0 -> 2.0 ; c2 -> 0
    quirk = sampled + (0.5 + 2.0 + 0.0 + 0.5 + 2.0 + 0.0) / 3
    rng = jax.random.key(3)
    assert float(losses.semihard_hinge_loss(sim, rng)) == pytest.approx(intended, rel=1e-6)
    assert float(losses.semihard_hinge_loss(sim, rng, reference_quirk=True)) == pytest.approx(
        quirk, rel=1e-6)


@pytest.mark.parametrize("quirk", [False, True])
@pytest.mark.parametrize("mask", [None, [True, False, True, True, True, True, False, True]])
def test_semihard_matches_slow(quirk, mask):
    sim = _sim(8, 4)
    sim[2, 5] = sim[2, 2]   # a tie with the positive: not semi-hard
    sim[3, 1] = sim[3, 0] = sim[3, 3] - 0.1   # tied impostors
    m = None if mask is None else jnp.array(mask)
    rng = jax.random.key(21)
    valid = jnp.ones(8, bool) if m is None else m
    row_imp, col_imp = [np.asarray(losses.sample_impostors(k, valid))
                        for k in jax.random.split(rng)]
    want = slow_semihard(sim, row_imp, col_imp, 1.0, mask, quirk)
    got = float(losses.semihard_hinge_loss(sim, rng, mask=m, reference_quirk=quirk))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", sorted(registry.SIMILARITY_LOSSES))
def test_similarity_losses_grads_finite_and_padding_inert(name):
    fn = registry.get_similarity_loss(name)
    sim = _sim(6, 9)
    mask = jnp.array([True, True, True, True, False, False])
    rng = jax.random.key(5)
    g = np.asarray(jax.grad(lambda s: fn(s, rng, mask=mask))(sim))
    assert np.isfinite(g).all() and np.abs(g).sum() > 0
    assert not g[4:].any() and not g[:, 4:].any()
    garbage = sim.copy()
    garbage[4:] = 1e3
    garbage[:, 4:] = -1e3
    assert float(fn(garbage, rng, mask=mask)) == pytest.approx(float(fn(sim, rng, mask=mask)))
    with pytest.raises(ValueError, match="square"):
        fn(sim[:, :5], rng)
    with pytest.raises(ValueError, match="unknown similarity loss"):
        registry.get_similarity_loss("nope")


# ----------------------------------------------------------------- coscos2 and MSE
def test_coscos2_hand_case_and_slow():
    za = jnp.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    zb = jnp.array([[0.0, 2.0], [-3.0, 0.0], [1.0, 0.0]])
    same = jnp.array([True, False, False])
    # same, cos 0 -> 0.5 ; diff, cos -1 -> 1 ; diff, cos 1/sqrt2 -> 0.5
    assert float(losses.coscos2_loss(za, zb, same)) == pytest.approx(2.0 / 3, rel=1e-6)
    assert float(losses.coscos2_loss(za, zb, same, mask=jnp.array([True, True, False]))) == \
        pytest.approx(0.75, rel=1e-6)
    a, b = _emb(9, 4, 2)
    sm = np.random.default_rng(0).random(9) < 0.5
    mk = np.random.default_rng(1).random(9) < 0.7
    want = sum(((1 - _cos(a[p], b[p])) / 2 if sm[p] else _cos(a[p], b[p]) ** 2)
               for p in range(9) if mk[p]) / mk.sum()
    got = float(losses.coscos2_loss(a, b, jnp.array(sm), mask=jnp.array(mk)))
    assert got == pytest.approx(want, rel=1e-5)
    g = jax.grad(lambda x: losses.coscos2_loss(x, b, jnp.array(sm), mask=jnp.array(mk)))(a)
    assert np.isfinite(np.asarray(g)).all() and not np.asarray(g)[~mk].any()
    with pytest.raises(ValueError, match="same must be a boolean"):
        losses.coscos2_loss(a, b, jnp.ones(9, jnp.int32))


def test_mse_regression_hand_case_and_slow():
    zs = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    iv = jnp.array([[0.0, 0.0], [3.0, 4.0]])
    assert float(losses.mse_regression_loss(zs, iv)) == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert float(losses.mse_regression_loss(zs, iv, mask=jnp.array([True, False]))) == \
        pytest.approx(2.5)
    a, b = _emb(6, 3, 5)
    mk = np.array([True, False, True, True, False, True])
    want = sum((a[i, k] - b[i, k]) ** 2 for i in range(6) if mk[i] for k in range(3)) / (4 * 3)
    assert float(losses.mse_regression_loss(a, b, mask=jnp.array(mk))) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="mask must be boolean"):
        losses.mse_regression_loss(a, b, mask=jnp.array(mk, jnp.int32))


# ----------------------------------------------------------------- SigLIP
def test_sigmoid_hand_case():
    zs = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    zi = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    t, b = 2.0, -1.0
    # logits: [[2-1, 2-1], [-1, -1]]; labels diag +1, off -1
    sp = lambda x: math.log1p(math.exp(x))  # -log sigmoid(y) = softplus(-y)
    want = (sp(-1.0) + sp(1.0) + sp(-1.0) + sp(1.0)) / 2
    assert float(sigmoid_losses.sigmoid_loss(zs, zi, temperature=t, bias=b)) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("case", ["plain", "ids", "mask", "both"])
def test_sigmoid_matches_slow(case):
    zs, zi = _emb(8, 5, len(case))
    ids = np.array([0, 1, 1, 2, 3, 3, 3, 4]) if case in ("ids", "both") else None
    mask = np.array([1, 1, 0, 1, 1, 1, 0, 1], bool) if case in ("mask", "both") else None
    want = slow_sigmoid(zs, zi, 3.0, -2.0, ids, mask)
    got = float(sigmoid_losses.sigmoid_loss(zs, zi, temperature=3.0, bias=-2.0,
                                    image_ids=None if ids is None else jnp.array(ids),
                                    mask=None if mask is None else jnp.array(mask)))
    assert got == pytest.approx(want, rel=1e-5)


def _meshes():
    return [Mesh(np.array(jax.devices()), ("data",)),
            Mesh(np.array(jax.devices()[:1]), ("data",))]


@pytest.mark.parametrize("batch", [8, 24])
@pytest.mark.parametrize("case", ["plain", "ids_mask"])
def test_chunked_sigmoid_equals_sigmoid_value_and_grads(batch, case):
    assert jax.device_count() == 8
    zs, zi = _emb(batch, 6, batch)
    rng = np.random.default_rng(batch)
    ids = jnp.array(rng.integers(0, batch // 2, batch)) if case != "plain" else None
    mask = jnp.array(rng.random(batch) < 0.8) if case != "plain" else None
    args = (jnp.float32(2.5), jnp.float32(-1.5))

    def ref(a, b, t, c):
        return sigmoid_losses.sigmoid_loss(a, b, temperature=t, bias=c, image_ids=ids, mask=mask)

    want_v, want_g = jax.value_and_grad(ref, argnums=(0, 1, 2, 3))(zs, zi, *args)
    for mesh in _meshes():
        def chunked(a, b, t, c):
            return sigmoid_losses.chunked_sigmoid_loss(a, b, temperature=t, bias=c, mesh=mesh,
                                               image_ids=ids, mask=mask)
        got_v, got_g = jax.jit(jax.value_and_grad(chunked, argnums=(0, 1, 2, 3)))(zs, zi, *args)
        assert float(got_v) == pytest.approx(float(want_v), rel=1e-5)
        for g, w in zip(got_g, want_g):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-6)


def test_chunked_sigmoid_bad_inputs():
    mesh = _meshes()[0]
    zs, zi = _emb(12, 3, 0)
    with pytest.raises(ValueError, match="not divisible"):
        sigmoid_losses.chunked_sigmoid_loss(zs, zi, temperature=1.0, bias=0.0, mesh=mesh)
    with pytest.raises(ValueError, match="no axis 'batch'"):
        sigmoid_losses.chunked_sigmoid_loss(zs[:8], zi[:8], temperature=1.0, bias=0.0, mesh=mesh,
                                    axis="batch")
    with pytest.raises(ValueError, match="temperature must be a scalar"):
        sigmoid_losses.sigmoid_loss(zs, zi, temperature=jnp.ones(2), bias=0.0)
    with pytest.raises(ValueError, match="image_ids must be an integer"):
        sigmoid_losses.chunked_sigmoid_loss(zs[:8], zi[:8], temperature=1.0, bias=0.0, mesh=mesh,
                                    image_ids=jnp.zeros(8))


# ----------------------------------------------------------------- padding rows anywhere
_REAL = 13  # examples; padded to 16 rows (a multiple of 8 devices) with padding at rows 0, 5, 15
_PADDED_ROWS = np.array([0, 5, 15])


def _insert_padding(x, fill):
    """x [13, ...] -> ([16, ...] with `fill` in the padding rows, mask [16])."""
    mask = np.ones(_REAL + len(_PADDED_ROWS), bool)
    mask[_PADDED_ROWS] = False
    out = np.full((len(mask),) + x.shape[1:], fill, x.dtype)
    out[mask] = x
    return out, mask


def test_sample_impostors_are_the_same_examples_whatever_the_padding():
    _, mask = _insert_padding(np.zeros(_REAL), 0.0)
    real_rows = np.flatnonzero(mask)
    draw = jax.jit(losses.sample_impostors)
    for seed in range(3):
        plain = np.asarray(draw(jax.random.key(seed), jnp.ones(_REAL, bool)))
        padded = np.asarray(draw(jax.random.key(seed), jnp.asarray(mask)))
        np.testing.assert_array_equal(padded[real_rows], real_rows[plain])
        np.testing.assert_array_equal(padded[~mask], np.flatnonzero(~mask))  # padding anchors: themselves


@pytest.mark.parametrize("name", sorted(registry.SIMILARITY_LOSSES))
def test_similarity_losses_ignore_padding_rows_anywhere(name):
    """Padding rows/columns hold large scores: the loss and its gradient on the real block equal
    those of the unpadded matrix with the same key (same impostors drawn)."""
    fn = registry.get_similarity_loss(name)
    value_and_grad = jax.jit(jax.value_and_grad(lambda s, r, m: fn(s, r, margin=0.5, mask=m)))
    _, mask = _insert_padding(np.zeros(_REAL), 0.0)
    for seed in range(3):
        sim = _sim(_REAL, seed)
        padded = np.full((len(mask), len(mask)), 5.0, np.float32)
        padded[np.ix_(mask, mask)] = sim
        want, want_g = value_and_grad(sim, jax.random.key(seed), jnp.ones(_REAL, bool))
        got, got_g = value_and_grad(padded, jax.random.key(seed), jnp.asarray(mask))
        assert float(got) == pytest.approx(float(want), rel=1e-6)
        np.testing.assert_allclose(np.asarray(got_g)[np.ix_(mask, mask)], want_g, rtol=1e-6, atol=1e-7)
        assert not np.asarray(got_g)[~mask].any() and not np.asarray(got_g)[:, ~mask].any()


@pytest.mark.parametrize("chunked", [False, True])
def test_sigmoid_loss_ignores_padding_rows_anywhere(chunked):
    zs, zi = _emb(_REAL, 6, 3)
    ids = np.arange(_REAL, dtype=np.int32) // 2
    (zs_p, mask), (zi_p, _), (ids_p, _) = (_insert_padding(x, 7.0) for x in (zs, zi, ids.astype(np.float32)))
    ids_p = ids_p.astype(np.int32)
    kw = dict(temperature=2.5, bias=-1.5)
    want, want_g = jax.jit(jax.value_and_grad(lambda a: sigmoid_losses.sigmoid_loss(a, zi, image_ids=ids, **kw)))(zs)
    if chunked:
        fn = lambda a: sigmoid_losses.chunked_sigmoid_loss(a, zi_p, mesh=_meshes()[0], image_ids=ids_p,
                                                           mask=jnp.asarray(mask), **kw)
    else:
        fn = lambda a: sigmoid_losses.sigmoid_loss(a, zi_p, image_ids=ids_p, mask=jnp.asarray(mask), **kw)
    got, got_g = jax.jit(jax.value_and_grad(fn))(zs_p)
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    np.testing.assert_allclose(np.asarray(got_g)[mask], want_g, rtol=1e-4, atol=1e-6)
    assert not np.asarray(got_g)[~mask].any()
