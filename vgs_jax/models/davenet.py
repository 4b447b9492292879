"""DAVEnet speech encoder (anchor §2.3): a frame-map tower of five convolutions and four max-pools.

The reference's Conv2d with a (40, 1) kernel collapses frequency; here it is a kernel-1 conv over 40
input channels (same weights, same count). Time convs use PyTorch's padding (k // 2 each side).
Lengths, padding invariance, train/eval and per-layer frame outputs: `conv_map_layers`.
"""
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import capabilities as caps
from vgs_jax.models import conv_map_layers as layers
from vgs_jax.models import remat as remat_lib
from vgs_jax.models.pooling import mean_pool, torch_uniform_init
from vgs_jax.objectives.similarity import l2_normalize

DAVENET_WIDTHS = (128, 256, 512, 512, 1024)
"""Output channels of DAVEnet's conv1..conv5 (anchor §2.3); smaller widths make CPU-sized variants."""
DAVENET_KERNELS = (1, 11, 17, 17, 17)


class Davenet(nnx.Module):
    """DAVEnet speech encoder: input BN(1) -> conv1 (40x1, 128) -> conv2..conv5 (+ReLU, max-pool).

    `widths` are the output channels of conv1..conv5 (default DAVENET_WIDTHS, the reference's).

    Convs have biases and PyTorch's default init. The input BatchNorm has one channel: its
    statistics run over all valid (frame, frequency) values of the batch.
    """

    def __init__(self, in_features: int = 40, *, widths: Sequence[int] = DAVENET_WIDTHS,
                 length_rounding: str = "ceil", remat: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        widths = tuple(int(w) for w in widths)
        if in_features < 1:
            raise ValueError(f"Davenet: in_features must be >= 1, got {in_features}.")
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError(f"Davenet: widths must be 5 positive ints (conv1..conv5), got {widths}.")
        if length_rounding not in ("ceil", "floor"):
            raise ValueError(f"Davenet: length_rounding must be 'ceil' or 'floor', got {length_rounding!r}.")
        self.in_features = in_features
        self.out_features = widths[-1]
        self.length_rounding = length_rounding
        self.remat = remat
        self.input_norm = layers.batch_norm(1, rngs)
        specs = list(zip((in_features,) + widths[:-1], widths, DAVENET_KERNELS))
        self.convs = nnx.List([
            nnx.Conv(cin, cout, kernel_size=(k,), padding=((k // 2, k // 2),), use_bias=True, dtype=dtype,
                     kernel_init=torch_uniform_init(cin * k), bias_init=torch_uniform_init(cin * k), rngs=rngs)
            for cin, cout, k in specs])

    from_config = classmethod(caps.speech_from_config)

    @property
    def capabilities(self) -> caps.Capabilities:
        """Frame map (16x), no attention; frame outputs "conv1".."conv5" at the input rate."""
        return layers.map_capabilities([f"conv{k}" for k in range(1, len(self.convs) + 1)])

    def _stages(self, features: jax.Array, mask: jax.Array):
        """The forward pass, one stage at a time: yields ("convK", frames [B, T_K, C_K], stride 2^(K-1)),
        then ("final", frames, frame mask) with `layers.final_map`'s mask."""
        layers.check_inputs(features, mask, self.in_features, "Davenet")
        x = features.astype(jnp.float32)
        x = self.input_norm(x[..., None], mask=mask[..., None, None])[..., 0]
        h = layers.zero_padding(x, mask)
        h = layers.zero_padding(jax.nn.relu(self.convs[0](h)), mask)
        yield "conv1", h, 1
        lengths0 = jnp.sum(mask, axis=1).astype(jnp.int32)
        lengths = lengths0
        for k, conv in enumerate(self.convs[1:], start=2):
            h, lengths, mask = remat_lib.apply(_conv_pool_stage, conv, h, lengths, mask, enabled=self.remat)
            yield f"conv{k}", h, 2 ** (k - 1)
        yield ("final",) + layers.final_map(h, lengths0, self.length_rounding)

    def __call__(self, features: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """features [B, T, in] float, prefix mask [B, T] bool -> (frames [B, ceil(T/16), 1024] float32,
        frame mask [B, ceil(T/16)] bool). Frames are zero at padding."""
        *_, (_, frames, frame_mask) = self._stages(features, mask)
        return frames, frame_mask

    def frame_outputs(self, features: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        """Every stage at the input rate (eval mode): features [B, T, in], prefix mask [B, T] bool ->
        {"conv1".."conv5": [B, T, C_k] float32 (stage k's post-pool output, frame j of stride 2^(k-1)
        repeated over input frames [j 2^(k-1), (j + 1) 2^(k-1)), zero at padding), "pooled": [B, C]
        as `pooled`, "mask": the input mask}."""
        layers.require_eval(self.input_norm, "Davenet")
        return layers.frame_outputs_from_stages(self._stages(features, mask), mask)

    def pooled(self, features: jax.Array, mask: jax.Array) -> jax.Array:
        """L2-normalised masked mean of the frame map: [B, T, in], [B, T] -> [B, 1024] float32."""
        h, m = self(features, mask)
        return l2_normalize(mean_pool(h, m))

    def encode(self, features: jax.Array, mask: jax.Array, *, key: jax.Array | None = None
               ) -> tuple[jax.Array, jax.Array, dict]:
        """`ResDavenet.encode`'s interface: (frames, frame mask, aux with vq_loss 0 and no vq_inputs).
        `key` is unused (DAVEnet has no jitter)."""
        del key
        h, m = self(features, mask)
        return h, m, {"vq_loss": jnp.zeros((), jnp.float32), "vq_inputs": {}}

    def update_codebooks(self, aux: dict) -> None:
        """No quantisers: nothing to update (kept so trainers treat both encoders alike)."""
        del aux


def _conv_pool_stage(conv: nnx.Conv, h: jax.Array, lengths: jax.Array, mask: jax.Array):
    """conv -> ReLU -> max-pool (a halving) on zero-padded frames h [B, T, C] with prefix mask [B, T]:
    (frames [B, ceil(T/2), C'], their lengths [B], their mask)."""
    h = layers.max_pool_time(layers.zero_padding(jax.nn.relu(conv(h)), mask))
    lengths = layers.downsampled_lengths(lengths, 1)
    mask = layers.lengths_to_mask(lengths, h.shape[1])
    return layers.zero_padding(h, mask), lengths, mask
