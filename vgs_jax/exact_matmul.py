"""Nearly error-free float32 matrix products (Ozaki splitting), accurate whatever the backend's rounding.

A float32 matmul or FFT rounds its partial sums, so an output much smaller than the terms it sums (a weak spectral
bin beside strong ones, a filter state that cancels) carries an error of ~1e-7 of the largest terms, and that error
differs between CPU, GPU (TF32) and TPU (bfloat16 passes). Here each row of ``a`` and column of ``b`` is scaled by a
power of two and its leading bits cut into ``c`` slices of 8-bit integers. The products of leading slices
(a_p b_q with p + q < c) sum at most 1024 integer products below 2^14, so each is an integer below 2^24: exact in
float32 whatever the matmul precision (float32, TF32 or bfloat16 passes) and summation order. Everything else is
at most 2^(-8 c) of the terms and goes through one ordinary float32 matmul (HIGHEST precision), whose rounding is
therefore ~2^(-8 c - 24) of the terms. The parts are summed without rounding (a float32 pair, :func:`add_pairs`)
and rounded once (:func:`matmul`) or kept as the pair hi + lo (:func:`matmul_pair`).

Accuracy: |result - a @ b| <~ ulp(result) / 2 + (c + 1) 2^(-8 c - 24) sum_k |a_k| |b_k| (c = 1: ~2^-31, c = 2:
~2^-39 of the terms), against ~2^-24 for a plain float32 product. Cost: c (c + 1) / 2 exact products of the
operands' size plus one float32 product with (c + 1) times the contraction: 3 matmuls' work for c = 1, 6 for c = 2.
"""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

SLICE_BITS = 8  # a slice holds integers |i| <= 2^7
MAX_CONTRACTION = 1024  # 1024 products below 2^14 sum to at most 2^24: exact in float32
_ELEMENTWISE = 8  # contractions up to this length: a fused multiply-and-sum instead of a tiny matmul


@dataclasses.dataclass(frozen=True)
class SplitMatrix:
    """A float64 constant b [k, m] prepared on the host (all float32): b = scale (sum_q b_q 2^(1 - 8 (q + 1)) + r).

    exact[p] = [b_0 | ... | b_(c-1-p)] ([k, (c - p) m], integers |b_q| <= 128): what the leading slice a_p of the
    other operand meets exactly. tails [(c + 1) k, m] = [t_0; ...; t_(c-1); b / scale], t_p = b / scale - sum_{q <
    c - p} b_q 2^(1 - 8 (q + 1)): what a_p and the other operand's remainder meet in float32. scale [m]: powers of 2.
    """

    exact: tuple[np.ndarray, ...]
    tails: np.ndarray
    scale: np.ndarray

    @property
    def count(self) -> int:
        return len(self.exact)


def _slices(xp, rest, count: int) -> tuple[list, object]:
    """Splits ``rest`` (|rest| < 1) into ``count`` integer-valued arrays |slice| <= 128 and a remainder:
    rest = sum_p slices[p] 2^(1 - 8 (p + 1)) + remainder, |remainder| <= 2^(-8 count). Every step is exact."""
    slices = []
    for p in range(count):
        unit = 2.0 ** (1 - SLICE_BITS * (p + 1))
        slices.append(xp.round(rest / unit))
        rest = rest - slices[-1] * unit  # exact: both terms agree in their leading bits
    return slices, rest


def _power_of_two(exponent: jax.Array) -> jax.Array:
    """float32 2^exponent for int32 exponents in [-126, 127], built from the bits (exact, cheap to compile)."""
    return jax.lax.bitcast_convert_type((exponent + 127) << 23, jnp.float32)


def split(a: jax.Array, count: int) -> tuple[list[jax.Array], jax.Array, jax.Array]:
    """Ozaki split of float32 ``a`` [..., k] along its last axis.

    Returns (slices, remainder, exponent [..., 1] int32): a = 2^exponent (sum_p slices[p] 2^(1 - 8 (p + 1)) +
    remainder) exactly, slices integer-valued with |slice| <= 128, |remainder| <= 2^(-8 count); exponent is the
    binary exponent (frexp) of the row's largest |a|, for |a| < 2^126.
    """
    top = jnp.maximum(jnp.max(jnp.abs(a), axis=-1, keepdims=True), jnp.finfo(jnp.float32).tiny)
    exponent = (jax.lax.bitcast_convert_type(top, jnp.int32) >> 23) - 126  # top < 2^exponent
    slices, remainder = _slices(jnp, a * _power_of_two(-exponent), count)
    return slices, remainder, exponent


def split_matrix(matrix: np.ndarray, count: int = 1) -> SplitMatrix:
    """Prepares a float64 constant [k, m] (k <= 1024) for :func:`matmul` with ``count`` exact slices (see module
    docstring: 1 keeps ~2^-31 of the terms, 2 keeps ~2^-39)."""
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] > MAX_CONTRACTION:
        raise ValueError(f"split_matrix needs a [k, m] matrix with k <= {MAX_CONTRACTION}, got {matrix.shape}")
    _, exponent = np.frexp(np.maximum(np.abs(matrix).max(axis=0), np.finfo(np.float32).tiny))
    normalised = np.ldexp(matrix, -exponent)
    slices, _ = _slices(np, normalised, count)
    heads = np.cumsum([s * 2.0 ** (1 - SLICE_BITS * (q + 1)) for q, s in enumerate(slices)], axis=0)
    tails = [normalised - heads[count - 1 - p] for p in range(count)] + [normalised]
    return SplitMatrix(exact=tuple(np.concatenate(slices[:count - p], axis=1).astype(np.float32)
                                   for p in range(count)),
                       tails=np.concatenate(tails).astype(np.float32),
                       scale=np.ldexp(np.float32(1), exponent).astype(np.float32))


def _product(a: jax.Array, b: np.ndarray, precision) -> jax.Array:
    """a [..., k] @ b [k, n]; short contractions as a fused elementwise multiply-and-sum."""
    if b.shape[0] <= _ELEMENTWISE:
        return jnp.sum(a[..., :, None] * jnp.asarray(b), axis=-2)
    return jnp.matmul(a, jnp.asarray(b), precision=precision)


def _terms(a: jax.Array, b: SplitMatrix) -> list[jax.Array]:
    """float32 terms summing to a @ b (see module docstring): the exact slice products, then the float32 tail."""
    k, columns = b.exact[0].shape[0], b.scale.shape[0]
    if a.shape[-1] != k:
        raise ValueError(f"contraction mismatch: a has {a.shape[-1]} columns, the matrix {k} rows")
    slices, remainder, exponent = split(a.astype(jnp.float32), b.count)
    scale = _power_of_two(exponent) * jnp.asarray(b.scale)  # terms under 2^-126 flush: |a b| < 2^-100 loses bits
    terms = []
    for p, a_slice in enumerate(slices):
        products = _product(a_slice, b.exact[p], jax.lax.Precision.DEFAULT)  # integers < 2^24: exact
        terms += [(products[..., q * columns:(q + 1) * columns] * 2.0 ** (2 - SLICE_BITS * (p + q + 2))) * scale
                  for q in range(b.count - p)]
    scaled = [s * 2.0 ** (1 - SLICE_BITS * (p + 1)) for p, s in enumerate(slices)]  # exact
    tail = _product(jnp.concatenate(scaled + [remainder], axis=-1), b.tails, jax.lax.Precision.HIGHEST)
    return terms + [tail * scale]


def two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth; no FMA or reassociation involved)."""
    s = a + b
    b_virtual = s - a
    return s, (a - (s - b_virtual)) + (b - b_virtual)


def add_pairs(*terms: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Sum of float32 arrays as an unevaluated pair (hi, lo), |lo| <= ulp(hi) / 2, error ~2^-46 of the largest term."""
    hi, lo = terms[0], jnp.zeros_like(terms[0])
    for term in terms[1:]:
        hi, error = two_sum(hi, term)
        lo = lo + error
    return two_sum(hi, lo)


def matmul_pair(a: jax.Array, b: SplitMatrix) -> tuple[jax.Array, jax.Array]:
    """a [..., k] @ b [k, m] as a float32 pair (hi, lo), accurate as the module docstring says."""
    return add_pairs(*_terms(a, b))


def matmul(a: jax.Array, b: SplitMatrix) -> jax.Array:
    """a [..., k] @ b [k, m] -> float32 [..., m], accurate as the module docstring says and rounded once."""
    return matmul_pair(a, b)[0]
