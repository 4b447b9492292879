"""Layers and bookkeeping shared by the convolutional frame-map speech encoders (DAVEnet, ResDAVEnet).

Both encoders take log-mel features [B, T, 40] with a prefix frame mask [B, T] (valid frames first)
and return a frame map [B, T', 1024] with its mask [B, T'], downsampled 16x in time.

Lengths. Each of the four halvings (max-pool k3/s2/pad1, or stride-2 conv k9/pad4 / 1x1) maps T
frames to ceil(T / 2), and output frame j is centred on input frame 2j. With the default
`length_rounding="ceil"` a frame is valid when its centre is valid: L' = ceil(L / 2) per halving
(= ceil(L / 16) overall). `length_rounding="floor"` gives the reference's bookkeeping,
L' = L // 16 (anchor §9 item 7), which drops a trailing partial frame.

Padding invariance. Padded frames are set to zero before every conv and every pool, and all
BatchNorm statistics (train mode) are computed over valid frames only, so the valid outputs of an
utterance do not depend on how much padding its batch has, in train and eval mode alike. (With zero
padding a 'SAME' conv sees exactly what it would see on the unpadded utterance, and post-ReLU values
are >= 0, so a zero frame never wins a max-pool over the reference's -inf padding.) The reference
normalises over padding too; ours differs from it only there.

Train / eval. BatchNorms start in train mode (batch statistics, running averages updated with
PyTorch's momentum 0.1, i.e. flax momentum 0.9; flax keeps the biased variance where PyTorch keeps
the unbiased one). `model.eval()` switches every BatchNorm to running averages and turns the
ResDAVEnet jitter off; `model.train()` switches back. Running statistics are `nnx.BatchStat`
variables and codebooks `vq.VQState` variables, both outside `nnx.Param`.

Per-layer analyses. `frame_outputs` (eval mode only) returns every stage's output -- DAVEnet
"conv1".."conv5" (after ReLU and max-pool), ResDAVEnet "conv1", "layer1".."layer4" (after the
stage's quantiser, i.e. post-quantisation, what the next stage reads) -- REPEATED in time back to
the input frame rate: frame j of a stage at stride s is copied to input frames [j s, (j + 1) s),
cropped to T and zeroed outside the input mask. The analyses (`vgs_jax.analysis`) assume one frame
clock for all layers; repeating puts every stage on the 10 ms input clock without resampling, so a
stage's frame labels, ABX spans and boundaries are read at the input frames it covers.
"""
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import capabilities as caps
from vgs_jax.models.pooling import mean_pool
from vgs_jax.objectives.similarity import l2_normalize

NUM_HALVINGS = 4
MAP_CLOCK = caps.FrameClock(stride=2 ** NUM_HALVINGS)
"""The final map's clock: frame j centred on input frame 16 j."""


def map_capabilities(stages: Sequence[str], quantizers=()) -> caps.Capabilities:
    """A frame-map speech tower whose `frame_outputs` (`stages`) are repeated to the input rate."""
    return caps.Capabilities(output=caps.FRAME_MAP, frame_outputs=tuple(stages), frame_clock=caps.FrameClock(),
                             map_clock=MAP_CLOCK, quantizers=tuple(quantizers))


def check_inputs(x: jax.Array, mask: jax.Array, in_features: int, where: str) -> None:
    if x.ndim != 3 or x.shape[-1] != in_features:
        raise ValueError(f"{where}: features must be [batch, time, {in_features}], got shape {x.shape}.")
    if mask.shape != x.shape[:2]:
        raise ValueError(f"{where}: mask shape {mask.shape} must equal the features' [batch, time] {x.shape[:2]}.")
    if x.shape[1] < 1:
        raise ValueError(f"{where}: the batch has no frames; pad it to at least 1 frame.")


def downsampled_lengths(lengths: jax.Array, halvings: int = NUM_HALVINGS, rounding: str = "ceil") -> jax.Array:
    """Valid frame counts after `halvings` time halvings.

    Args:
      lengths: [B] int frame counts; halvings: number of stride-2 stages; rounding: "ceil" (valid
        centre frame, our default) or "floor" (the reference's L // 2**halvings).
    Returns:
      [B] int32.
    """
    lengths = jnp.asarray(lengths, jnp.int32)
    if rounding == "floor":
        return lengths // (2 ** halvings)
    if rounding != "ceil":
        raise ValueError(f"downsampled_lengths: rounding must be 'ceil' or 'floor', got {rounding!r}.")
    for _ in range(halvings):
        lengths = (lengths + 1) // 2
    return lengths


def lengths_to_mask(lengths: jax.Array, t: int) -> jax.Array:
    return jnp.arange(t)[None, :] < lengths[:, None]


def zero_padding(h: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.where(mask[..., None], h, jnp.zeros((), h.dtype))


def max_pool_time(h: jax.Array) -> jax.Array:
    """Max-pool over time, kernel 3, stride 2, padding 1 (-inf): [B, T, C] -> [B, ceil(T/2), C]."""
    return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 3, 1), (1, 2, 1),
                                 ((0, 0), (1, 1), (0, 0)))


def he_normal_fan_out(fan_out: int) -> nnx.initializers.Initializer:
    """ResDAVEnet's init: N(0, 2 / (kh * kw * out_channels)); `fan_out` = kh * kw * out_channels."""
    std = math.sqrt(2.0 / fan_out)

    def init(key, shape, dtype=jnp.float32):
        return std * jax.random.normal(key, shape, dtype)

    return init


def batch_norm(channels: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(channels, momentum=0.9, epsilon=1e-5, rngs=rngs)



def repeat_to_input(h: jax.Array, stride: int, mask: jax.Array) -> jax.Array:
    """Stage frames [B, T_s, C] at `stride` -> [B, T, C] float32 at the input rate (frame j copied to
    input frames [j stride, (j + 1) stride), cropped to T = mask.shape[1]), zero outside `mask` [B, T]."""
    t = mask.shape[1]
    if h.shape[1] * stride < t:
        raise ValueError(f"repeat_to_input: {h.shape[1]} frames at stride {stride} cover fewer than T={t} frames.")
    return zero_padding(jnp.repeat(h, stride, axis=1)[:, :t], mask).astype(jnp.float32)


def frame_outputs_from_stages(stages, mask: jax.Array) -> dict[str, jax.Array]:
    """`frame_outputs` from a `_stages` generator: every stage repeated to the input rate, the pooled
    L2-normalised final map, and the input mask."""
    out = {}
    for name, h, extra in stages:
        if name == "final":
            out["pooled"] = l2_normalize(mean_pool(h, extra))
        else:
            out[name] = repeat_to_input(h, extra, mask)
    out["mask"] = mask
    return out


def require_eval(batch_norm: nnx.BatchNorm, where: str) -> None:
    if not batch_norm.use_running_average:
        raise ValueError(f"{where}.frame_outputs is eval-mode only; call model.eval() (or use "
                         "Template.merge(params), which is eval mode) first.")


def final_map(h: jax.Array, lengths0: jax.Array, rounding: str) -> tuple[jax.Array, jax.Array]:
    """Final frame mask from the input lengths (per `rounding`); frames are zeroed outside it."""
    mask = lengths_to_mask(downsampled_lengths(lengths0, NUM_HALVINGS, rounding), h.shape[1])
    return zero_padding(h, mask).astype(jnp.float32), mask


def temporal_jitter(h: jax.Array, lengths: jax.Array, key: jax.Array, p: float = 0.12,
                    mode: str = "centred") -> jax.Array:
    """Randomly replace frames by neighbours (training-time regulariser), within each valid length.

    Args:
      h: [B, T, C] frames; lengths: [B] int valid counts; key: PRNG key; p: jitter probability.
      mode: "centred" (platalea): every (b, t) independently takes frame t-1 with probability p/2 and
        t+1 with probability p/2; "reference" (ResDAVEnet-VQ as written): one shift per time step,
        shared across the batch, of 0, +1, +2 with probabilities (p, 1-2p, p).
    Returns:
      [B, T, C]; source indices are clamped to [0, length-1] (the reference clamps to the padded
      T-1), and padded frames stay in place.
    """
    if not 0.0 <= p <= 0.5:
        raise ValueError(f"temporal_jitter: p must be in [0, 0.5], got {p}.")
    b, t = h.shape[:2]
    if mode == "centred":
        u = jax.random.uniform(key, (b, t))
        shift = jnp.where(u < p / 2, -1, jnp.where(u >= 1.0 - p / 2, 1, 0))
    elif mode == "reference":
        cat = jax.random.choice(key, 3, (t,), p=jnp.array([p, 1.0 - 2.0 * p, p]))
        shift = jnp.broadcast_to(cat[None, :], (b, t))
    else:
        raise ValueError(f"temporal_jitter: mode must be 'centred' or 'reference', got {mode!r}.")
    pos = jnp.arange(t)[None, :]
    last = jnp.maximum(lengths[:, None] - 1, 0)
    idx = jnp.where(pos < lengths[:, None], jnp.clip(pos + shift, 0, last), pos)
    return jnp.take_along_axis(h, idx[..., None], axis=1)
