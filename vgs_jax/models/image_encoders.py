"""Image encoders: platalea's linear map of precomputed features (anchor §1.5) and a small pixel CNN.

Outputs are not L2-normalised; the dual encoder normalises both towers.
"""
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models.pooling import torch_uniform_init


def _config_field(image_config, name: str):
    try:
        return image_config[name]
    except (KeyError, AttributeError) as e:
        raise ValueError(f"image encoder: config.model.image has no field '{name}'; add it.") from e


class LinearImageEncoder(nnx.Module):
    """Linear(in -> out), Xavier-uniform weight, PyTorch-default bias, no nonlinearity (platalea)."""

    def __init__(self, in_features: int, out_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        if in_features <= 0 or out_features <= 0:
            raise ValueError(
                f"LinearImageEncoder: in_features ({in_features}) and out_features ({out_features}) "
                "must be positive.")
        self.in_features = in_features
        self.out_features = out_features
        self.linear = nnx.Linear(in_features, out_features, kernel_init=nnx.initializers.xavier_uniform(),
                                 bias_init=torch_uniform_init(in_features), dtype=dtype, rngs=rngs)

    @classmethod
    def from_config(cls, image_config, out_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        """Build from a config with field `input_dim` (size of the precomputed image feature)."""
        return cls(int(_config_field(image_config, "input_dim")), out_features, dtype=dtype, rngs=rngs)

    def __call__(self, image: jax.Array) -> jax.Array:
        """image features [B, in_features] float -> [B, out_features] float32."""
        if image.ndim != 2 or image.shape[-1] != self.in_features:
            raise ValueError(
                f"LinearImageEncoder: expected precomputed features [batch, {self.in_features}], got shape "
                f"{image.shape}; for raw pixels use image_encoder='conv'.")
        return self.linear(image.astype(jnp.float32)).astype(jnp.float32)


def coordinate_channels(batch: int, height: int, width: int) -> jax.Array:
    """[B, H, W, 2] float32 with (y, x) pixel-centre coordinates in [-1, 1] (row 0 / column 0 at -1)."""
    ys = (jnp.arange(height, dtype=jnp.float32) + 0.5) / height * 2.0 - 1.0
    xs = (jnp.arange(width, dtype=jnp.float32) + 0.5) / width * 2.0 - 1.0
    grid = jnp.stack(jnp.meshgrid(ys, xs, indexing="ij"), axis=-1)
    return jnp.broadcast_to(grid, (batch, height, width, 2))


class ConvImageEncoder(nnx.Module):
    """A small CNN from pixels for `spoken_shapes` scenes (64x64 RGB uint8).

    Pixels are scaled to [-1, 1] and two coordinate channels (y, x) are appended, so filters can
    tell where they are. Each stage is a 3x3 stride-2 conv + GroupNorm + ReLU (64 -> 32 -> 16 -> 8 ->
    4 for four stages). The final small map is flattened (no global pooling, so position survives)
    and mapped by LayerNorm + Linear to `out_features`. No BatchNorm: only `nnx.Param` state.
    """

    def __init__(self, out_features: int, *, channels: Sequence[int] = (32, 64, 128, 128),
                 image_size: int = 64, dtype=jnp.float32, rngs: nnx.Rngs):
        channels = tuple(int(c) for c in channels)
        if out_features <= 0 or not channels or min(channels) <= 0:
            raise ValueError(
                f"ConvImageEncoder: out_features ({out_features}) and every entry of channels ({channels}) "
                "must be positive, with at least one stage.")
        final = image_size
        for _ in channels:
            final = (final + 1) // 2
        self.out_features = out_features
        self.image_size = image_size
        self.channels = channels
        convs, norms = [], []
        in_ch = 3 + 2
        for c in channels:
            convs.append(nnx.Conv(in_ch, c, kernel_size=(3, 3), strides=(2, 2), padding="SAME",
                                  dtype=dtype, rngs=rngs))
            norms.append(nnx.GroupNorm(c, num_groups=math.gcd(8, c), rngs=rngs))
            in_ch = c
        self.convs = nnx.List(convs)
        self.norms = nnx.List(norms)
        flat = final * final * in_ch
        self.head_norm = nnx.LayerNorm(flat, rngs=rngs)
        self.head = nnx.Linear(flat, out_features, dtype=dtype, rngs=rngs)

    @classmethod
    def from_config(cls, image_config, out_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        """Build from a config with field `channels` (conv widths, one stride-2 stage each)."""
        return cls(out_features, channels=tuple(_config_field(image_config, "channels")), dtype=dtype,
                   rngs=rngs)

    def __call__(self, image: jax.Array) -> jax.Array:
        """image [B, H, W, 3] uint8 (H = W = image_size) -> [B, out_features] float32."""
        if image.ndim != 4 or image.shape[1:] != (self.image_size, self.image_size, 3):
            raise ValueError(
                f"ConvImageEncoder: expected images [batch, {self.image_size}, {self.image_size}, 3], got "
                f"shape {image.shape}.")
        if image.dtype != jnp.uint8:
            raise ValueError(
                f"ConvImageEncoder: expected uint8 pixels in [0, 255], got dtype {image.dtype}; pass the "
                "decoded image unchanged (scaling happens inside).")
        b, h, w, _ = image.shape
        x = image.astype(jnp.float32) / 127.5 - 1.0
        x = jnp.concatenate([x, coordinate_channels(b, h, w)], axis=-1)
        for conv, norm in zip(self.convs, self.norms):
            x = jax.nn.relu(norm(conv(x).astype(jnp.float32)))
        x = self.head_norm(x.reshape(b, -1))
        return self.head(x).astype(jnp.float32)


IMAGE_ENCODERS = {"linear": LinearImageEncoder, "conv": ConvImageEncoder}
