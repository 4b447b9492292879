"""Kamper et al. (2017)'s keyword-prediction CNN: speech -> one logit per keyword of a vocabulary.

The recipe of kamperh/recipe_semantic_flickraudio `speech_nn/train_visionspeech_cnn.py`: 1-D
convolutions over MFCC frames (64 filters x 9 frames, max-pool 3; 256 x 10, max-pool 3; 1024 x 11,
max-pool over all frames), ReLU after each conv, then fully connected layers (one of 4096 ReLU units)
and a linear output of `num_keywords` logits (the sigmoid is in the loss). Convs and pools are VALID;
the reference centre-pads every utterance to 800 frames, here frames past an utterance's length are
zero and the final max runs over the frames whose receptive field starts inside it (at least one),
so an utterance's output does not depend on the batch's padding.
"""
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import capabilities as caps
from vgs_jax.models.pooling import torch_uniform_init

KAMPER_WIDTHS = (64, 256, 1024)
KAMPER_KERNELS = (9, 10, 11)
KAMPER_POOLS = (3, 3)
KAMPER_HIDDEN = (4096,)


def valid_lengths(lengths: jax.Array, kernels: Sequence[int], pools: Sequence[int]) -> jax.Array:
    """Valid frames after each VALID conv (L - k + 1) and max-pool (floor(L / p)); at least 1."""
    for k, p in zip(kernels, tuple(pools) + (1,)):
        lengths = (lengths - k + 1) // p
    return jnp.maximum(lengths, 1)


class KamperCNN(nnx.Module):
    """features [B, T, F] -> keyword logits [B, num_keywords] (a pooled speech tower)."""

    capabilities = caps.Capabilities(output=caps.POOLED)

    def __init__(self, in_features: int = 39, *, num_keywords: int, widths: Sequence[int] = KAMPER_WIDTHS,
                 kernels: Sequence[int] = KAMPER_KERNELS, pools: Sequence[int] = KAMPER_POOLS,
                 hidden: Sequence[int] = KAMPER_HIDDEN, dtype=jnp.float32, rngs: nnx.Rngs):
        widths, kernels, pools, hidden = (tuple(int(v) for v in x) for x in (widths, kernels, pools, hidden))
        if in_features < 1 or num_keywords < 1:
            raise ValueError(f"KamperCNN: in_features ({in_features}) and num_keywords ({num_keywords}) must be >= 1.")
        if not widths or len(kernels) != len(widths) or len(pools) != len(widths) - 1:
            raise ValueError(f"KamperCNN: need one kernel per conv width and one pool between consecutive convs; "
                             f"got widths={widths}, kernels={kernels}, pools={pools}.")
        if min(widths + kernels + pools + hidden, default=1) < 1:
            raise ValueError("KamperCNN: widths, kernels, pools and hidden sizes must be >= 1.")
        self.in_features, self.out_features = in_features, num_keywords
        self.kernels, self.pools = kernels, pools
        self.receptive_field = self._receptive_field()
        ins = (in_features,) + widths[:-1]
        self.convs = nnx.List([
            nnx.Conv(cin, cout, kernel_size=(k,), padding="VALID", dtype=dtype,
                     kernel_init=torch_uniform_init(cin * k), bias_init=torch_uniform_init(cin * k), rngs=rngs)
            for cin, cout, k in zip(ins, widths, kernels)])
        sizes = (widths[-1],) + hidden + (num_keywords,)
        self.dense = nnx.List([
            nnx.Linear(a, b, dtype=dtype, kernel_init=torch_uniform_init(a), bias_init=torch_uniform_init(a), rngs=rngs)
            for a, b in zip(sizes, sizes[1:])])

    from_config = classmethod(caps.speech_from_config)

    def _receptive_field(self) -> int:
        """Input frames that the first frame of the last conv reads."""
        field, stride = 1, 1
        for k, p in zip(self.kernels, self.pools + (1,)):
            field += (k - 1) * stride + (p - 1) * stride
            stride *= p
        return field

    def __call__(self, features: jax.Array, mask: jax.Array) -> jax.Array:
        """features [B, T, in_features] float, prefix mask [B, T] bool -> logits [B, num_keywords] float32."""
        if features.ndim != 3 or features.shape[-1] != self.in_features or mask.shape != features.shape[:2]:
            raise ValueError(f"KamperCNN: expected features [B, T, {self.in_features}] and mask [B, T]; got "
                             f"{features.shape} and {mask.shape}.")
        x = jnp.where(mask[..., None], features.astype(jnp.float32), 0.0)
        short = self.receptive_field - x.shape[1]
        if short > 0:  # the reference pads every utterance to 800 frames
            x = jnp.pad(x, ((0, 0), (0, short), (0, 0)))
        for i, conv in enumerate(self.convs):
            x = jax.nn.relu(conv(x).astype(jnp.float32))
            if i < len(self.pools):
                p = self.pools[i]
                x = nnx.max_pool(x, window_shape=(p,), strides=(p,), padding="VALID")
        lengths = valid_lengths(jnp.sum(mask, axis=1), self.kernels, self.pools)
        valid = jnp.arange(x.shape[1])[None, :] < lengths[:, None]
        h = jnp.max(jnp.where(valid[..., None], x, -jnp.inf), axis=1)
        for layer in self.dense[:-1]:
            h = jax.nn.relu(layer(h).astype(jnp.float32))
        return self.dense[-1](h).astype(jnp.float32)
