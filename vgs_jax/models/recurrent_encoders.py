"""Recurrent highway network speech encoder of Chrupała et al. (2017).

RHN encoder (gchrupala/visually-grounded-speech, PyTorch port `gchrupala/vgs` `onion/rhn.py`,
`vg/defn/audiovis_rhn.py`, `experiments/flickr8k-speech-rhn/run.py`): Conv1d 64 channels, kernel 6,
stride 2, no bias -> 4 stacked recurrent highway layers of 1024 units with 2 micro-steps each, layers
above the first residual (out = in + layer(in)), zero initial state -> scalar attention (Linear 1024->128,
tanh, Linear 128->1, softmax over time) -> L2. Recurrence of one layer (Zilly et al. 2017, coupled gate):
  micro-step 0:  h = tanh(x W_H + b_H + s U_H0),         t = sigmoid(x W_T + b_T + s U_T0)
  micro-step l:  h = tanh(s U_Hl + c_Hl),                t = sigmoid(s U_Tl + c_Tl)
  s <- h * t + s * (1 - t); the layer's output at a frame is s after the last micro-step.
Init as in the reference: weights U(-0.04, 0.04), H biases U(-0.04, 0.04), T biases -2.
Differences from the reference, by choice: the conv is VALID (reference pads `kernel` frames on both
sides) with PyTorch default init (reference: Glorot uniform); no variational dropout (reference
drop_i 0.25 / drop_s 0.1); padding is masked (packed-sequence semantics).

All masks are prefix masks [B, T] (valid frames first); outputs at padded frames are zero.
The speech2image encoder lives in `conv_rnn_encoders`.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import capabilities as caps
from vgs_jax.models import remat as remat_lib
from vgs_jax.models.conv_rnn_encoders import Conv1dFrontEnd, conv_front_end_capabilities
from vgs_jax.models.pooling import check_h_mask, torch_uniform_init
from vgs_jax.models.precision import mixed_einsum
from vgs_jax.models.recurrent_layers import check_x_mask, uniform_init

RHN_INIT_SCALE = 0.04
RHN_T_BIAS = -2.0


class RHNLayer(nnx.Module):
    """One recurrent highway layer with `depth` micro-steps per frame (input enters micro-step 0 only).

    Params (x @ W layout): w_h, w_t [in, H]; b_h, b_t [H]; u_h, u_t [depth, H, H];
    c_h, c_t [depth-1, H] (micro-step 0 has no recurrent bias; b_h/b_t play that role).
    """

    def __init__(self, in_features: int, hidden: int, depth: int = 2, *, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        if in_features <= 0 or hidden <= 0 or depth < 1:
            raise ValueError(f"RHNLayer: in_features ({in_features}) and hidden ({hidden}) must be positive "
                             f"and depth ({depth}) >= 1.")
        self.in_features, self.hidden, self.depth, self.dtype = in_features, hidden, depth, dtype
        u = uniform_init(RHN_INIT_SCALE)
        self.w_h = nnx.Param(u(rngs.params(), (in_features, hidden)))
        self.w_t = nnx.Param(u(rngs.params(), (in_features, hidden)))
        self.b_h = nnx.Param(u(rngs.params(), (hidden,)))
        self.b_t = nnx.Param(jnp.full((hidden,), RHN_T_BIAS, jnp.float32))
        self.u_h = nnx.Param(u(rngs.params(), (depth, hidden, hidden)))
        self.u_t = nnx.Param(u(rngs.params(), (depth, hidden, hidden)))
        self.c_h = nnx.Param(u(rngs.params(), (depth - 1, hidden)))
        self.c_t = nnx.Param(jnp.full((depth - 1, hidden), RHN_T_BIAS, jnp.float32))

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """x [B, T, in] float, prefix mask [B, T] bool -> [B, T, H] float32 (zero at padding).

        The state starts at zero and is frozen at padded frames.
        """
        check_x_mask(x, mask, "RHNLayer", self.in_features)
        dt = self.dtype
        w = jnp.concatenate([self.w_h[...], self.w_t[...]], axis=1).astype(dt)
        xi = mixed_einsum("btd,dg->tbg", x.astype(dt), w)
        xi = xi + jnp.concatenate([self.b_h[...], self.b_t[...]])
        u = jnp.concatenate([self.u_h[...], self.u_t[...]], axis=2).astype(dt)  # [depth, H, 2H]
        c = jnp.concatenate([self.c_h[...], self.c_t[...]], axis=1)  # [depth-1, 2H]
        hid = self.hidden

        def step(s, inputs):
            xi_t, m_t = inputs
            s_new = s
            for l in range(self.depth):
                pre = mixed_einsum("bh,hg->bg", s_new.astype(dt), u[l])
                pre = pre + (xi_t if l == 0 else c[l - 1])
                h = jnp.tanh(pre[:, :hid])
                t = jax.nn.sigmoid(pre[:, hid:])
                s_new = h * t + s_new * (1.0 - t)
            m = m_t[:, None]
            return jnp.where(m, s_new, s), jnp.where(m, s_new, 0.0)

        s0 = jnp.zeros((x.shape[0], hid), jnp.float32)
        _, out = jax.lax.scan(step, s0, (xi, mask.T))
        return jnp.moveaxis(out, 0, 1)


class ScalarAttentionPooling(nnx.Module):
    """Scalar attention: alpha_t = softmax_t(w2 . tanh(W1 h_t + b1) + b2), output = sum_t alpha_t h_t.

    `mask_padding=True` gives padded frames zero weight; False lets them take mass as zero vectors
    (the reference's behaviour on a padded batch). PyTorch default init.
    """

    def __init__(self, in_features: int, hidden: int = 128, *, mask_padding: bool = True,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        if in_features <= 0 or hidden <= 0:
            raise ValueError(
                f"ScalarAttentionPooling: in_features ({in_features}) and hidden ({hidden}) must be positive.")
        self.in_features = in_features
        self.mask_padding = mask_padding
        self.hidden_layer = nnx.Linear(in_features, hidden, kernel_init=torch_uniform_init(in_features),
                                       bias_init=torch_uniform_init(in_features), dtype=dtype, rngs=rngs)
        self.out_layer = nnx.Linear(hidden, 1, kernel_init=torch_uniform_init(hidden),
                                    bias_init=torch_uniform_init(hidden), dtype=dtype, rngs=rngs)

    def weights(self, h: jax.Array, mask: jax.Array) -> jax.Array:
        """Attention weights [B, T] float32 summing to 1 over time (all zero for an all-padding row)."""
        check_h_mask(h, mask, "ScalarAttentionPooling")
        if h.shape[-1] != self.in_features:
            raise ValueError(f"ScalarAttentionPooling: h has {h.shape[-1]} features, the module was built "
                             f"for {self.in_features}.")
        h = jnp.where(mask[..., None], h, 0)
        logits = self.out_layer(jnp.tanh(self.hidden_layer(h)))[..., 0].astype(jnp.float32)
        if not self.mask_padding:
            return jax.nn.softmax(logits, axis=1)
        alpha = jax.nn.softmax(jnp.where(mask, logits, jnp.finfo(jnp.float32).min), axis=1)
        return alpha * mask

    def __call__(self, h: jax.Array, mask: jax.Array) -> jax.Array:
        """Pool h [B, T, D] with mask [B, T] bool -> [B, D] float32."""
        alpha = self.weights(h, mask)
        h = jnp.where(mask[..., None], h, 0).astype(jnp.float32)
        return jnp.einsum("bt,btd->bd", alpha, h)


class RHNSpeechEncoder(nnx.Module):
    """Conv1d -> stacked RHN layers -> scalar attention pooling -> [B, hidden] (not normalised)."""

    def __init__(self, in_features: int, *, conv_channels: int = 64, conv_kernel: int = 6,
                 conv_stride: int = 2, hidden: int = 1024, num_layers: int = 4, depth: int = 2,
                 attention_hidden: int = 128, residual: bool = True, mask_padding: bool = True,
                 remat: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        if num_layers < 1:
            raise ValueError(f"RHNSpeechEncoder: num_layers must be >= 1, got {num_layers}.")
        self.in_features = in_features
        self.out_features = hidden
        self.residual = residual
        self.remat = remat
        self.conv = Conv1dFrontEnd(in_features, conv_channels, conv_kernel, conv_stride, use_bias=False,
                                   dtype=dtype, rngs=rngs)
        self.layers = nnx.List([
            RHNLayer(conv_channels if i == 0 else hidden, hidden, depth, dtype=dtype, rngs=rngs)
            for i in range(num_layers)])
        self.pool = ScalarAttentionPooling(hidden, attention_hidden, mask_padding=mask_padding,
                                           dtype=dtype, rngs=rngs)

    from_config = classmethod(caps.speech_from_config)

    @property
    def capabilities(self) -> caps.Capabilities:
        """Pooled, scalar attention; frame outputs "conv", "rhn_0".. on the conv's clock."""
        return conv_front_end_capabilities(self.conv, [f"rhn_{i}" for i in range(len(self.layers))], "scalar")

    def frame_outputs(self, features: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        """features [B, T, in] float32, mask [B, T] bool -> dict with "conv" [B, T', C],
        "rhn_0".."rhn_{L-1}" [B, T', hidden] (zero at padding), "pooled" [B, hidden], "mask" [B, T']."""
        h, m = self.conv(features, mask)
        out = {"conv": h}
        for i, layer in enumerate(self.layers):
            y = remat_lib.call(layer, h, m, enabled=self.remat)
            h = h + y if (self.residual and i > 0) else y
            out[f"rhn_{i}"] = h
        out["pooled"] = self.pool(h, m)
        out["mask"] = m
        return out

    def __call__(self, features: jax.Array, mask: jax.Array) -> jax.Array:
        """features [B, T, in] float32, prefix mask [B, T] bool -> [B, hidden] float32."""
        return self.frame_outputs(features, mask)["pooled"]
