"""PyTorch-compatible recurrent layers shared by the speech encoders: GRU and LSTM.

Both follow PyTorch exactly and store their weights in PyTorch's layout, so a torch state dict
converts by copying: `nn.GRU` (gate order r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn));
h' = (1 - z) * n + z * h) with w_ih [3H, in], w_hh [3H, H], b_ih, b_hh [3H] per direction, and
`nn.LSTM` (gate order i, f, g, o) with w_ih [4H, in], w_hh [4H, H], b_ih, b_hh [4H]. For speed the
input projection of all frames is one matmul before the `lax.scan`; only h @ w_hh runs inside the
loop, and both directions of a bidirectional layer share one scan. The GRU's backward pass is
hand-written (`_gru_states`) so that its weight gradient is one matmul after the loop.

Sequences follow packed-sequence semantics: `mask` [B, T] must be a prefix mask (valid frames
first, then padding; length = mask.sum(1)). Padding never enters the recurrence, the backward
direction starts at each sequence's own last valid frame, and outputs at padded frames are zero.
"""
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models.pooling import torch_uniform_init
from vgs_jax.models.precision import mixed_einsum


def uniform_init(scale: float):
    """Initialiser drawing U(-scale, scale)."""
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, minval=-scale, maxval=scale)
    return init


def check_x_mask(x: jax.Array, mask: jax.Array, where: str, in_features: int) -> None:
    if x.ndim != 3:
        raise ValueError(f"{where}: input must be [batch, time, features], got shape {x.shape}.")
    if x.shape[-1] != in_features:
        raise ValueError(
            f"{where}: input has {x.shape[-1]} features per frame, the module was built for {in_features}.")
    if mask.shape != x.shape[:2]:
        raise ValueError(
            f"{where}: mask shape {mask.shape} must equal the input's [batch, time] = {x.shape[:2]}.")


@jax.custom_vjp
def reverse_within_length(x: jax.Array, lengths: jax.Array) -> jax.Array:
    """Reverse each sequence's first `lengths[b]` frames, leaving padded frames in place.

    Args:
      x: [B, T, ...] array.
      lengths: [B] int, 0 <= lengths[b] <= T.
    Returns:
      [B, T, ...] array; the map is its own inverse, so its gradient is the same gather applied to
      the cotangent (not the scatter-add autodiff would make, which XLA CPU runs serially).
    """
    return _reverse_within_length(x, lengths)


def _reverse_within_length(x: jax.Array, lengths: jax.Array) -> jax.Array:
    t = jnp.arange(x.shape[1])[None, :]
    idx = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=1)


reverse_within_length.defvjp(lambda x, lengths: (_reverse_within_length(x, lengths), lengths),
                             lambda lengths, g: (_reverse_within_length(g, lengths), None))


def gru_scan(xi: jax.Array, w_hh: jax.Array, b_hh: jax.Array, mask: jax.Array,
             dtype=jnp.float32) -> jax.Array:
    """Run the GRU recurrence for D stacked directions given precomputed input projections.

    Args:
      xi: [D, T, B, 3H] float32, W_ih x_t + b_ih for every frame (gate order r, z, n).
      w_hh: [D, 3H, H] float32 recurrent weights (PyTorch layout).
      b_hh: [D, 3H] float32 recurrent biases.
      mask: [T, B] bool prefix mask (valid frames first), True at valid frames.
      dtype: dtype of the recurrent matmul inputs (accumulation is float32).
    Returns:
      [D, T, B, H] float32 hidden states, zero at invalid frames. The initial state is zero.

    With a prefix mask no valid frame follows a padded one, so the loop runs unmasked (no per-step
    state freezing) and padded frames are zeroed once afterwards: the same outputs and gradients.
    """
    states = _gru_states(jnp.moveaxis(xi, 1, 0), w_hh, b_hh, dtype)  # [T, D, B, H]
    return jnp.moveaxis(jnp.where(mask[:, None, :, None], states, 0.0), 0, 1)


def _gru_loop(xi: jax.Array, w_hh: jax.Array, b_hh: jax.Array, dtype, keep_gates: bool):
    """The recurrence over time-major xi [T, D, B, 3H]: states [T, D, B, H], plus the gates the
    backward pass needs (rz [T, D, B, 2H], n and W_hn h + b_hn [T, D, B, H]) when `keep_gates`."""
    _, num_dirs, batch, three_h = xi.shape
    hidden = three_h // 3
    w = jnp.swapaxes(w_hh, 1, 2).astype(dtype)  # [D, H, 3H]: h @ w needs no transpose in the loop
    b = b_hh[:, None, :].astype(jnp.float32)

    def step(h, xi_t):
        hh = jnp.einsum("dbh,dhg->dbg", h.astype(dtype), w, preferred_element_type=jnp.float32) + b
        rz = jax.nn.sigmoid(xi_t[..., :2 * hidden] + hh[..., :2 * hidden])
        hn = hh[..., 2 * hidden:]
        n = jnp.tanh(xi_t[..., 2 * hidden:] + rz[..., :hidden] * hn)
        h_new = n + rz[..., hidden:] * (h - n)  # = (1 - z) * n + z * h
        return h_new, ((h_new, rz, n, hn) if keep_gates else h_new)

    h0 = jnp.zeros((num_dirs, batch, hidden), jnp.float32)
    return jax.lax.scan(step, h0, xi)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _gru_states(xi: jax.Array, w_hh: jax.Array, b_hh: jax.Array, dtype) -> jax.Array:
    """Unmasked GRU states [T, D, B, H] from time-major xi [T, D, B, 3H], w_hh [D, 3H, H], b_hh [D, 3H].

    The hand-written backward pass returns per-step gate gradients from its loop and forms the
    w_hh / b_hh gradients after it, as one [3H, T*B] x [T*B, H] product per direction, instead of
    accumulating a weight-sized gradient in the loop carry at every step as autodiff of `lax.scan`
    does."""
    return _gru_loop(xi, w_hh, b_hh, dtype, keep_gates=False)


def _gru_states_fwd(xi, w_hh, b_hh, dtype):
    states, rz, n, hn = _gru_loop(xi, w_hh, b_hh, dtype, keep_gates=True)
    return states, (states, rz, n, hn, w_hh)


def _gru_states_bwd(dtype, residuals, d_states):
    states, rz, n, hn, w_hh = residuals
    hidden = n.shape[-1]
    w = w_hh.astype(dtype)  # [D, 3H, H]
    h_prev = jnp.concatenate([jnp.zeros_like(states[:1]), states[:-1]])

    def step(dh, inputs):
        g_t, h_prev_t, rz_t, n_t, hn_t = inputs
        dh = dh + g_t
        r, z = rz_t[..., :hidden], rz_t[..., hidden:]
        da_n = dh * (1.0 - z) * (1.0 - n_t * n_t)  # through n = tanh(a_n)
        da_rz = jnp.concatenate([da_n * hn_t, dh * (h_prev_t - n_t)], -1) * rz_t * (1.0 - rz_t)
        d_hh = jnp.concatenate([da_rz, da_n * r], -1)  # d(W_hh h + b_hh)
        dh_prev = dh * z + jnp.einsum("dbg,dgh->dbh", d_hh.astype(dtype), w, preferred_element_type=jnp.float32)
        return dh_prev, (jnp.concatenate([da_rz, da_n], -1), d_hh)

    init = jnp.zeros_like(states[0])
    _, (d_xi, d_hh) = jax.lax.scan(step, init, (d_states, h_prev, rz, n, hn), reverse=True)
    d_w = jnp.einsum("tdbg,tdbh->dgh", d_hh.astype(dtype), h_prev.astype(dtype),
                     preferred_element_type=jnp.float32)
    return d_xi, d_w.astype(w_hh.dtype), jnp.sum(d_hh, axis=(0, 2))


_gru_states.defvjp(_gru_states_fwd, _gru_states_bwd)


def lstm_scan(xi: jax.Array, w_hh: jax.Array, b_hh: jax.Array, mask: jax.Array,
              dtype=jnp.float32) -> jax.Array:
    """LSTM recurrence for D stacked directions given input projections (PyTorch gate order i, f, g, o).

    Args:
      xi: [D, T, B, 4H] float32, W_ih x_t + b_ih for every frame.
      w_hh: [D, 4H, H]; b_hh: [D, 4H]; mask: [T, B] bool (state frozen at invalid frames).
    Returns:
      [D, T, B, H] float32 hidden states h_t, zero at invalid frames; h0 = c0 = 0.
    """
    num_dirs, _, batch, four_h = xi.shape
    hd = four_h // 4
    w = w_hh.astype(dtype)
    b = b_hh[:, None, :].astype(jnp.float32)

    def step(carry, inputs):
        h, c = carry
        xi_t, m_t = inputs
        g = xi_t + mixed_einsum("dbh,dgh->dbg", h.astype(dtype), w) + b
        i = jax.nn.sigmoid(g[..., :hd])
        f = jax.nn.sigmoid(g[..., hd:2 * hd])
        cand = jnp.tanh(g[..., 2 * hd:3 * hd])
        o = jax.nn.sigmoid(g[..., 3 * hd:])
        c_new = f * c + i * cand
        h_new = o * jnp.tanh(c_new)
        m = m_t[None, :, None]
        return (jnp.where(m, h_new, h), jnp.where(m, c_new, c)), jnp.where(m, h_new, 0.0)

    zeros = jnp.zeros((num_dirs, batch, hd), jnp.float32)
    _, out = jax.lax.scan(step, (zeros, zeros), (jnp.moveaxis(xi, 1, 0), mask))
    return jnp.moveaxis(out, 0, 1)


def conv_output_lengths(lengths: jax.Array, kernel: int, stride: int) -> jax.Array:
    """Valid frames after a VALID strided conv: floor((L - kernel) / stride) + 1, clamped at >= 0."""
    return jnp.maximum((lengths - kernel) // stride + 1, 0)


class _RNNLayer(nnx.Module):
    """One direction of a PyTorch-compatible recurrent layer with `_GATES` gates (PyTorch layout, and
    PyTorch's init U(+-1/sqrt(H)) for every tensor). Subclasses set `_GATES` and `_scan`."""

    _GATES: int
    _scan = None

    def __init__(self, in_features: int, hidden: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        if in_features <= 0 or hidden <= 0:
            raise ValueError(f"{type(self).__name__}: in_features ({in_features}) and hidden ({hidden}) "
                             "must be positive.")
        self.in_features = in_features
        self.hidden = hidden
        self.dtype = dtype
        init = torch_uniform_init(hidden)
        g = self._GATES * hidden
        self.w_ih = nnx.Param(init(rngs.params(), (g, in_features)))
        self.w_hh = nnx.Param(init(rngs.params(), (g, hidden)))
        self.b_ih = nnx.Param(init(rngs.params(), (g,)))
        self.b_hh = nnx.Param(init(rngs.params(), (g,)))

    def project(self, x: jax.Array) -> jax.Array:
        """Input projection of all frames: x [B, T, in] -> [B, T, gates*H] float32 (includes b_ih)."""
        return mixed_einsum("btd,gd->btg", x.astype(self.dtype), self.w_ih[...].astype(self.dtype)) + self.b_ih[...]

    def __call__(self, x: jax.Array, mask: jax.Array, *, reverse: bool = False) -> jax.Array:
        """Run over x [B, T, in] with prefix mask [B, T] -> [B, T, H] float32 (zero at padding).

        With `reverse=True` each sequence is read from its own last valid frame backwards; outputs
        are returned in the original time order.
        """
        check_x_mask(x, mask, type(self).__name__, self.in_features)
        lengths = jnp.sum(mask, axis=1)
        if reverse:
            x = reverse_within_length(x, lengths)
        xi = jnp.moveaxis(self.project(x), 1, 0)[None]
        out = self._scan(xi, self.w_hh[...][None], self.b_hh[...][None], mask.T, self.dtype)[0]
        out = jnp.moveaxis(out, 0, 1)
        return reverse_within_length(out, lengths) if reverse else out


class GRULayer(_RNNLayer):
    """One direction of a PyTorch-compatible GRU layer (weights in PyTorch layout, PyTorch init)."""

    _GATES = 3
    _scan = staticmethod(gru_scan)


class LSTMLayer(_RNNLayer):
    """One direction of a PyTorch-compatible LSTM layer (PyTorch layout and init U(+-1/sqrt(H)))."""

    _GATES = 4
    _scan = staticmethod(lstm_scan)


class _BiRNN(nnx.Module):
    """Bidirectional layer of `_LAYER`: [B, T, in] -> [B, T, 2H] = concat(forward, backward), one fused
    scan for both directions."""

    _LAYER: type[_RNNLayer]

    def __init__(self, in_features: int, hidden: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.in_features = in_features
        self.hidden = hidden
        self.dtype = dtype
        self.forward = self._LAYER(in_features, hidden, dtype=dtype, rngs=rngs)
        self.backward = self._LAYER(in_features, hidden, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """x [B, T, in] float, prefix mask [B, T] bool -> [B, T, 2H] float32, zero at padded frames."""
        check_x_mask(x, mask, type(self).__name__, self.in_features)
        lengths = jnp.sum(mask, axis=1)
        xi_f = self.forward.project(x)
        xi_b = self.backward.project(reverse_within_length(x, lengths))
        xi = jnp.moveaxis(jnp.stack([xi_f, xi_b]), 2, 1)  # [2, T, B, gates*H]
        w_hh = jnp.stack([self.forward.w_hh[...], self.backward.w_hh[...]])
        b_hh = jnp.stack([self.forward.b_hh[...], self.backward.b_hh[...]])
        out = jnp.moveaxis(self._LAYER._scan(xi, w_hh, b_hh, mask.T, self.dtype), 2, 1)  # [2, B, T, H]
        return jnp.concatenate([out[0], reverse_within_length(out[1], lengths)], axis=-1)


class BiGRU(_BiRNN):
    """Bidirectional GRU layer: [B, T, in] -> [B, T, 2H] = concat(forward, backward), one fused scan."""

    _LAYER = GRULayer


class BiLSTM(_BiRNN):
    """Bidirectional LSTM layer: [B, T, in] -> [B, T, 2H] = concat(forward, backward), one fused scan."""

    _LAYER = LSTMLayer
