"""wav2vec 2.0 / HuBERT in Flax NNX: the self-supervised speech model, as Hugging Face's `Wav2Vec2Model`
and `HubertModel` compute it (the two share the architecture; only their pre-training differs).

raw waveform [B, N] -> conv feature extractor (7 convs, 512 channels, kernels 10,3,3,3,3,2,2, strides
5,2,2,2,2,2,2: one frame per 320 samples = 20 ms, receptive field 400 samples; GELU after each; "group"
norm = a GroupNorm with one group per channel after the first conv only (base), "layer" = a LayerNorm
over channels after every conv (large)) -> feature projection (LayerNorm, Linear to `hidden`) -> encoder:
convolutional relative positional embedding (grouped Conv1d, kernel 128, 16 groups, weight norm over the
kernel axis, same padding with the last frame dropped, GELU) added to the frames, then `num_layers`
Transformer layers, post-LN with a LayerNorm before the first layer (base: `layer_norm_first=False`) or
pre-LN with a LayerNorm after the last (large: `layer_norm_first=True`). Feed-forward: Linear, GELU,
Linear. GELU is the exact (erf) one, LayerNorm/GroupNorm eps 1e-5.

`hidden_states` returns the L + 1 entries of HF's `output_hidden_states` (transformers 5: the input of the
first layer, then every layer's output, all before the pre-LN model's final LayerNorm; transformers 4 gave
the last entry after it) and `last_hidden_state` (pre-LN: after the final LayerNorm; post-LN: the last entry).

Padding: masks are prefix masks. Unlike HF (which ignores the attention mask in the feature extractor),
the base model's GroupNorm statistics are taken over valid frames only, so an utterance's output does not
depend on its batch's padding; without padding both agree. Padded frames are zeroed before the positional
conv and masked as attention keys, as HF does with an attention mask. Not implemented: SpecAugment-style
time masking during fine-tuning and LayerDrop (HF and fairseq defaults 0.05 / 0.1 in fine-tuning recipes).
"""
import math

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import remat as remat_lib
from vgs_jax.models.pooling import torch_uniform_init
from vgs_jax.models.precision import mixed_einsum

CONV_LAYERS = ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
"""(channels, kernel, stride) of the published feature extractor."""

PRESETS = {
    "base": dict(conv_layers=CONV_LAYERS, conv_bias=False, feat_norm="group", hidden=768, num_layers=12,
                 num_heads=12, ff_dim=3072, layer_norm_first=False),
    "large": dict(conv_layers=CONV_LAYERS, conv_bias=True, feat_norm="layer", hidden=1024, num_layers=24,
                  num_heads=16, ff_dim=4096, layer_norm_first=True),
}
"""The published shapes: wav2vec 2.0 / HuBERT Base (~94-95 M parameters) and Large (LV-60k / LL-60k: ~315 M)."""

EPS = 1e-5


def gelu(x):
    return jax.nn.gelu(x, approximate=False)


def conv_output_length(length, conv_layers):
    """Frames after the VALID conv stack for `length` samples (int or int array): floor((L - k) / s) + 1
    per layer, clipped at 0."""
    for _, k, s in conv_layers:
        length = jnp.maximum((length - k) // s + 1, 0)
    return length


def receptive_field(conv_layers) -> tuple[int, int]:
    """(stride, kernel) of the conv stack in samples: (320, 400) for the published one."""
    stride, kernel = 1, 1
    for _, k, s in conv_layers:
        kernel += (k - 1) * stride
        stride *= s
    return stride, kernel


def _masked_group_norm(x, mask, scale, bias):
    """GroupNorm with one group per channel: x [B, T, C] normalised over the valid frames of each channel."""
    m = mask[..., None].astype(jnp.float32)
    count = jnp.maximum(jnp.sum(m, axis=1, keepdims=True), 1.0)
    mean = jnp.sum(x * m, axis=1, keepdims=True) / count
    var = jnp.sum(jnp.square(x - mean) * m, axis=1, keepdims=True) / count
    return (x - mean) * jax.lax.rsqrt(var + EPS) * scale + bias


class ConvFeatureExtractor(nnx.Module):
    """waveform [B, N] -> frames [B, T, C]; `feat_norm` "group" (GroupNorm after conv 0) or "layer"."""

    def __init__(self, conv_layers=CONV_LAYERS, *, conv_bias: bool = False, feat_norm: str = "group",
                 dtype=jnp.float32, rngs: nnx.Rngs):
        if feat_norm not in ("group", "layer"):
            raise ValueError(f"ConvFeatureExtractor: feat_norm={feat_norm!r}; use 'group' (base) or 'layer' (large).")
        if not conv_layers or any(min(layer) <= 0 or len(layer) != 3 for layer in conv_layers):
            raise ValueError(f"ConvFeatureExtractor: conv_layers must be (channels, kernel, stride) triples of "
                             f"positive ints, got {conv_layers}.")
        self.conv_layers = tuple(tuple(int(v) for v in layer) for layer in conv_layers)
        self.feat_norm = feat_norm
        convs, norms, cin = [], [], 1
        for i, (cout, k, s) in enumerate(self.conv_layers):
            convs.append(nnx.Conv(cin, cout, kernel_size=(k,), strides=(s,), padding="VALID", use_bias=conv_bias,
                                  kernel_init=nnx.initializers.he_normal(), bias_init=torch_uniform_init(cin * k),
                                  dtype=dtype, rngs=rngs))
            if feat_norm == "layer" or i == 0:
                norms.append(nnx.LayerNorm(cout, epsilon=EPS, rngs=rngs))  # GroupNorm's scale/bias for "group"
            cin = cout
        self.convs = nnx.List(convs)
        self.norms = nnx.List(norms)
        self.out_features = cin

    def __call__(self, wave: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """wave [B, N] float, prefix mask [B, N] bool -> (frames [B, T, C] float32, mask [B, T] bool)."""
        x = jnp.where(mask, wave, 0.0)[..., None].astype(jnp.float32)
        lengths = jnp.sum(mask, axis=1)
        for i, conv in enumerate(self.convs):
            x = conv(x).astype(jnp.float32)
            lengths = conv_output_length(lengths, self.conv_layers[i:i + 1])
            m = jnp.arange(x.shape[1])[None, :] < lengths[:, None]
            if self.feat_norm == "layer":
                x = self.norms[i](x)
            elif i == 0:
                x = _masked_group_norm(x, m, self.norms[0].scale[...], self.norms[0].bias[...])
            x = gelu(x)
        return x, m


class PositionalConv(nnx.Module):
    """Grouped Conv1d(hidden, hidden, kernel, groups) with weight norm over the kernel axis (torch dim=2):
    weight = g[k] * v[k] / ||v[k]||; same padding, last frame dropped for even kernels; then GELU."""

    def __init__(self, hidden: int, kernel: int = 128, groups: int = 16, *, dtype=jnp.float32, rngs: nnx.Rngs):
        if hidden % groups:
            raise ValueError(f"PositionalConv: hidden ({hidden}) must be a multiple of groups ({groups}).")
        self.kernel, self.groups, self.dtype = kernel, groups, dtype
        std = math.sqrt(4.0 / (kernel * hidden))  # fairseq's init of v
        v = std * jax.random.normal(rngs.params(), (kernel, hidden // groups, hidden))
        self.weight_v = nnx.Param(v)  # [k, in / groups, out] (torch weight_v [out, in / groups, k])
        self.weight_g = nnx.Param(jnp.sqrt(jnp.sum(jnp.square(v), axis=(1, 2))))  # [k] (torch [1, 1, k])
        self.bias = nnx.Param(jnp.zeros((hidden,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        """x [B, T, hidden] (padded frames zeroed) -> [B, T, hidden] float32."""
        v = self.weight_v[...]
        w = v * (self.weight_g[...] / jnp.sqrt(jnp.sum(jnp.square(v), axis=(1, 2))))[:, None, None]
        pad = self.kernel // 2
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype), w.astype(self.dtype), window_strides=(1,), padding=[(pad, pad)],
            dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=self.groups,
            preferred_element_type=jnp.float32)
        if self.kernel % 2 == 0:
            y = y[:, :-1]
        return gelu(y + self.bias[...])


def _dropout(rate: float, rngs: nnx.Rngs) -> nnx.Dropout:
    """Dropout holding an RNG stream only when rate > 0, so a dropout-free model is all parameters (and can be
    built abstractly, `nnx.eval_shape`, then filled from a checkpoint)."""
    return nnx.Dropout(rate, rngs=rngs if rate > 0 else None)


def _linear(din: int, dout: int, dtype, rngs):
    return nnx.Linear(din, dout, kernel_init=torch_uniform_init(din), bias_init=torch_uniform_init(din),
                      dtype=dtype, rngs=rngs)


class SelfAttention(nnx.Module):
    """Multi-head self-attention with separate q/k/v/out projections (HF / fairseq layout), q scaled by
    head_dim^-1/2, padded keys masked."""

    def __init__(self, hidden: int, num_heads: int, *, dropout: float = 0.0, dtype=jnp.float32, rngs: nnx.Rngs):
        if hidden % num_heads:
            raise ValueError(f"SelfAttention: hidden ({hidden}) must be a multiple of num_heads ({num_heads}).")
        self.num_heads, self.dtype = num_heads, dtype
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (_linear(hidden, hidden, dtype, rngs) for _ in range(4))
        self.dropout = _dropout(dropout, rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        """x [B, T, d], key mask [B, T] bool -> [B, T, d] float32."""
        b, t, d = x.shape
        nh, dt = self.num_heads, self.dtype
        q, k, v = (p(x).astype(jnp.float32).reshape(b, t, nh, d // nh) for p in (self.q_proj, self.k_proj, self.v_proj))
        logits = mixed_einsum("bqhc,bkhc->bhqk", (q * (d // nh) ** -0.5).astype(dt), k.astype(dt))
        logits = jnp.where(mask[:, None, None, :], logits, jnp.finfo(jnp.float32).min)
        w = self.dropout(jax.nn.softmax(logits, axis=-1))
        ctx = mixed_einsum("bhqk,bkhc->bqhc", w.astype(dt), v.astype(dt)).reshape(b, t, d)
        return self.out_proj(ctx).astype(jnp.float32)


class EncoderLayer(nnx.Module):
    """post-LN: h = LN(h + drop(SA(h))); h = LN_f(h + FF(h)).  pre-LN: h = h + drop(SA(LN(h))); h = h + FF(LN_f(h)).
    FF(h) = drop(W2 gelu(W1 h))."""

    def __init__(self, hidden: int, num_heads: int, ff_dim: int, *, layer_norm_first: bool, dropout: float = 0.0,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        self.layer_norm_first = layer_norm_first
        self.attention = SelfAttention(hidden, num_heads, dropout=dropout, dtype=dtype, rngs=rngs)
        self.layer_norm = nnx.LayerNorm(hidden, epsilon=EPS, rngs=rngs)
        self.intermediate_dense = _linear(hidden, ff_dim, dtype, rngs)
        self.output_dense = _linear(ff_dim, hidden, dtype, rngs)
        self.final_layer_norm = nnx.LayerNorm(hidden, epsilon=EPS, rngs=rngs)
        self.dropout = _dropout(dropout, rngs)

    def _ff(self, h):
        return self.dropout(self.output_dense(gelu(self.intermediate_dense(h))).astype(jnp.float32))

    def __call__(self, h: jax.Array, mask: jax.Array) -> jax.Array:
        """h [B, T, hidden] float32, key mask [B, T] -> [B, T, hidden] float32."""
        if self.layer_norm_first:
            h = h + self.dropout(self.attention(self.layer_norm(h), mask))
            return h + self._ff(self.final_layer_norm(h))
        h = self.layer_norm(h + self.dropout(self.attention(h, mask)))
        return self.final_layer_norm(h + self._ff(h))


class Wav2Vec2Model(nnx.Module):
    """The SSL model (HF `Wav2Vec2Model` / `HubertModel`); fields as in `PRESETS`, plus the positional conv's
    `pos_kernel` / `pos_groups`, `dropout` (after the feature projection, the positional sum, attention
    weights, attention and feed-forward outputs; active in `model.train()` mode only) and `remat`."""

    def __init__(self, *, conv_layers=CONV_LAYERS, conv_bias: bool = False, feat_norm: str = "group",
                 hidden: int = 768, num_layers: int = 12, num_heads: int = 12, ff_dim: int = 3072,
                 layer_norm_first: bool = False, pos_kernel: int = 128, pos_groups: int = 16, dropout: float = 0.0,
                 remat: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        if num_layers < 1 or ff_dim < 1 or not 0.0 <= dropout < 1.0:
            raise ValueError(f"Wav2Vec2Model: num_layers ({num_layers}) and ff_dim ({ff_dim}) must be >= 1 and "
                             f"dropout ({dropout}) in [0, 1).")
        self.hidden, self.layer_norm_first, self.remat = hidden, layer_norm_first, remat
        self.feature_extractor = ConvFeatureExtractor(conv_layers, conv_bias=conv_bias, feat_norm=feat_norm,
                                                      dtype=dtype, rngs=rngs)
        c = self.feature_extractor.out_features
        self.feature_layer_norm = nnx.LayerNorm(c, epsilon=EPS, rngs=rngs)
        self.feature_projection = _linear(c, hidden, dtype, rngs)
        self.pos_conv = PositionalConv(hidden, pos_kernel, pos_groups, dtype=dtype, rngs=rngs)
        self.encoder_layer_norm = nnx.LayerNorm(hidden, epsilon=EPS, rngs=rngs)
        self.layers = nnx.List([
            EncoderLayer(hidden, num_heads, ff_dim, layer_norm_first=layer_norm_first, dropout=dropout, dtype=dtype,
                         rngs=rngs) for _ in range(num_layers)])
        self.dropout = _dropout(dropout, rngs)

    @property
    def conv_layers(self):
        return self.feature_extractor.conv_layers

    def features(self, wave: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """wave [B, N], mask [B, N] -> (conv frames [B, T, 512] float32, frame mask [B, T] bool)."""
        return self.feature_extractor(wave, mask)

    def hidden_states(self, conv: jax.Array, mask: jax.Array, *, stop_after=None, time_mask=None,
                      mask_embedding=None) -> tuple[list[jax.Array], jax.Array]:
        """conv frames [B, T, C] (from `features`), mask [B, T] -> (HF's hidden_states: L + 1 arrays [B, T, hidden]
        float32, last_hidden_state [B, T, hidden]); padded frames hold values but are masked. `stop_after`: hook
        `(i, h) -> h` applied to the input (i = 0) and each layer's output (i = l + 1), e.g. a stop_gradient.
        `time_mask` [B, T] bool: those projected frames are replaced by `mask_embedding` [hidden] (HF's
        masked_spec_embed, fairseq's mask_emb: masked prediction / contrastive pre-training)."""
        hook = stop_after or (lambda i, h: h)
        h = self.dropout(self.feature_projection(self.feature_layer_norm(conv)).astype(jnp.float32))
        if time_mask is not None:
            h = jnp.where(time_mask[..., None], mask_embedding.astype(jnp.float32), h)
        h = jnp.where(mask[..., None], h, 0.0)
        h = h + self.pos_conv(h)
        if not self.layer_norm_first:
            h = self.encoder_layer_norm(h)
        h = hook(0, self.dropout(h))
        out = [h]
        for i, layer in enumerate(self.layers):
            h = hook(i + 1, remat_lib.call(layer, h, mask, enabled=self.remat))
            out.append(h)
        return out, (self.encoder_layer_norm(h) if self.layer_norm_first else h)

    def __call__(self, wave: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """wave [B, N] float, prefix mask [B, N] bool -> (last_hidden_state [B, T, hidden], frame mask [B, T])."""
        conv, m = self.features(wave, mask)
        return self.hidden_states(conv, m)[1], m


def parameter_count(**fields) -> int:
    """Parameters of `Wav2Vec2Model(**fields)` (e.g. `**PRESETS["base"]`), counted from shapes without
    allocating them."""
    abstract = nnx.eval_shape(lambda: Wav2Vec2Model(**fields, rngs=nnx.Rngs(0)))
    return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
