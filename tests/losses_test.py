"""Tests for vgs_jax.objectives.losses against slow NumPy double loops and hand-computed cases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from vgs_jax.objectives import losses
from vgs_jax.objectives import registry


# ----------------------------------------------------------------- slow references
def _np_cos(zs, zi):
    zs = np.asarray(zs, np.float64)
    zi = np.asarray(zi, np.float64)
    zs = zs / np.linalg.norm(zs, axis=1, keepdims=True)
    zi = zi / np.linalg.norm(zi, axis=1, keepdims=True)
    out = np.zeros((len(zs), len(zi)))
    for i in range(len(zs)):
        for j in range(len(zi)):
            out[i, j] = sum(zs[i, k] * zi[j, k] for k in range(zs.shape[1]))
    return out


def _is_neg(i, j, ids, mask):
    if i == j or not (mask[i] and mask[j]):
        return False
    return ids is None or ids[i] != ids[j]


def _defaults(b, ids, mask):
    return ids, (np.ones(b, bool) if mask is None else np.asarray(mask))


def slow_platalea(zs, zi, margin=0.2, ids=None, mask=None):
    s = _np_cos(zs, zi)
    b = len(s)
    ids, mask = _defaults(b, ids, mask)
    total = 0.0
    for i in range(b):
        for j in range(b):
            if _is_neg(i, j, ids, mask):
                total += max(0.0, margin + s[i, j] - s[j, j])
                total += max(0.0, margin + s[i, j] - s[i, i])
    n = max(int(mask.sum()), 1)
    return total / n**2


def slow_hardest(zs, zi, margin=0.2, ids=None, mask=None):
    s = _np_cos(zs, zi)
    b = len(s)
    ids, mask = _defaults(b, ids, mask)
    s2i, i2s = 0.0, 0.0
    for a in range(b):
        if not mask[a]:
            continue
        s2i += max([max(0.0, margin + s[a, j] - s[a, a])
                    for j in range(b) if _is_neg(a, j, ids, mask)], default=0.0)
        i2s += max([max(0.0, margin + s[i, a] - s[a, a])
                    for i in range(b) if _is_neg(i, a, ids, mask)], default=0.0)
    n = max(int(mask.sum()), 1)
    return s2i / n + i2s / n


def slow_infonce(zs, zi, temperature, ids=None, mask=None):
    s = _np_cos(zs, zi) / temperature
    b = len(s)
    ids, mask = _defaults(b, ids, mask)
    s2i, i2s = 0.0, 0.0
    for a in range(b):
        if not mask[a]:
            continue
        row = [s[a, a]] + [s[a, j] for j in range(b) if _is_neg(a, j, ids, mask)]
        col = [s[a, a]] + [s[i, a] for i in range(b) if _is_neg(i, a, ids, mask)]
        s2i += math.log(sum(math.exp(v) for v in row)) - s[a, a]
        i2s += math.log(sum(math.exp(v) for v in col)) - s[a, a]
    n = max(int(mask.sum()), 1)
    return 0.5 * (s2i / n + i2s / n)


SLOW = {
    "platalea_hinge": lambda zs, zi, **kw: slow_platalea(zs, zi, **kw),
    "hardest_negative_hinge": lambda zs, zi, **kw: slow_hardest(zs, zi, **kw),
    "infonce": lambda zs, zi, **kw: slow_infonce(zs, zi, temperature=0.3, **kw),
}
KWARGS = {"platalea_hinge": {}, "hardest_negative_hinge": {}, "infonce": {"temperature": 0.3}}


def _data(b, e=6, seed=0):
    rng = np.random.default_rng(seed)
    zs = rng.normal(size=(b, e)).astype(np.float32)
    zi = (0.5 * zs + rng.normal(size=(b, e))).astype(np.float32)
    return zs, zi


# ----------------------------------------------------------------- hand-computed
def test_cosine_matrix_renormalises():
    zs = np.array([[3.0, 0.0], [0.0, 2.0]])
    zi = np.array([[1.0, 1.0], [0.0, -5.0]])
    s = np.asarray(losses.cosine_similarity_matrix(zs, zi))
    r = 1 / math.sqrt(2)
    np.testing.assert_allclose(s, [[r, 0.0], [r, -1.0]], atol=1e-6)


def test_hand_cases_b2():
    eye = np.eye(2, dtype=np.float32)
    swapped = eye[::-1].copy()
    # Perfect match: S = I, every hinge is max(0, 0.2 + 0 - 1) = 0.
    assert float(losses.platalea_hinge_loss(eye, eye)) == pytest.approx(0.0)
    assert float(losses.hardest_negative_hinge_loss(eye, eye)) == pytest.approx(0.0)
    # All wrong: S = [[0,1],[1,0]]; each off-diagonal cell costs 1.2 + 1.2.
    assert float(losses.platalea_hinge_loss(eye, swapped)) == pytest.approx(4.8 / 4, rel=1e-6)
    assert float(losses.hardest_negative_hinge_loss(eye, swapped)) == pytest.approx(2.4, rel=1e-6)
    # S = I, temperature 1: each row/column costs log(e + 1) - 1.
    expected = math.log(math.e + 1) - 1
    assert float(losses.infonce_loss(eye, eye, temperature=1.0)) == pytest.approx(expected, rel=1e-6)
    # Half-hit case: S = [[1, r], [0, r]], r = 1/sqrt(2): only (0,1) vs image 1 costs 0.2.
    zi = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    assert float(losses.platalea_hinge_loss(eye, zi)) == pytest.approx(0.2 / 4, rel=1e-5)
    # Margin is honoured: margin 0.5 -> (0,1): 0.5 + (0.5 + r - 1) = 0.7071; (1,0): 0.5 - r < 0.
    r = 1 / math.sqrt(2)
    want = (0.5 + (0.5 + r - 1.0)) / 4
    assert float(losses.platalea_hinge_loss(eye, zi, margin=0.5)) == pytest.approx(want, rel=1e-5)


# ----------------------------------------------------------------- vs slow loops
@pytest.mark.parametrize("name", sorted(registry.LOSSES))
@pytest.mark.parametrize("case", ["plain", "mask", "ids", "mask_ids"])
def test_matches_slow_loop(name, case):
    b = 7
    zs, zi = _data(b, seed=sorted(registry.LOSSES).index(name) * 10 + len(case))
    ids = np.array([0, 1, 1, 2, 3, 3, 3], np.int32) if "ids" in case else None
    mask = np.array([1, 1, 0, 1, 1, 0, 1], bool) if "mask" in case else None
    got = float(registry.get_loss(name)(zs, zi, image_ids=ids, mask=mask, **KWARGS[name]))
    want = SLOW[name](zs, zi, ids=ids, mask=mask)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_hinge_margins_vs_slow():
    zs, zi = _data(5, seed=3)
    for m in (0.0, 0.5, 1.3):
        assert float(losses.platalea_hinge_loss(zs, zi, margin=m)) == pytest.approx(
            slow_platalea(zs, zi, margin=m), rel=1e-5)
        assert float(losses.hardest_negative_hinge_loss(zs, zi, margin=m)) == pytest.approx(
            slow_hardest(zs, zi, margin=m), rel=1e-5)


def test_infonce_temperatures_vs_slow():
    zs, zi = _data(6, seed=4)
    for t in (0.05, 1.0, 3.0):
        assert float(losses.infonce_loss(zs, zi, temperature=t)) == pytest.approx(
            slow_infonce(zs, zi, t), rel=1e-4)


def test_padding_rows_do_not_matter():
    """Masked rows can hold anything (here zeros or large values): same result as dropping them."""
    zs, zi = _data(5, seed=5)
    mask = np.array([1, 1, 1, 0, 0], bool)
    zs2, zi2 = zs.copy(), zi.copy()
    zs2[3:], zi2[4] = 0.0, 0.0
    zi2[3] = 1e3
    for name, fn in registry.LOSSES.items():
        a = float(fn(zs2, zi2, mask=mask, **KWARGS[name]))
        b = float(fn(zs[:3], zi[:3], **KWARGS[name]))
        assert a == pytest.approx(b, rel=1e-5), name


# ----------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", sorted(registry.LOSSES))
def test_gradients_finite_without_negatives(name):
    """All pairs are the same image (no negatives), plus zero-vector padding rows."""
    zs, zi = _data(4, seed=6)
    zs[3], zi[3] = 0.0, 0.0
    ids = np.zeros(4, np.int32)
    mask = np.array([1, 1, 1, 0], bool)
    fn = registry.get_loss(name)
    val, grads = jax.value_and_grad(
        lambda a, b: fn(a, b, image_ids=ids, mask=mask, **KWARGS[name]), argnums=(0, 1))(zs, zi)
    assert np.isfinite(float(val))
    assert float(val) == pytest.approx(0.0, abs=1e-6)  # nothing to contrast against
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))
    # And with everything masked out.
    val0 = fn(zs, zi, mask=np.zeros(4, bool), **KWARGS[name])
    assert float(val0) == 0.0


@pytest.mark.parametrize("name", sorted(registry.LOSSES))
def test_gradient_matches_finite_differences(name):
    zs, zi = _data(4, e=3, seed=7)
    zs, zi = zs.astype(np.float64), zi.astype(np.float64)
    ids = np.array([0, 1, 1, 2])
    g = np.asarray(jax.grad(
        lambda a: registry.get_loss(name)(a, zi.astype(np.float32), image_ids=ids,
                                        **KWARGS[name]))(zs.astype(np.float32)))
    eps = 1e-4
    for i, k in [(0, 0), (1, 2), (3, 1)]:
        up, down = zs.copy(), zs.copy()
        up[i, k] += eps
        down[i, k] -= eps
        num = (SLOW[name](up, zi, ids=ids) - SLOW[name](down, zi, ids=ids)) / (2 * eps)
        assert g[i, k] == pytest.approx(num, abs=2e-3), (i, k)


def test_temperature_gradient_traced():
    zs, zi = _data(5, seed=8)
    f = jax.jit(jax.grad(lambda log_t: losses.infonce_loss(zs, zi, temperature=jnp.exp(log_t))))
    assert np.isfinite(float(f(jnp.log(0.1))))


# ----------------------------------------------------------------- global batch
@pytest.mark.parametrize("name", sorted(registry.LOSSES))
def test_sharded_global_batch_equals_single_device(name):
    assert jax.device_count() == 8
    b = 16
    zs, zi = _data(b, e=8, seed=9)
    ids = (np.arange(b) // 2).astype(np.int32)  # pairs of captions per image
    ids[5] = 100  # break one pair so ids vary
    mask = np.ones(b, bool)
    mask[-3:] = False
    kw = KWARGS[name]
    fn = registry.get_loss(name)

    def value_and_grads(a, c, i, m):
        return jax.value_and_grad(lambda x, y: fn(x, y, image_ids=i, mask=m, **kw),
                                  argnums=(0, 1))(a, c)

    single = jax.jit(value_and_grads)
    dev0 = jax.devices()[0]
    ref_val, (ref_gs, ref_gi) = single(*[jax.device_put(x, dev0) for x in (zs, zi, ids, mask)])

    mesh = Mesh(np.array(jax.devices()), ("data",))
    shard = NamedSharding(mesh, P("data"))
    args = [jax.device_put(x, shard) for x in (zs, zi, ids, mask)]
    assert len(args[0].sharding.device_set) == 8
    val, (gs, gi) = jax.jit(value_and_grads)(*args)

    np.testing.assert_allclose(np.asarray(val), np.asarray(ref_val), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gs), np.asarray(ref_gs), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gi), np.asarray(ref_gi), rtol=1e-4, atol=1e-6)
    # The global value is the slow loop over the whole batch, not a per-shard loss.
    want = SLOW[name](zs, zi, ids=ids, mask=mask)
    assert float(val) == pytest.approx(want, rel=1e-5)


# ----------------------------------------------------------------- errors
def test_errors():
    zs, zi = _data(4)
    with pytest.raises(ValueError, match="z_speech shape"):
        losses.platalea_hinge_loss(zs, zi[:3])
    with pytest.raises(ValueError, match="2-D"):
        losses.infonce_loss(zs[None], zi[None], temperature=1.0)
    with pytest.raises(ValueError, match="mask must have shape"):
        losses.platalea_hinge_loss(zs, zi, mask=np.ones(3, bool))
    with pytest.raises(ValueError, match="mask must be boolean"):
        losses.platalea_hinge_loss(zs, zi, mask=np.ones(4, np.int32))
    with pytest.raises(ValueError, match="image_ids must have shape"):
        losses.hardest_negative_hinge_loss(zs, zi, image_ids=np.arange(5))
    with pytest.raises(ValueError, match="image_ids must be an integer"):
        losses.hardest_negative_hinge_loss(zs, zi, image_ids=np.arange(4.0))
    with pytest.raises(ValueError, match="temperature must be positive"):
        losses.infonce_loss(zs, zi, temperature=0.0)
    with pytest.raises(ValueError, match="temperature must be a scalar"):
        losses.infonce_loss(zs, zi, temperature=np.ones(2))
    with pytest.raises(ValueError, match="embed_dim"):
        losses.cosine_similarity_matrix(zs, zi[:, :3])
    with pytest.raises(ValueError, match="unknown loss 'triplet'.*infonce"):
        registry.get_loss("triplet")


def test_jit_and_registry():
    zs, zi = _data(6)
    for name, fn in registry.LOSSES.items():
        assert registry.get_loss(name) is fn
        jitted = jax.jit(lambda a, b, fn=fn, name=name: fn(a, b, **KWARGS[name]))
        assert float(jitted(zs, zi)) == pytest.approx(float(fn(zs, zi, **KWARGS[name])), rel=1e-6)
