"""Speech encoders: platalea's conv + bidirectional GRU + vectorial attention (anchor §1.4).

The GRU follows PyTorch `nn.GRU` exactly (gate order r, z, n; separate input and hidden biases;
n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) * n + z * h) and stores its weights in
PyTorch's layout (w_ih [3H, in], w_hh [3H, H], b_ih [3H], b_hh [3H] per direction), so a torch
state dict converts by copying. For speed the input projection of all frames is one matmul before
the `lax.scan`; only h @ w_hh runs inside the loop, and both directions share one scan.

Sequences follow packed-sequence semantics: `mask` [B, T] must be a prefix mask (valid frames
first, then padding; length = mask.sum(1)). Padding never enters the recurrence, the backward
direction starts at each sequence's own last valid frame, and outputs at padded frames are zero.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import capabilities as caps
from vgs_jax.models.pooling import VectorialAttentionPooling, torch_uniform_init


def _check_x_mask(x: jax.Array, mask: jax.Array, where: str, in_features: int) -> None:
    if x.ndim != 3:
        raise ValueError(f"{where}: input must be [batch, time, features], got shape {x.shape}.")
    if x.shape[-1] != in_features:
        raise ValueError(
            f"{where}: input has {x.shape[-1]} features per frame, the module was built for {in_features}.")
    if mask.shape != x.shape[:2]:
        raise ValueError(
            f"{where}: mask shape {mask.shape} must equal the input's [batch, time] = {x.shape[:2]}.")


def reverse_within_length(x: jax.Array, lengths: jax.Array) -> jax.Array:
    """Reverse each sequence's first `lengths[b]` frames, leaving padded frames in place.

    Args:
      x: [B, T, ...] array.
      lengths: [B] int, 0 <= lengths[b] <= T.
    Returns:
      [B, T, ...] array; the map is its own inverse.
    """
    t = jnp.arange(x.shape[1])[None, :]
    idx = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=1)


def gru_scan(xi: jax.Array, w_hh: jax.Array, b_hh: jax.Array, mask: jax.Array,
             dtype=jnp.float32) -> jax.Array:
    """Run the GRU recurrence for D stacked directions given precomputed input projections.

    Args:
      xi: [D, T, B, 3H] float32, W_ih x_t + b_ih for every frame (gate order r, z, n).
      w_hh: [D, 3H, H] float32 recurrent weights (PyTorch layout).
      b_hh: [D, 3H] float32 recurrent biases.
      mask: [T, B] bool, True at valid frames; the state is frozen at invalid frames.
      dtype: dtype of the recurrent matmul inputs (accumulation is float32).
    Returns:
      [D, T, B, H] float32 hidden states, zero at invalid frames. The initial state is zero.
    """
    num_dirs, _, batch, three_h = xi.shape
    hidden = three_h // 3
    w = w_hh.astype(dtype)
    b = b_hh[:, None, :].astype(jnp.float32)

    def step(h, inputs):
        xi_t, m_t = inputs
        hh = jnp.einsum("dbh,dgh->dbg", h.astype(dtype), w, preferred_element_type=jnp.float32) + b
        r = jax.nn.sigmoid(xi_t[..., :hidden] + hh[..., :hidden])
        z = jax.nn.sigmoid(xi_t[..., hidden:2 * hidden] + hh[..., hidden:2 * hidden])
        n = jnp.tanh(xi_t[..., 2 * hidden:] + r * hh[..., 2 * hidden:])
        h_new = (1.0 - z) * n + z * h
        m = m_t[None, :, None]
        return jnp.where(m, h_new, h), jnp.where(m, h_new, 0.0)

    h0 = jnp.zeros((num_dirs, batch, hidden), jnp.float32)
    _, out = jax.lax.scan(step, h0, (jnp.moveaxis(xi, 1, 0), mask))
    return jnp.moveaxis(out, 0, 1)


class GRULayer(nnx.Module):
    """One direction of a PyTorch-compatible GRU layer (weights in PyTorch layout, PyTorch init)."""

    def __init__(self, in_features: int, hidden: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        if in_features <= 0 or hidden <= 0:
            raise ValueError(f"GRULayer: in_features ({in_features}) and hidden ({hidden}) must be positive.")
        self.in_features = in_features
        self.hidden = hidden
        self.dtype = dtype
        init = torch_uniform_init(hidden)  # PyTorch uses 1/sqrt(hidden) for every GRU tensor.
        self.w_ih = nnx.Param(init(rngs.params(), (3 * hidden, in_features)))
        self.w_hh = nnx.Param(init(rngs.params(), (3 * hidden, hidden)))
        self.b_ih = nnx.Param(init(rngs.params(), (3 * hidden,)))
        self.b_hh = nnx.Param(init(rngs.params(), (3 * hidden,)))

    def project(self, x: jax.Array) -> jax.Array:
        """Input projection of all frames: x [B, T, in] -> [B, T, 3H] float32 (includes b_ih)."""
        return jnp.einsum("btd,gd->btg", x.astype(self.dtype), self.w_ih[...].astype(self.dtype),
                          preferred_element_type=jnp.float32) + self.b_ih[...]

    def __call__(self, x: jax.Array, mask: jax.Array, *, reverse: bool = False) -> jax.Array:
        """Run over x [B, T, in] with prefix mask [B, T] -> [B, T, H] float32 (zero at padding).

        With `reverse=True` each sequence is read from its own last valid frame backwards; outputs
        are returned in the original time order.
        """
        _check_x_mask(x, mask, "GRULayer", self.in_features)
        lengths = jnp.sum(mask, axis=1)
        if reverse:
            x = reverse_within_length(x, lengths)
        xi = jnp.moveaxis(self.project(x), 1, 0)[None]
        out = gru_scan(xi, self.w_hh[...][None], self.b_hh[...][None], mask.T, self.dtype)[0]
        out = jnp.moveaxis(out, 0, 1)
        return reverse_within_length(out, lengths) if reverse else out


class BiGRU(nnx.Module):
    """Bidirectional GRU layer: [B, T, in] -> [B, T, 2H] = concat(forward, backward), one fused scan."""

    def __init__(self, in_features: int, hidden: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.in_features = in_features
        self.hidden = hidden
        self.dtype = dtype
        self.forward = GRULayer(in_features, hidden, dtype=dtype, rngs=rngs)
        self.backward = GRULayer(in_features, hidden, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """x [B, T, in] float, prefix mask [B, T] bool -> [B, T, 2H] float32, zero at padded frames."""
        _check_x_mask(x, mask, "BiGRU", self.in_features)
        lengths = jnp.sum(mask, axis=1)
        xi_f = self.forward.project(x)
        xi_b = self.backward.project(reverse_within_length(x, lengths))
        xi = jnp.moveaxis(jnp.stack([xi_f, xi_b]), 2, 1)  # [2, T, B, 3H]
        w_hh = jnp.stack([self.forward.w_hh[...], self.backward.w_hh[...]])
        b_hh = jnp.stack([self.forward.b_hh[...], self.backward.b_hh[...]])
        out = jnp.moveaxis(gru_scan(xi, w_hh, b_hh, mask.T, self.dtype), 2, 1)  # [2, B, T, H]
        return jnp.concatenate([out[0], reverse_within_length(out[1], lengths)], axis=-1)


def conv_output_lengths(lengths: jax.Array, kernel: int, stride: int) -> jax.Array:
    """Valid frames after a VALID strided conv: floor((L - kernel) / stride) + 1, clamped at >= 0."""
    return jnp.maximum((lengths - kernel) // stride + 1, 0)


class Conv1dFrontEnd(nnx.Module):
    """Platalea's Conv1d front end (39 -> 64, kernel 6, stride 2, VALID, no bias, no activation)."""

    def __init__(self, in_features: int, out_features: int = 64, kernel: int = 6, stride: int = 2, *,
                 use_bias: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        if min(in_features, out_features, kernel, stride) <= 0:
            raise ValueError(
                f"Conv1dFrontEnd: in_features={in_features}, out_features={out_features}, kernel={kernel}, "
                f"stride={stride} must all be positive.")
        self.in_features = in_features
        self.out_features = out_features
        self.kernel = kernel
        self.stride = stride
        fan_in = in_features * kernel
        self.conv = nnx.Conv(in_features, out_features, kernel_size=(kernel,), strides=(stride,),
                             padding="VALID", use_bias=use_bias, dtype=dtype,
                             kernel_init=torch_uniform_init(fan_in), bias_init=torch_uniform_init(fan_in),
                             rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [B, T, in] float, prefix mask [B, T] bool -> (y [B, T', out], mask' [B, T'] bool).

        T' = floor((T - kernel) / stride) + 1. A valid output frame only sees valid input frames.
        """
        _check_x_mask(x, mask, "Conv1dFrontEnd", self.in_features)
        if x.shape[1] < self.kernel:
            raise ValueError(
                f"Conv1dFrontEnd: the batch has {x.shape[1]} frames, fewer than the conv kernel "
                f"({self.kernel}); pad the batch to at least {self.kernel} frames.")
        y = self.conv(x)
        lengths = conv_output_lengths(jnp.sum(mask, axis=1), self.kernel, self.stride)
        new_mask = jnp.arange(y.shape[1])[None, :] < lengths[:, None]
        return y, new_mask


def conv_front_end_capabilities(conv: Conv1dFrontEnd, layers, attention: str) -> caps.Capabilities:
    """A pooled encoder whose `frame_outputs` are "conv" then `layers`, all on the conv's frame clock."""
    return caps.Capabilities(output=caps.POOLED, frame_outputs=("conv", *layers),
                             frame_clock=caps.FrameClock(conv.stride, conv.kernel), attention=attention)


class PlataleaSpeechEncoder(nnx.Module):
    """Conv1d -> stacked BiGRU -> vectorial attention pooling (platalea `SpeechEncoder`).

    `__call__` returns the pooled [B, 2*hidden] vector, not L2-normalised (the dual encoder does that).
    `dtype` is the compute dtype of the matmuls (params stay float32; accumulation is float32).
    `mask_padding=True` (default) makes an utterance's embedding independent of its batch's padding;
    `mask_padding=False` reproduces platalea's unmasked pooling, which matches the reference only when
    the batch is padded to its longest utterance, as platalea pads (the conv output length follows
    the padded length).
    """

    def __init__(self, in_features: int, *, conv_channels: int = 64, conv_kernel: int = 6,
                 conv_stride: int = 2, conv_bias: bool = False, hidden: int = 1024, num_layers: int = 4,
                 attention_hidden: int = 128, mask_padding: bool = True, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        if num_layers < 1:
            raise ValueError(f"PlataleaSpeechEncoder: num_layers must be >= 1, got {num_layers}.")
        if hidden <= 0:
            raise ValueError(f"PlataleaSpeechEncoder: hidden must be positive, got {hidden}.")
        self.in_features = in_features
        self.out_features = 2 * hidden
        self.conv = Conv1dFrontEnd(in_features, conv_channels, conv_kernel, conv_stride,
                                   use_bias=conv_bias, dtype=dtype, rngs=rngs)
        self.grus = nnx.List([
            BiGRU(conv_channels if i == 0 else 2 * hidden, hidden, dtype=dtype, rngs=rngs)
            for i in range(num_layers)])
        self.pool = VectorialAttentionPooling(2 * hidden, attention_hidden, mask_padding=mask_padding,
                                              dtype=dtype, rngs=rngs)

    from_config = classmethod(caps.speech_from_config)

    @property
    def capabilities(self) -> caps.Capabilities:
        """Pooled, vectorial attention; frame outputs "conv", "gru_0".. on the conv's clock."""
        return conv_front_end_capabilities(self.conv, [f"gru_{i}" for i in range(len(self.grus))], "vectorial")

    def frame_outputs(self, features: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        """Per-layer activations for analysis.

        Args:
          features: [B, T, in_features] float32; mask: [B, T] bool prefix mask.
        Returns:
          dict with "conv" [B, T', conv_channels], "gru_0" ... "gru_{L-1}" [B, T', 2*hidden] (zero at
          padding), "pooled" [B, 2*hidden] and "mask" [B, T'] bool (the frame mask after the conv).
        """
        h, m = self.conv(features, mask)
        out = {"conv": h}
        for i, gru in enumerate(self.grus):
            h = gru(h, m)
            out[f"gru_{i}"] = h
        out["pooled"] = self.pool(h, m)
        out["mask"] = m
        return out

    def __call__(self, features: jax.Array, mask: jax.Array) -> jax.Array:
        """features [B, T, in_features] float32, prefix mask [B, T] bool -> [B, 2*hidden] float32."""
        h, m = self.conv(features, mask)
        for gru in self.grus:
            h = gru(h, m)
        return self.pool(h, m)

