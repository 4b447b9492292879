"""Transformer speech encoder after platalea's `SpeechEncoderTransformer` (anchor §1.4).

conv front end -> Linear(conv_channels -> d_model) (identity when equal, as in platalea) -> optional
positions -> `num_layers` encoder layers with PyTorch `nn.TransformerEncoderLayer` defaults (post-norm,
ReLU feed-forward, dropout after attention weights, after each sub-layer and inside the feed-forward,
LayerNorm eps 1e-5) and a key padding mask -> vectorial attention pooling.

Platalea adds **no positional encoding** (the conv output goes straight through the linear into
`nn.TransformerEncoder`); `positions="none"` (default) reproduces that, "sinusoidal" (Vaswani et al.)
and "learned" (table of `max_len` vectors, N(0, 0.02)) are options. Defaults follow platalea's
`experiments/flickr8k/transformer.py`: conv 39->64 k6 s2 no bias, Linear 64->512 with bias, d_model 512,
8 heads, 4 layers, feed-forward 1024, dropout 0, attention hidden 128.

Self-attention params use PyTorch's `nn.MultiheadAttention` layout and init (in_proj_weight [3d, d]
Xavier-uniform, zero in_proj/out_proj biases, out_proj_weight [d, d]); the feed-forward Linears are
`nnx.Linear` (kernel [in, out], i.e. PyTorch's weight transposed) with PyTorch default init.
"""
import math

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import capabilities as caps
from vgs_jax.models import remat as remat_lib
from vgs_jax.models.conv_rnn_encoders import Conv1dFrontEnd, conv_front_end_capabilities
from vgs_jax.models.pooling import VectorialAttentionPooling, torch_uniform_init
from vgs_jax.models.precision import mixed_einsum
from vgs_jax.models.recurrent_layers import check_x_mask


def sinusoidal_positions(length: int, d_model: int) -> jax.Array:
    """[length, d_model] float32: even dims sin(p / 10000^(2i/d)), odd dims cos of the same angle."""
    if length < 0 or d_model <= 0:
        raise ValueError(f"sinusoidal_positions: length ({length}) must be >= 0 and d_model ({d_model}) > 0.")
    pos = jnp.arange(length, dtype=jnp.float32)[:, None]
    freq = jnp.exp(jnp.arange(0, d_model, 2, dtype=jnp.float32) * (-math.log(10000.0) / d_model))
    ang = pos * freq
    pe = jnp.zeros((length, d_model), jnp.float32)
    pe = pe.at[:, 0::2].set(jnp.sin(ang))
    return pe.at[:, 1::2].set(jnp.cos(ang[:, :d_model // 2]))


class MultiHeadSelfAttention(nnx.Module):
    """Self-attention with a key padding mask, PyTorch `nn.MultiheadAttention` layout."""

    def __init__(self, d_model: int, num_heads: int, *, dropout: float = 0.0, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        if d_model <= 0 or num_heads <= 0 or d_model % num_heads:
            raise ValueError(f"MultiHeadSelfAttention: d_model ({d_model}) must be a positive multiple of "
                             f"num_heads ({num_heads}).")
        self.d_model, self.num_heads, self.dtype = d_model, num_heads, dtype
        self.in_proj_weight = nnx.Param(
            nnx.initializers.xavier_uniform()(rngs.params(), (3 * d_model, d_model)))
        self.in_proj_bias = nnx.Param(jnp.zeros((3 * d_model,), jnp.float32))
        self.out_proj_weight = nnx.Param(torch_uniform_init(d_model)(rngs.params(), (d_model, d_model)))
        self.out_proj_bias = nnx.Param(jnp.zeros((d_model,), jnp.float32))
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """x [B, T, d] float, mask [B, T] bool (False = padded key) -> [B, T, d] float32."""
        b, t, d = x.shape
        nh, hd, dt = self.num_heads, d // self.num_heads, self.dtype
        qkv = mixed_einsum("btd,gd->btg", x.astype(dt), self.in_proj_weight[...].astype(dt)) + self.in_proj_bias[...]
        q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(b, t, nh, hd) for i in range(3))
        logits = mixed_einsum("bqhc,bkhc->bhqk", (q / math.sqrt(hd)).astype(dt), k.astype(dt))
        # A fully padded row would give NaN in PyTorch; finfo.min keeps it finite (uniform weights).
        logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
        w = self.dropout(jax.nn.softmax(logits, axis=-1))
        ctx = mixed_einsum("bhqk,bkhc->bqhc", w.astype(dt), v.astype(dt)).reshape(b, t, d)
        return mixed_einsum("btd,gd->btg", ctx.astype(dt), self.out_proj_weight[...].astype(dt)) + self.out_proj_bias[...]


class TransformerEncoderLayer(nnx.Module):
    """Post-norm layer: x = LN1(x + drop(SA(x))); x = LN2(x + drop(W2 drop(relu(W1 x + b1)) + b2))."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, *, dropout: float = 0.0,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        if ff_dim <= 0:
            raise ValueError(f"TransformerEncoderLayer: ff_dim must be positive, got {ff_dim}.")
        self.self_attn = MultiHeadSelfAttention(d_model, num_heads, dropout=dropout, dtype=dtype, rngs=rngs)
        self.linear1 = nnx.Linear(d_model, ff_dim, kernel_init=torch_uniform_init(d_model),
                                  bias_init=torch_uniform_init(d_model), dtype=dtype, rngs=rngs)
        self.linear2 = nnx.Linear(ff_dim, d_model, kernel_init=torch_uniform_init(ff_dim),
                                  bias_init=torch_uniform_init(ff_dim), dtype=dtype, rngs=rngs)
        self.norm1 = nnx.LayerNorm(d_model, epsilon=1e-5, rngs=rngs)
        self.norm2 = nnx.LayerNorm(d_model, epsilon=1e-5, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.dropout1 = nnx.Dropout(dropout, rngs=rngs)
        self.dropout2 = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """x [B, T, d] float, key mask [B, T] bool -> [B, T, d] float32."""
        x = x.astype(jnp.float32)
        x = self.norm1(x + self.dropout1(self.self_attn(x, mask)))
        ff = self.linear2(self.dropout(jax.nn.relu(self.linear1(x)))).astype(jnp.float32)
        return self.norm2(x + self.dropout2(ff)).astype(jnp.float32)


class TransformerSpeechEncoder(nnx.Module):
    """Conv1d -> Linear to d_model -> positions -> post-LN Transformer layers -> vectorial attention.

    `__call__` returns [B, d_model] (not L2-normalised). Dropout is active only in `model.train()`
    mode; call `model.eval()` for deterministic evaluation.
    """

    def __init__(self, in_features: int, *, conv_channels: int = 64, conv_kernel: int = 6,
                 conv_stride: int = 2, conv_bias: bool = False, d_model: int = 512, num_heads: int = 8,
                 num_layers: int = 4, ff_dim: int = 1024, dropout: float = 0.0,
                 attention_hidden: int = 128, positions: str = "none", max_len: int = 2048,
                 mask_padding: bool = True, remat: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        if positions not in ("none", "sinusoidal", "learned"):
            raise ValueError(f"TransformerSpeechEncoder: positions={positions!r}; use 'none' (platalea), "
                             "'sinusoidal' or 'learned'.")
        if num_layers < 1 or max_len < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"TransformerSpeechEncoder: num_layers ({num_layers}) and max_len ({max_len}) "
                             f"must be >= 1 and dropout ({dropout}) in [0, 1).")
        self.in_features = in_features
        self.out_features = d_model
        self.positions = positions
        self.max_len = max_len
        self.remat = remat
        self.conv = Conv1dFrontEnd(in_features, conv_channels, conv_kernel, conv_stride, use_bias=conv_bias,
                                   dtype=dtype, rngs=rngs)
        self.proj = None if d_model == conv_channels else nnx.Linear(
            conv_channels, d_model, kernel_init=torch_uniform_init(conv_channels),
            bias_init=torch_uniform_init(conv_channels), dtype=dtype, rngs=rngs)
        self.pos_table = (nnx.Param(0.02 * jax.random.normal(rngs.params(), (max_len, d_model)))
                          if positions == "learned" else None)
        self.layers = nnx.List([
            TransformerEncoderLayer(d_model, num_heads, ff_dim, dropout=dropout, dtype=dtype, rngs=rngs)
            for _ in range(num_layers)])
        self.pool = VectorialAttentionPooling(d_model, attention_hidden, mask_padding=mask_padding,
                                              dtype=dtype, rngs=rngs)

    from_config = classmethod(caps.speech_from_config)

    @property
    def capabilities(self) -> caps.Capabilities:
        """Pooled, vectorial attention; frame outputs "conv", "input", "layer_0".. on the conv's clock."""
        return conv_front_end_capabilities(
            self.conv, ["input", *(f"layer_{i}" for i in range(len(self.layers)))], "vectorial")

    def _embed(self, features: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        check_x_mask(features, mask, "TransformerSpeechEncoder", self.in_features)
        c, m = self.conv(features, mask)
        h = c if self.proj is None else self.proj(c)
        t = h.shape[1]
        if self.positions != "none" and t > self.max_len:
            raise ValueError(f"TransformerSpeechEncoder: {t} frames after the conv exceed max_len "
                             f"{self.max_len}; truncate the features or raise max_len.")
        if self.positions == "sinusoidal":
            h = h + sinusoidal_positions(t, h.shape[-1])
        elif self.positions == "learned":
            h = h + self.pos_table[...][:t]
        return c, h.astype(jnp.float32), m

    def frame_outputs(self, features: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        """features [B, T, in] float32, mask [B, T] bool -> dict with "conv" [B, T', C], "input"
        [B, T', d_model] (after projection and positions), "layer_0".."layer_{L-1}" [B, T', d_model]
        (padded frames carry values but are masked everywhere), "pooled" [B, d_model], "mask" [B, T']."""
        c, h, m = self._embed(features, mask)
        out = {"conv": c, "input": h}
        for i, layer in enumerate(self.layers):
            h = remat_lib.call(layer, h, m, enabled=self.remat)
            out[f"layer_{i}"] = h
        out["pooled"] = self.pool(h, m)
        out["mask"] = m
        return out

    def __call__(self, features: jax.Array, mask: jax.Array) -> jax.Array:
        """features [B, T, in] float32, prefix mask [B, T] bool -> [B, d_model] float32."""
        return self.frame_outputs(features, mask)["pooled"]
