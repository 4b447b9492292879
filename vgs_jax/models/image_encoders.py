"""Image encoders: platalea's linear map of precomputed features (anchor §1.5) and a small pixel CNN.

Outputs are not L2-normalised; the dual encoder normalises both towers. Every image encoder takes an
optional example mask [B] bool (the interface of the BatchNorm trunks in `image_trunks`); these encoders
work per example, so they ignore it. `remat=True` (config.model.remat) recomputes each conv stage in the
backward pass (`models.remat`); the linear map has no inner activations and takes no switch.
"""
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import capabilities as caps
from vgs_jax.models import remat as remat_lib
from vgs_jax.models.pooling import torch_uniform_init

POOLED_IMAGE = caps.Capabilities(output=caps.POOLED)
"""An image tower's capabilities when it returns one vector per image."""
MAP_IMAGE = caps.Capabilities(output=caps.FRAME_MAP)
"""An image tower's capabilities when it returns a feature map [B, h, w, E] with its mask."""


def _config_field(image_config, name: str):
    try:
        return image_config[name]
    except (KeyError, AttributeError) as e:
        raise ValueError(f"image encoder: config.model.image has no field '{name}'; add it.") from e


def optional_field(image_config, name: str, default):
    """config.model.image's field `name`, or `default` when the config (dict, ConfigDict or None) lacks it."""
    try:
        return image_config[name]
    except (KeyError, AttributeError, TypeError):
        return default


class LinearImageEncoder(nnx.Module):
    """Linear(in -> out), Xavier-uniform weight, PyTorch-default bias, no nonlinearity (platalea)."""

    capabilities = POOLED_IMAGE

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

    def __call__(self, image: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """image features [B, in_features] float -> [B, out_features] float32 (`mask` unused)."""
        del mask
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


def _conv_stages(channels: tuple[int, ...], dtype, rngs: nnx.Rngs) -> tuple[nnx.List, nnx.List]:
    """3x3 stride-2 convs (input: RGB + 2 coordinate channels) and their GroupNorms."""
    convs, norms = [], []
    in_ch = 3 + 2
    for c in channels:
        convs.append(nnx.Conv(in_ch, c, kernel_size=(3, 3), strides=(2, 2), padding="SAME", dtype=dtype, rngs=rngs))
        norms.append(nnx.GroupNorm(c, num_groups=math.gcd(8, c), rngs=rngs))
        in_ch = c
    return nnx.List(convs), nnx.List(norms)


def _conv_stage(stage: tuple[nnx.Conv, nnx.GroupNorm], x: jax.Array) -> jax.Array:
    conv, norm = stage
    return jax.nn.relu(norm(conv(x).astype(jnp.float32)))


def _run_stages(image: jax.Array, convs, norms, image_size: int, where: str, remat: bool) -> jax.Array:
    """image [B, S, S, 3] uint8 -> [B, S / 2^n, S / 2^n, channels[-1]] float32 after the n stages
    (each rematerialised when `remat`)."""
    if image.ndim != 4 or image.shape[1:] != (image_size, image_size, 3):
        raise ValueError(f"{where}: expected images [batch, {image_size}, {image_size}, 3], got shape {image.shape}.")
    if image.dtype != jnp.uint8:
        raise ValueError(
            f"{where}: expected uint8 pixels in [0, 255], got dtype {image.dtype}; pass the decoded image "
            "unchanged (scaling happens inside).")
    b, h, w, _ = image.shape
    x = image.astype(jnp.float32) / 127.5 - 1.0
    x = jnp.concatenate([x, coordinate_channels(b, h, w)], axis=-1)
    for stage in zip(convs, norms):
        x = remat_lib.apply(_conv_stage, stage, x, enabled=remat)
    return x


def _check_channels(out_features: int, channels: tuple[int, ...], where: str) -> None:
    if out_features <= 0 or not channels or min(channels) <= 0:
        raise ValueError(
            f"{where}: out_features ({out_features}) and every entry of channels ({channels}) must be positive, "
            "with at least one stage.")


class ConvImageEncoder(nnx.Module):
    """A small CNN from pixels for `spoken_shapes` scenes (64x64 RGB uint8).

    Pixels are scaled to [-1, 1] and two coordinate channels (y, x) are appended, so filters can
    tell where they are. Each stage is a 3x3 stride-2 conv + GroupNorm + ReLU (64 -> 32 -> 16 -> 8 ->
    4 for four stages). The final small map is flattened (no global pooling, so position survives)
    and mapped by LayerNorm + Linear to `out_features`. No BatchNorm: only `nnx.Param` state.
    """

    capabilities = POOLED_IMAGE

    def __init__(self, out_features: int, *, channels: Sequence[int] = (32, 64, 128, 128),
                 image_size: int = 64, remat: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        channels = tuple(int(c) for c in channels)
        _check_channels(out_features, channels, "ConvImageEncoder")
        self.remat = bool(remat)
        final = image_size
        for _ in channels:
            final = (final + 1) // 2
        self.out_features = out_features
        self.image_size = image_size
        self.channels = channels
        self.convs, self.norms = _conv_stages(channels, dtype, rngs)
        in_ch = channels[-1]
        flat = final * final * in_ch
        self.head_norm = nnx.LayerNorm(flat, rngs=rngs)
        self.head = nnx.Linear(flat, out_features, dtype=dtype, rngs=rngs)

    @classmethod
    def from_config(cls, image_config, out_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        """Build from a config with field `channels` (conv widths, one stride-2 stage each) and optional
        `remat` (bool, default False)."""
        return cls(out_features, channels=tuple(_config_field(image_config, "channels")),
                   remat=bool(optional_field(image_config, "remat", False)), dtype=dtype, rngs=rngs)

    def __call__(self, image: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """image [B, H, W, 3] uint8 (H = W = image_size) -> [B, out_features] float32 (`mask` unused)."""
        del mask
        x = _run_stages(image, self.convs, self.norms, self.image_size, type(self).__name__, self.remat)
        b = x.shape[0]
        x = self.head_norm(x.reshape(b, -1))
        return self.head(x).astype(jnp.float32)


class ConvMapImageEncoder(nnx.Module):
    """The pixel CNN's stages followed by a 1x1 conv to `out_features`: a feature MAP for matchmaps.

    image [B, S, S, 3] uint8 -> (map [B, S / 2^n, S / 2^n, out_features] float32, mask of ones bool
    [B, S / 2^n, S / 2^n]); e.g. 8 x 8 cells for 64 x 64 `spoken_shapes` scenes and 3 stages. The
    CPU-sized stand-in for DAVEnet's VGG16 map (same interface as `image_trunks.VGG16Trunk`).
    """

    capabilities = MAP_IMAGE

    def __init__(self, out_features: int, *, channels: Sequence[int] = (32, 64, 128), image_size: int = 64,
                 remat: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        channels = tuple(int(c) for c in channels)
        _check_channels(out_features, channels, "ConvMapImageEncoder")
        self.remat = bool(remat)
        self.out_features = out_features
        self.image_size = image_size
        self.channels = channels
        self.convs, self.norms = _conv_stages(channels, dtype, rngs)
        self.embedder = nnx.Conv(channels[-1], out_features, kernel_size=(1, 1), dtype=dtype, rngs=rngs)

    from_config = classmethod(ConvImageEncoder.from_config.__func__)

    def __call__(self, image: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """image [B, S, S, 3] uint8 -> (map [B, h, w, out_features] float32, mask [B, h, w] bool, all True);
        the example `mask` is unused."""
        del mask
        x = _run_stages(image, self.convs, self.norms, self.image_size, type(self).__name__, self.remat)
        out = self.embedder(x).astype(jnp.float32)
        return out, jnp.ones(out.shape[:3], jnp.bool_)

