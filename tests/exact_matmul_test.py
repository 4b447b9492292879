"""Tests of vgs_jax.exact_matmul: nearly error-free float32 products against float64 / exact arithmetic."""
import fractions

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from vgs_jax import exact_matmul as em


def _cancelling_problem(rng, rows=4, k=400, m=3):
    """float32 a [rows, k] and float64 b [k, m]; output [0, 0] cancels to 1e-3 from terms summing to ~300."""
    a = rng.standard_normal((rows, k)).astype(np.float32)
    b = rng.standard_normal((k, m))
    b[-1, 0] = (1e-3 - a[0, :-1].astype(np.float64) @ b[:-1, 0]) / a[0, -1]
    return a, b


def _matmul(a, b, count=1, pair=False):
    """em.matmul / em.matmul_pair of float32 a and float64 b, jit-compiled once (faster than op by op)."""
    split = em.split_matrix(b, count=count)
    out = jax.jit(lambda x: (em.matmul_pair if pair else em.matmul)(x, split))(jnp.asarray(a))
    return tuple(np.asarray(v, np.float64) for v in out) if pair else np.asarray(out, np.float64)


def _tolerance(a, b, count):
    """(a @ b in float64, the documented accuracy (c + 1) 2^(-8 c - 24) sum |a| |b|, with 8x slack)."""
    terms = np.abs(a.astype(np.float64)) @ np.abs(b)
    return a.astype(np.float64) @ b, 8 * (count + 1) * 2.0 ** (-8 * count - 24) * terms


@pytest.mark.parametrize("count", [1, 2])
def test_matmul_is_the_float64_product_rounded_once(count):
    a, b = _cancelling_problem(np.random.default_rng(0))
    want, tolerance = _tolerance(a, b, count)
    half_ulp = np.spacing(np.abs(want).astype(np.float32)) / 2
    got = _matmul(a, b, count)
    assert np.all(np.abs(got - want) <= half_ulp + tolerance)
    np.testing.assert_allclose(got.reshape(-1)[1:], want.reshape(-1)[1:], rtol=2e-7)  # no cancellation: rounding
    plain = np.asarray(jnp.asarray(a) @ jnp.asarray(b, jnp.float32), np.float64)
    # the cancelling output: a float32 matmul keeps ~3 digits of it
    assert abs(plain[0, 0] - want[0, 0]) > 1e-3 * abs(want[0, 0]) and abs(plain[0, 0] - want[0, 0]) > (
        30 * abs(got[0, 0] - want[0, 0]))
    hi, lo = _matmul(a, b, count, pair=True)
    assert np.all(np.abs(hi + lo - want) <= tolerance)


def test_batch_axes_and_tiny_rows_keep_their_own_scale():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 3, 6)).astype(np.float32) * np.float32(1e-20)  # row scales far from 1
    a[1, 2] *= np.float32(1e25)
    b = rng.standard_normal((6, 5))
    want, tolerance = _tolerance(a, b, 1)
    got = _matmul(a, b)  # a short contraction: the elementwise path
    assert np.all(np.abs(got - want) <= np.spacing(np.abs(want).astype(np.float32)) / 2 + tolerance)


def test_slices_are_small_integers_exact_in_bfloat16():
    # Why the slice products are exact on every backend: |slice| <= 128 survives bfloat16/TF32 operands, and
    # 1024 products below 2^14 sum to at most 2^24, exact in a float32 accumulator.
    b = np.random.default_rng(2).standard_normal((1024, 7)) * np.logspace(-20, 20, 7)
    for exact in em.split_matrix(b, count=2).exact:
        assert np.array_equal(exact, np.round(exact)) and np.abs(exact).max() <= 128
        assert np.array_equal(exact.astype(ml_dtypes.bfloat16).astype(np.float32), exact)
    a = b.T.astype(np.float32)
    slices, remainder, exponent = em.split(jnp.asarray(a), 2)
    rebuilt = sum(np.asarray(s, np.float64) * 2.0 ** (1 - 8 * (p + 1)) for p, s in enumerate(slices))
    np.testing.assert_array_equal(np.ldexp(rebuilt + np.asarray(remainder, np.float64), np.asarray(exponent)), a)
    for piece in slices:
        piece = np.asarray(piece)
        assert np.array_equal(piece, np.round(piece)) and np.abs(piece).max() <= 128
    assert np.abs(np.asarray(remainder)).max() <= 2.0 ** -16
    with pytest.raises(ValueError, match="k <= 1024"):
        em.split_matrix(np.ones((1025, 2)))
    with pytest.raises(ValueError, match="contraction mismatch"):
        em.matmul(jnp.ones((2, 3)), em.split_matrix(np.ones((4, 2))))


def test_two_sum_and_add_pairs_are_exact():
    rng = np.random.default_rng(3)
    terms = [rng.standard_normal(50).astype(np.float32) * np.float32(scale) for scale in (1.0, 1e-5, 3e-9, 1.0)]
    s, e = em.two_sum(jnp.asarray(terms[0]), jnp.asarray(terms[1]))
    for i in range(50):
        assert fractions.Fraction(float(s[i])) + fractions.Fraction(float(e[i])) == (
            fractions.Fraction(float(terms[0][i])) + fractions.Fraction(float(terms[1][i])))
    hi, lo = em.add_pairs(*(jnp.asarray(t) for t in terms))
    for i in range(50):
        exact = sum(fractions.Fraction(float(t[i])) for t in terms)
        assert abs(fractions.Fraction(float(hi[i])) + fractions.Fraction(float(lo[i])) - exact) <= (
            abs(exact) * 2.0 ** -44)
        assert abs(float(lo[i])) <= np.spacing(np.float32(abs(float(hi[i])))) / 2
