"""Vector quantisation with an EMA codebook (ResDAVEnet-VQ anchor §3.3, platalea anchor §1.8).

`VectorQuantizer` maps each frame to its nearest code (squared Euclidean distance) and passes
gradients straight through (forward value = the code, gradient w.r.t. the input = identity). The
commitment loss is beta * mean over VALID frames and dimensions of (x - sg(q))^2, as in
ResDAVEnet-VQ (which adds it to the retrieval loss; platalea computes it but never adds it).

The codebook is not a gradient-trained parameter: it and its EMA statistics live in `VQState`
variables (not `nnx.Param`), so `nnx.state(model, nnx.Param)` excludes them and an optimizer never
touches them. They are updated by the pure function `update_ema(state, x, mask, ...)`, which uses
valid (non-padding) frames only; the trainer calls it (or `VectorQuantizer.update(x, mask)`) after
the gradient step with the pre-quantisation frames of the same batch. Update rule, per code k:

    n_k   <- decay * n_k + (1 - decay) * #{valid frames assigned to k}
    s_k   <- decay * s_k + (1 - decay) * sum of those frames
    n_k   <- (n_k + eps) / (N + K * eps) * N,   N = sum_k n_k      (Laplace smoothing, stored)
    c_k   <- s_k / n_k

Initialisation: "normal" draws codes from N(0, 1) (ResDAVEnet-VQ `--init-std 1`); "uniform" from
U(-1/K, 1/K) (platalea). EMA counts start at `init_mass` (ResDAVEnet-VQ: 1) and sums at
init_mass * codebook; `init_mass=0` reproduces platalea, whose unused codes then blow up after the
first update (observed in the reference).

The ResDAVEnet-VQ "->" recipe (copy every entry whose path and shape exist in an old, e.g. non-VQ,
checkpoint; keep the rest, the new codebooks, fresh) is `checkpointing.fit_tree(..., partial=True)`.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx


class VQState(nnx.Variable):
    """Variable type for codebooks and their EMA statistics (updated by EMA, never by gradients)."""


class EMAState(NamedTuple):
    """Pure EMA state of one quantiser: codebook [K, D], counts [K], sums [K, D] (all float32)."""
    codebook: jax.Array
    counts: jax.Array
    sums: jax.Array


def check_x_mask(x: jax.Array, mask: jax.Array, dim: int, where: str) -> None:
    if x.ndim < 2 or x.shape[-1] != dim:
        raise ValueError(f"{where}: x must be [..., {dim}] (frames of the codebook's dimension), got {x.shape}.")
    if mask.shape != x.shape[:-1]:
        raise ValueError(f"{where}: mask shape {mask.shape} must equal x's frame shape {x.shape[:-1]}.")


def nearest_codes(x: jax.Array, codebook: jax.Array) -> jax.Array:
    """Index of the nearest code by squared Euclidean distance.

    Args:
      x: [..., D] float frames; codebook: [K, D] float.
    Returns:
      [...] int32 code indices (ties go to the lowest index).
    """
    x = x.astype(jnp.float32)
    c = codebook.astype(jnp.float32)
    d2 = (jnp.sum(x * x, axis=-1, keepdims=True) - 2.0 * jnp.einsum("...d,kd->...k", x, c)
          + jnp.sum(c * c, axis=-1))
    return jnp.argmin(d2, axis=-1).astype(jnp.int32)


def code_statistics(codes: jax.Array, mask: jax.Array, num_codes: int) -> tuple[jax.Array, jax.Array]:
    """Perplexity and usage of an assignment over valid frames.

    Args:
      codes: [...] int code indices; mask: [...] bool valid frames; num_codes: K.
    Returns:
      (perplexity, usage), float32 scalars: exp(entropy) of the code histogram of valid frames and
      the fraction of the K codes used at least once (both 0 when no frame is valid).
    """
    onehot = jax.nn.one_hot(codes, num_codes, dtype=jnp.float32) * mask[..., None]
    hist = jnp.sum(onehot.reshape(-1, num_codes), axis=0)
    total = jnp.sum(hist)
    p = hist / jnp.maximum(total, 1.0)
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    perplexity = jnp.where(total > 0, jnp.exp(entropy), 0.0)
    usage = jnp.sum(hist > 0) / num_codes
    return perplexity, usage.astype(jnp.float32)


def quantize(x: jax.Array, mask: jax.Array, codebook: jax.Array, commitment_cost: float = 1.0
             ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Quantise frames with a fixed codebook (pure function).

    Args:
      x: [..., D] float frames; mask: [...] bool, True at valid frames; codebook: [K, D].
      commitment_cost: beta.
    Returns:
      (q, aux): q [..., D] float32 = x + sg(code - x) (value = nearest code, d q / d x = identity);
      aux has "codes" [...] int32, "commitment_loss" (beta * mean over valid frames and dims of
      (x - sg(code))^2, 0 without valid frames), "perplexity" and "usage" (see `code_statistics`).
    """
    check_x_mask(x, mask, codebook.shape[-1], "quantize")
    x = x.astype(jnp.float32)
    codes = nearest_codes(x, codebook)
    code_vectors = jnp.take(codebook.astype(jnp.float32), codes, axis=0)
    q = x + jax.lax.stop_gradient(code_vectors - x)
    m = mask.astype(jnp.float32)[..., None]
    sq = jnp.sum((x - jax.lax.stop_gradient(code_vectors)) ** 2 * m)
    denom = jnp.maximum(jnp.sum(m) * x.shape[-1], 1.0)
    perplexity, usage = code_statistics(codes, mask, codebook.shape[0])
    aux = {"codes": codes, "commitment_loss": commitment_cost * sq / denom,
           "perplexity": perplexity, "usage": usage}
    return q, aux


def update_ema(state: EMAState, x: jax.Array, mask: jax.Array, *, decay: float = 0.99,
               epsilon: float = 1e-5) -> EMAState:
    """One EMA codebook update from the valid frames of a batch (rule in the module docstring).

    Args:
      state: current EMAState (codebook [K, D], counts [K], sums [K, D]).
      x: [..., D] float pre-quantisation frames; mask: [...] bool, True at valid frames (padding
        frames do not count). Frames are assigned with the CURRENT codebook.
      decay: EMA decay in [0, 1); epsilon: Laplace smoothing constant >= 0.
    Returns:
      new EMAState (float32). Gradients do not flow through it.
    """
    codebook, counts, sums = (jnp.asarray(a, jnp.float32) for a in state)
    check_x_mask(x, mask, codebook.shape[-1], "update_ema")
    x = jax.lax.stop_gradient(x.astype(jnp.float32))
    k = codebook.shape[0]
    onehot = jax.nn.one_hot(nearest_codes(x, codebook), k, dtype=jnp.float32) * mask[..., None]
    onehot = onehot.reshape(-1, k)
    batch_counts = jnp.sum(onehot, axis=0)
    batch_sums = jnp.einsum("nk,nd->kd", onehot, x.reshape(-1, x.shape[-1]),
                            precision=jax.lax.Precision.HIGHEST)
    counts = decay * counts + (1.0 - decay) * batch_counts
    sums = decay * sums + (1.0 - decay) * batch_sums
    total = jnp.sum(counts)
    counts = (counts + epsilon) / (total + k * epsilon) * total
    # A code whose smoothed count is 0 (only possible with epsilon=0 or init_mass=0) keeps its vector.
    safe = counts > 0
    new_codebook = jnp.where(safe[:, None], sums / jnp.where(safe, counts, 1.0)[:, None], codebook)
    return EMAState(new_codebook, counts, sums)


class VectorQuantizer(nnx.Module):
    """Nearest-code quantiser with straight-through gradients and an EMA codebook.

    `__call__(x, mask)` -> (q, aux) as `quantize`; the codebook is read, never written. Apply the
    EMA update with `update(x, mask)` (in place) or the pure `update_ema(self.ema_state(), ...)`.
    """

    def __init__(self, num_codes: int, dim: int, *, decay: float = 0.99, epsilon: float = 1e-5,
                 commitment_cost: float = 1.0, init: str = "normal", init_mass: float = 1.0,
                 rngs: nnx.Rngs):
        if num_codes < 1 or dim < 1:
            raise ValueError(f"VectorQuantizer: num_codes ({num_codes}) and dim ({dim}) must be >= 1.")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"VectorQuantizer: decay must be in [0, 1), got {decay}.")
        if epsilon < 0 or init_mass < 0 or commitment_cost < 0:
            raise ValueError(
                f"VectorQuantizer: epsilon ({epsilon}), init_mass ({init_mass}) and commitment_cost "
                f"({commitment_cost}) must be >= 0.")
        key = rngs.params()
        if init == "normal":
            codebook = jax.random.normal(key, (num_codes, dim), jnp.float32)
        elif init == "uniform":
            codebook = jax.random.uniform(key, (num_codes, dim), jnp.float32, -1.0 / num_codes, 1.0 / num_codes)
        else:
            raise ValueError(f"VectorQuantizer: init must be 'normal' or 'uniform', got {init!r}.")
        self.num_codes = num_codes
        self.dim = dim
        self.decay = decay
        self.epsilon = epsilon
        self.commitment_cost = commitment_cost
        self.codebook = VQState(codebook)
        self.ema_counts = VQState(jnp.full((num_codes,), init_mass, jnp.float32))
        self.ema_sums = VQState(init_mass * codebook)

    def ema_state(self) -> EMAState:
        """The current (codebook, counts, sums) as a pure EMAState."""
        return EMAState(self.codebook[...], self.ema_counts[...], self.ema_sums[...])

    def set_ema_state(self, state: EMAState) -> None:
        """Write an EMAState (e.g. from `update_ema`) back into the module's variables."""
        if tuple(state.codebook.shape) != (self.num_codes, self.dim):
            raise ValueError(
                f"VectorQuantizer: codebook shape {state.codebook.shape} != ({self.num_codes}, {self.dim}).")
        self.codebook[...] = state.codebook
        self.ema_counts[...] = state.counts
        self.ema_sums[...] = state.sums

    def update(self, x: jax.Array, mask: jax.Array) -> None:
        """EMA update in place from frames x [..., D] and mask [...] (valid frames only)."""
        self.set_ema_state(update_ema(self.ema_state(), x, mask, decay=self.decay, epsilon=self.epsilon))

    def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """x [..., D] float, mask [...] bool -> (q [..., D] float32, aux dict); see `quantize`."""
        return quantize(x, mask, self.codebook[...], self.commitment_cost)
