"""Convolutional speech encoders: DAVEnet (anchor §2.3) and ResDAVEnet(-VQ) (anchor §3.2).

Both take log-mel features [B, T, 40] with a prefix frame mask [B, T] (valid frames first) and
return a frame map [B, T', 1024] with its mask [B, T'], downsampled 16x in time. The reference's
Conv2d with a (40, 1) kernel collapses frequency; here it is a kernel-1 conv over 40 input channels
(same weights, same count). Time convs use PyTorch's padding (k // 2 each side).

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
from vgs_jax.models.pooling import mean_pool, torch_uniform_init
from vgs_jax.models.vq import VectorQuantizer
from vgs_jax.objectives.similarity import l2_normalize

NUM_HALVINGS = 4
DAVENET_WIDTHS = (128, 256, 512, 512, 1024)
"""Output channels of DAVEnet's conv1..conv5 (anchor §2.3); smaller widths make CPU-sized variants."""
DAVENET_KERNELS = (1, 11, 17, 17, 17)
MAP_CLOCK = caps.FrameClock(stride=2 ** NUM_HALVINGS)
"""The final map's clock: frame j centred on input frame 16 j."""


def _map_capabilities(stages: Sequence[str], quantizers=()) -> caps.Capabilities:
    """A frame-map speech tower whose `frame_outputs` (`stages`) are repeated to the input rate."""
    return caps.Capabilities(output=caps.FRAME_MAP, frame_outputs=tuple(stages), frame_clock=caps.FrameClock(),
                             map_clock=MAP_CLOCK, quantizers=tuple(quantizers))


def _check_inputs(x: jax.Array, mask: jax.Array, in_features: int, where: str) -> None:
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


def _lengths_to_mask(lengths: jax.Array, t: int) -> jax.Array:
    return jnp.arange(t)[None, :] < lengths[:, None]


def _zero_padding(h: jax.Array, mask: jax.Array) -> jax.Array:
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


def _batch_norm(channels: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(channels, momentum=0.9, epsilon=1e-5, rngs=rngs)


class Davenet(nnx.Module):
    """DAVEnet speech encoder: input BN(1) -> conv1 (40x1, 128) -> conv2..conv5 (+ReLU, max-pool).

    `widths` are the output channels of conv1..conv5 (default DAVENET_WIDTHS, the reference's).

    Convs have biases and PyTorch's default init. The input BatchNorm has one channel: its
    statistics run over all valid (frame, frequency) values of the batch.
    """

    def __init__(self, in_features: int = 40, *, widths: Sequence[int] = DAVENET_WIDTHS,
                 length_rounding: str = "ceil", dtype=jnp.float32, rngs: nnx.Rngs):
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
        self.input_norm = _batch_norm(1, rngs)
        specs = list(zip((in_features,) + widths[:-1], widths, DAVENET_KERNELS))
        self.convs = nnx.List([
            nnx.Conv(cin, cout, kernel_size=(k,), padding=((k // 2, k // 2),), use_bias=True, dtype=dtype,
                     kernel_init=torch_uniform_init(cin * k), bias_init=torch_uniform_init(cin * k), rngs=rngs)
            for cin, cout, k in specs])

    from_config = classmethod(caps.speech_from_config)

    @property
    def capabilities(self) -> caps.Capabilities:
        """Frame map (16x), no attention; frame outputs "conv1".."conv5" at the input rate."""
        return _map_capabilities([f"conv{k}" for k in range(1, len(self.convs) + 1)])

    def _stages(self, features: jax.Array, mask: jax.Array):
        """The forward pass, one stage at a time: yields ("convK", frames [B, T_K, C_K], stride 2^(K-1)),
        then ("final", frames, frame mask) with `_final`'s mask."""
        _check_inputs(features, mask, self.in_features, "Davenet")
        x = features.astype(jnp.float32)
        x = self.input_norm(x[..., None], mask=mask[..., None, None])[..., 0]
        h = _zero_padding(x, mask)
        h = _zero_padding(jax.nn.relu(self.convs[0](h)), mask)
        yield "conv1", h, 1
        lengths0 = jnp.sum(mask, axis=1).astype(jnp.int32)
        lengths = lengths0
        for k, conv in enumerate(self.convs[1:], start=2):
            h = _zero_padding(jax.nn.relu(conv(h)), mask)
            h = max_pool_time(h)
            lengths = downsampled_lengths(lengths, 1)
            mask = _lengths_to_mask(lengths, h.shape[1])
            h = _zero_padding(h, mask)
            yield f"conv{k}", h, 2 ** (k - 1)
        yield ("final",) + _final(h, lengths0, self.length_rounding)

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
        _require_eval(self.input_norm, "Davenet")
        return _frame_outputs(self._stages(features, mask), mask)

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


def _repeat_to_input(h: jax.Array, stride: int, mask: jax.Array) -> jax.Array:
    """Stage frames [B, T_s, C] at `stride` -> [B, T, C] float32 at the input rate (frame j copied to
    input frames [j stride, (j + 1) stride), cropped to T = mask.shape[1]), zero outside `mask` [B, T]."""
    t = mask.shape[1]
    if h.shape[1] * stride < t:
        raise ValueError(f"_repeat_to_input: {h.shape[1]} frames at stride {stride} cover fewer than T={t} frames.")
    return _zero_padding(jnp.repeat(h, stride, axis=1)[:, :t], mask).astype(jnp.float32)


def _frame_outputs(stages, mask: jax.Array) -> dict[str, jax.Array]:
    """`frame_outputs` from a `_stages` generator: every stage repeated to the input rate, the pooled
    L2-normalised final map, and the input mask."""
    out = {}
    for name, h, extra in stages:
        if name == "final":
            out["pooled"] = l2_normalize(mean_pool(h, extra))
        else:
            out[name] = _repeat_to_input(h, extra, mask)
    out["mask"] = mask
    return out


def _require_eval(batch_norm: nnx.BatchNorm, where: str) -> None:
    if not batch_norm.use_running_average:
        raise ValueError(f"{where}.frame_outputs is eval-mode only; call model.eval() (or use "
                         "Template.merge(params), which is eval mode) first.")


def _final(h: jax.Array, lengths0: jax.Array, rounding: str) -> tuple[jax.Array, jax.Array]:
    """Final frame mask from the input lengths (per `rounding`); frames are zeroed outside it."""
    mask = _lengths_to_mask(downsampled_lengths(lengths0, NUM_HALVINGS, rounding), h.shape[1])
    return _zero_padding(h, mask).astype(jnp.float32), mask


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


class BasicBlock(nnx.Module):
    """ResDAVEnet `SpeechBasicBlock`: conv(k, stride) BN ReLU conv(k) BN + shortcut, ReLU; no conv bias."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel: int, *, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        pad = ((kernel // 2, kernel // 2),)
        self.stride = stride
        self.conv1 = nnx.Conv(in_channels, out_channels, kernel_size=(kernel,), strides=(stride,), padding=pad,
                              use_bias=False, kernel_init=he_normal_fan_out(kernel * out_channels), dtype=dtype,
                              rngs=rngs)
        self.bn1 = _batch_norm(out_channels, rngs)
        self.conv2 = nnx.Conv(out_channels, out_channels, kernel_size=(kernel,), padding=pad, use_bias=False,
                              kernel_init=he_normal_fan_out(kernel * out_channels), dtype=dtype, rngs=rngs)
        self.bn2 = _batch_norm(out_channels, rngs)
        if stride != 1 or in_channels != out_channels:
            self.shortcut_conv = nnx.Conv(in_channels, out_channels, kernel_size=(1,), strides=(stride,),
                                          padding="VALID", use_bias=False,
                                          kernel_init=he_normal_fan_out(out_channels), dtype=dtype, rngs=rngs)
            self.shortcut_bn = _batch_norm(out_channels, rngs)
        else:
            self.shortcut_conv = None
            self.shortcut_bn = None

    def __call__(self, h: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """h [B, T, in] (zero at padding), lengths [B] -> (out [B, T', out], lengths', mask' [B, T'])."""
        if self.stride != 1:
            lengths = downsampled_lengths(lengths, 1) if self.stride == 2 else -(-lengths // self.stride)
        y = self.conv1(h)
        mask = _lengths_to_mask(lengths, y.shape[1])
        bn_mask = mask[..., None]
        y = _zero_padding(jax.nn.relu(self.bn1(y, mask=bn_mask)), mask)
        y = self.bn2(self.conv2(y), mask=bn_mask)
        if self.shortcut_conv is not None:
            short = self.shortcut_bn(self.shortcut_conv(h), mask=bn_mask)
        else:
            short = h
        return _zero_padding(jax.nn.relu(y + short), mask), lengths, mask


class ResDavenet(nnx.Module):
    """ResDAVEnet(-VQ): conv1 (40x1, no bias) BN ReLU, four stages of `depths` basic blocks.

    `widths` = (conv1, layer1..layer4); the first block of each stage has stride 2. `vq_on` enables
    quantisers quant1..quant5 (after conv1, layer1..layer4; e.g. (False, True, True, False, False)
    is ResDAVEnet-VQ "{2,3}"), each with `codebook_size` codes (int or one per position).
    Temporal jitter (probability `jitter`, `jitter_mode` as in `temporal_jitter`) follows positions
    1 and 2 in train mode whether or not those quantisers are on; it needs `key=` in `encode` /
    `__call__` (a jax PRNG key, e.g. split per step from the trainer's key), and is off after
    `model.eval()` (attribute `deterministic`). The reference defines an input `batchnorm1` it never
    uses; it is omitted here (PyTorch's parameter count is ours + 2).
    """

    def __init__(self, in_features: int = 40, *, widths: Sequence[int] = (128, 256, 256, 512, 1024),
                 depths: Sequence[int] = (2, 2, 2, 2), kernel: int = 9,
                 vq_on: Sequence[bool] = (False,) * 5, codebook_size: int | Sequence[int] = 1024,
                 vq_decay: float = 0.99, vq_epsilon: float = 1e-5, commitment_cost: float = 1.0,
                 vq_init: str = "normal", jitter: float = 0.12, jitter_mode: str = "centred",
                 length_rounding: str = "ceil", dtype=jnp.float32, rngs: nnx.Rngs):
        widths, depths, vq_on = tuple(widths), tuple(depths), tuple(bool(v) for v in vq_on)
        if len(widths) != 5 or min(widths) < 1:
            raise ValueError(f"ResDavenet: widths must be 5 positive ints (conv1, layer1..4), got {widths}.")
        if len(depths) != 4 or min(depths) < 1:
            raise ValueError(f"ResDavenet: depths must be 4 ints >= 1 (layer1..4), got {depths}.")
        if len(vq_on) != 5:
            raise ValueError(f"ResDavenet: vq_on must have 5 flags (quant1..quant5), got {vq_on}.")
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"ResDavenet: kernel must be a positive odd int, got {kernel}.")
        sizes = (codebook_size,) * 5 if isinstance(codebook_size, int) else tuple(codebook_size)
        if len(sizes) != 5:
            raise ValueError(f"ResDavenet: codebook_size must be an int or 5 ints, got {codebook_size}.")
        if length_rounding not in ("ceil", "floor"):
            raise ValueError(f"ResDavenet: length_rounding must be 'ceil' or 'floor', got {length_rounding!r}.")
        if jitter_mode not in ("centred", "reference") or not 0.0 <= jitter <= 0.5:
            raise ValueError(
                f"ResDavenet: jitter must be in [0, 0.5] and jitter_mode 'centred' or 'reference', got "
                f"{jitter}, {jitter_mode!r}.")
        self.in_features = in_features
        self.out_features = widths[-1]
        self.vq_on = vq_on
        self.jitter = jitter
        self.jitter_mode = jitter_mode
        self.length_rounding = length_rounding
        self.deterministic = False
        self.conv1 = nnx.Conv(in_features, widths[0], kernel_size=(1,), padding="VALID", use_bias=False,
                              kernel_init=he_normal_fan_out(in_features * widths[0]), dtype=dtype, rngs=rngs)
        self.bn1 = _batch_norm(widths[0], rngs)
        self.layers = nnx.List([
            nnx.List([BasicBlock(widths[i] if j == 0 else widths[i + 1], widths[i + 1], 2 if j == 0 else 1,
                                 kernel, dtype=dtype, rngs=rngs) for j in range(depths[i])])
            for i in range(4)])
        self.quantizers = nnx.List([
            VectorQuantizer(sizes[i], widths[i], decay=vq_decay, epsilon=vq_epsilon,
                            commitment_cost=commitment_cost, init=vq_init, rngs=rngs) if vq_on[i] else None
            for i in range(5)])

    from_config = classmethod(caps.speech_from_config)

    @property
    def capabilities(self) -> caps.Capabilities:
        """Frame map (16x), no attention; frame outputs "conv1", "layer1".."layer4" at the input rate;
        quantiser "quantK" (K = 1 after conv1, 2..5 after layer1..layer4) on clock 2^(K-1)."""
        return _map_capabilities(
            ["conv1", *(f"layer{i + 1}" for i in range(len(self.layers)))],
            [(f"quant{i + 1}", caps.FrameClock(2 ** i)) for i, q in enumerate(self.quantizers) if q is not None])

    def _position(self, i: int, h, mask, lengths, key, aux):
        """Quantiser i (0-based) then, at positions 0 and 1, jitter."""
        name = f"quant{i + 1}"
        if self.quantizers[i] is not None:
            aux["vq_inputs"][name] = (h, mask)
            h, stats = self.quantizers[i](h, mask)
            h = _zero_padding(h, mask)
            aux[name] = stats
            aux["vq_loss"] = aux["vq_loss"] + stats["commitment_loss"]
        if i < 2 and not self.deterministic and self.jitter > 0:
            if key is None:
                raise ValueError(
                    "ResDavenet: jitter is on in train mode, so pass key=jax.random.key(...) (a fresh key per "
                    "step), or call model.eval(), or build with jitter=0.")
            h = temporal_jitter(h, lengths, jax.random.fold_in(key, i), self.jitter, self.jitter_mode)
        return h

    def _stages(self, features: jax.Array, mask: jax.Array, key: jax.Array | None, aux: dict):
        """The forward pass, one stage at a time (filling `aux` as `encode` documents): yields
        ("conv1" | "layerK", frames after the position's quantiser, stride), then ("final", frames,
        frame mask) with `_final`'s mask."""
        _check_inputs(features, mask, self.in_features, "ResDavenet")
        lengths0 = jnp.sum(mask, axis=1).astype(jnp.int32)
        lengths = lengths0
        h = _zero_padding(features.astype(jnp.float32), mask)
        h = _zero_padding(jax.nn.relu(self.bn1(self.conv1(h), mask=mask[..., None])), mask)
        h = self._position(0, h, mask, lengths, key, aux)
        yield "conv1", h, 1
        for i, stage in enumerate(self.layers):
            for block in stage:
                h, lengths, mask = block(h, lengths)
            h = self._position(i + 1, h, mask, lengths, key, aux)
            yield f"layer{i + 1}", h, 2 ** (i + 1)
        yield ("final",) + _final(h, lengths0, self.length_rounding)

    def encode(self, features: jax.Array, mask: jax.Array, *, key: jax.Array | None = None
               ) -> tuple[jax.Array, jax.Array, dict]:
        """features [B, T, in] float, prefix mask [B, T] bool -> (frames [B, ceil(T/16), C] float32,
        frame mask bool, aux). aux: "vq_loss" (sum of enabled commitment losses, float32 scalar),
        "quantK" stats dicts (codes, commitment_loss, perplexity, usage) for enabled positions, and
        "vq_inputs": {"quantK": (pre-quantisation frames, their mask)} for `update_codebooks`."""
        aux = {"vq_loss": jnp.zeros((), jnp.float32), "vq_inputs": {}}
        *_, (_, frames, frame_mask) = self._stages(features, mask, key, aux)
        return frames, frame_mask, aux

    def __call__(self, features: jax.Array, mask: jax.Array, *, key: jax.Array | None = None
                 ) -> tuple[jax.Array, jax.Array]:
        """As `encode`, without aux: (frames [B, ceil(T/16), C] float32, frame mask [B, T'] bool)."""
        h, m, _ = self.encode(features, mask, key=key)
        return h, m

    def frame_outputs(self, features: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        """Every stage at the input rate (eval mode): features [B, T, in], prefix mask [B, T] bool ->
        {"conv1": [B, T, C0], "layer1".."layer4": [B, T, C_k] float32 (each stage's output after its
        quantiser, if on; layer k has stride 2^k, its frame j repeated over input frames
        [j 2^k, (j + 1) 2^k), zero at padding), "pooled": [B, C] as `pooled`, "mask": the input mask}."""
        _require_eval(self.bn1, "ResDavenet")
        if not self.deterministic:
            raise ValueError("ResDavenet.frame_outputs is eval-mode only (jitter is on); call model.eval() first.")
        aux = {"vq_loss": jnp.zeros((), jnp.float32), "vq_inputs": {}}
        return _frame_outputs(self._stages(features, mask, None, aux), mask)

    def pooled(self, features: jax.Array, mask: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        """L2-normalised masked mean of the frame map: [B, T, in], [B, T] -> [B, C] float32."""
        h, m = self(features, mask, key=key)
        return l2_normalize(mean_pool(h, m))

    def update_codebooks(self, aux: dict) -> None:
        """Apply the EMA update of every enabled quantiser from `encode`'s aux["vq_inputs"] (in place)."""
        for i, quantizer in enumerate(self.quantizers):
            name = f"quant{i + 1}"
            if quantizer is None:
                continue
            if name not in aux.get("vq_inputs", {}):
                raise ValueError(f"ResDavenet.update_codebooks: aux has no vq_inputs['{name}']; pass encode()'s aux.")
            quantizer.update(*aux["vq_inputs"][name])

