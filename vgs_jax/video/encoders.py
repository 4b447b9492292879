"""Visual towers of the video models (registered in `models.registry.IMAGE_ENCODERS`).

* `FrameEncoder` ("frame_conv"): Boggust et al. 2019's image tower on one still frame: the pixel CNN
  of `models.image_encoders.ConvImageEncoder` at the dataset's frame size (DAVEnet's VGG16 stand-in).
* `VideoEncoder` ("video_3d2d"): AVLNet's video tower made small: one 3x3x3 conv over (time, y, x)
  with spatial stride 2, then per-frame 3x3 stride-2 2D conv stages (GroupNorm + ReLU each), a
  spatial and temporal mean, LayerNorm and a linear map to the embedding.
"""
from collections.abc import Sequence
import math

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models.image_encoders import POOLED_IMAGE
from vgs_jax.models.image_encoders import ConvImageEncoder
from vgs_jax.models.image_encoders import coordinate_channels
from vgs_jax.models.image_encoders import optional_field


class FrameEncoder(ConvImageEncoder):
    """`ConvImageEncoder` on frames of `image_size` pixels: [B, S, S, 3] uint8 -> [B, out_features]."""

    @classmethod
    def from_config(cls, image_config, out_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        """Fields: channels (one stride-2 stage each), image_size (frame side in pixels)."""
        return cls(out_features, channels=tuple(image_config["channels"]), image_size=int(image_config["image_size"]),
                   remat=bool(optional_field(image_config, "remat", False)), dtype=dtype, rngs=rngs)


def _norm(channels: int, rngs: nnx.Rngs) -> nnx.GroupNorm:
    return nnx.GroupNorm(channels, num_groups=math.gcd(8, channels), rngs=rngs)


class VideoEncoder(nnx.Module):
    """AVLNet-style 3D + 2D conv tower: video [B, F, S, S, 3] uint8 -> [B, out_features] float32.

    Pixels go to [-1, 1] with (y, x) coordinate channels; conv3d (3, 3, 3), stride (1, 2, 2), SAME;
    then len(channels) 2D stages per frame; mean over cells and frames; LayerNorm; Linear.
    """

    capabilities = POOLED_IMAGE

    def __init__(self, out_features: int, *, conv3d_channels: int = 16, channels: Sequence[int] = (32, 64),
                 image_size: int = 32, dtype=jnp.float32, rngs: nnx.Rngs):
        channels = tuple(int(c) for c in channels)
        if out_features < 1 or conv3d_channels < 1 or not channels or min(channels) < 1:
            raise ValueError(f"VideoEncoder: out_features ({out_features}), conv3d_channels ({conv3d_channels}) "
                             f"and every entry of channels ({channels}) must be positive, with at least one 2D stage.")
        self.out_features = out_features
        self.image_size = image_size
        self.conv3d = nnx.Conv(5, conv3d_channels, kernel_size=(3, 3, 3), strides=(1, 2, 2), padding="SAME",
                               dtype=dtype, rngs=rngs)
        self.norm3d = _norm(conv3d_channels, rngs)
        ins = (conv3d_channels,) + channels[:-1]
        self.convs = nnx.List([nnx.Conv(i, o, kernel_size=(3, 3), strides=(2, 2), padding="SAME", dtype=dtype,
                                        rngs=rngs) for i, o in zip(ins, channels)])
        self.norms = nnx.List([_norm(o, rngs) for o in channels])
        self.head_norm = nnx.LayerNorm(channels[-1], rngs=rngs)
        self.head = nnx.Linear(channels[-1], out_features, dtype=dtype, rngs=rngs)

    @classmethod
    def from_config(cls, image_config, out_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        """Fields: conv3d_channels, channels (2D stages), image_size."""
        return cls(out_features, conv3d_channels=int(image_config["conv3d_channels"]),
                   channels=tuple(image_config["channels"]), image_size=int(image_config["image_size"]),
                   dtype=dtype, rngs=rngs)

    def __call__(self, video: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """video [B, F, S, S, 3] uint8 (S = image_size) -> [B, out_features] float32 (`mask` unused)."""
        del mask
        s = self.image_size
        if video.ndim != 5 or video.shape[2:] != (s, s, 3) or video.dtype != jnp.uint8:
            raise ValueError(f"VideoEncoder: expected uint8 video [batch, frames, {s}, {s}, 3], got {video.dtype} "
                             f"{video.shape}.")
        b, f = video.shape[:2]
        x = video.astype(jnp.float32) / 127.5 - 1.0
        x = jnp.concatenate([x, jnp.broadcast_to(coordinate_channels(1, s, s)[:, None], (b, f, s, s, 2))], -1)
        x = jax.nn.relu(self.norm3d(self.conv3d(x).astype(jnp.float32)))
        x = x.reshape((b * f,) + x.shape[2:])
        for conv, norm in zip(self.convs, self.norms):
            x = jax.nn.relu(norm(conv(x).astype(jnp.float32)))
        pooled = x.reshape(b, f, -1, x.shape[-1]).mean(axis=(1, 2))
        return self.head(self.head_norm(pooled)).astype(jnp.float32)
