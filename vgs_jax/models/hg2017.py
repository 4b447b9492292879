"""Harwath & Glass (2017) convolutional speech encoder (survey Table 3; survey-systems.md B.4).

    log-mel [B, T, 40] -> conv1 128 (1 x 40: all bands, a kernel-1 conv over 40 channels), ReLU
    -> conv2 256 (width 11), ReLU -> max-pool 3/2 -> conv3 512 (17), ReLU -> max-pool 3/2
    -> conv4 512 (17), ReLU -> max-pool 3/2 -> conv5 1024 (17), ReLU -> masked mean over time
    -> L2 norm: one [B, 1024] vector per utterance (a pooled tower, scored by cosine).

Two choices Table 3 does not fix: the input is mean- and variance-normalised per utterance and
band over its valid frames (`normalize_input`, parameter-free; DAVEnet has an input BatchNorm),
and kernels are He-normal (fan in) with zero biases (PyTorch's default uniform init shrinks the
signal's variance ~6x per layer, so conv5 was nearly its bias for every utterance). With no
normalisation between the ReLU convs, Adam must run at a low rate (configs/shapes_hg2017.py: 2e-4)
or a few always-on conv5 units take over and every caption embeds to the same direction.

Time convs pad k // 2 each side, pools are `conv_map_layers.max_pool_time` (kernel 3, stride 2,
pad 1): 3 halvings, 8x in time, with padding zeroed before every conv and pool so the output does
not depend on batch padding.
"""
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import capabilities as caps
from vgs_jax.models import conv_map_layers as layers
from vgs_jax.models.pooling import mean_pool
from vgs_jax.objectives.similarity import l2_normalize

HG2017_WIDTHS = (128, 256, 512, 512, 1024)
"""Output channels of conv1..conv5 (survey Table 3); smaller widths make CPU-sized variants."""
HG2017_KERNELS = (1, 11, 17, 17, 17)
POOL_AFTER = (False, True, True, True, False)
"""Max-pool 3/2 after conv2, conv3 and conv4 (Table 3); conv5 is mean-pooled over time."""


class HG2017SpeechEncoder(nnx.Module):
    """Table 3's encoder: features [B, T, in] + prefix mask [B, T] -> unit-norm [B, widths[-1]]."""

    def __init__(self, in_features: int = 40, *, widths: Sequence[int] = HG2017_WIDTHS, normalize_input: bool = True,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        widths = tuple(int(w) for w in widths)
        if in_features < 1:
            raise ValueError(f"HG2017SpeechEncoder: in_features must be >= 1, got {in_features}.")
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError(f"HG2017SpeechEncoder: widths must be 5 positive ints (conv1..conv5), got {widths}.")
        self.in_features = in_features
        self.out_features = widths[-1]
        self.normalize_input = normalize_input
        specs = zip((in_features,) + widths[:-1], widths, HG2017_KERNELS)
        self.convs = nnx.List([
            nnx.Conv(cin, cout, kernel_size=(k,), padding=((k // 2, k // 2),), use_bias=True, dtype=dtype,
                     kernel_init=nnx.initializers.he_normal(), bias_init=nnx.initializers.zeros_init(), rngs=rngs)
            for cin, cout, k in specs])

    from_config = classmethod(caps.speech_from_config)

    @property
    def capabilities(self) -> caps.Capabilities:
        """Pooled; frame outputs "conv1".."conv5" repeated to the input rate (stride 1 clock)."""
        return caps.Capabilities(output=caps.POOLED, frame_outputs=tuple(f"conv{k}" for k in range(1, 6)),
                                 frame_clock=caps.FrameClock())

    def _stages(self, features: jax.Array, mask: jax.Array):
        """Yields ("convK", frames [B, T_K, C_K], stride), then ("final", conv5 frames, their mask)."""
        layers.check_inputs(features, mask, self.in_features, "HG2017SpeechEncoder")
        h = features.astype(jnp.float32)
        if self.normalize_input:
            h = utterance_normalize(h, mask)
        h = layers.zero_padding(h, mask)
        lengths = jnp.sum(mask, axis=1).astype(jnp.int32)
        stride = 1
        for k, (conv, pool) in enumerate(zip(self.convs, POOL_AFTER), start=1):
            h = layers.zero_padding(jax.nn.relu(conv(h)), mask)
            if pool:
                h = layers.max_pool_time(h)
                lengths = layers.downsampled_lengths(lengths, 1)
                mask = layers.lengths_to_mask(lengths, h.shape[1])
                h = layers.zero_padding(h, mask)
                stride *= 2
            yield f"conv{k}", h, stride
        yield "final", h, mask

    def frame_outputs(self, features: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        """{"conv1".."conv5": [B, T, C_k] float32 at the input rate (frame j of stride s copied to input
        frames [j s, (j + 1) s)), "pooled": [B, C] as __call__, "mask": the input mask [B, T]}."""
        return layers.frame_outputs_from_stages(self._stages(features, mask), mask)

    def __call__(self, features: jax.Array, mask: jax.Array) -> jax.Array:
        """features [B, T, in] float, prefix mask [B, T] bool -> L2-normalised masked mean of conv5,
        [B, widths[-1]] float32."""
        *_, (_, h, frame_mask) = self._stages(features, mask)
        return l2_normalize(mean_pool(h, frame_mask))


def utterance_normalize(x: jax.Array, mask: jax.Array, eps: float = 1e-5) -> jax.Array:
    """Per utterance and feature: (x - mean) / sqrt(var + eps) over the valid frames; [B, T, F], [B, T] -> [B, T, F]."""
    m = mask[..., None].astype(x.dtype)
    n = jnp.maximum(jnp.sum(m, axis=1, keepdims=True), 1.0)
    mean = jnp.sum(x * m, axis=1, keepdims=True) / n
    var = jnp.sum(jnp.square(x - mean) * m, axis=1, keepdims=True) / n
    return (x - mean) * jax.lax.rsqrt(var + eps)
