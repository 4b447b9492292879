"""ResDAVEnet and ResDAVEnet-VQ speech encoders (anchor §3.2): residual conv stages with optional
vector quantisers after each stage.

Lengths, padding invariance, train/eval and per-layer frame outputs: `conv_map_layers`.
"""
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import capabilities as caps
from vgs_jax.models import conv_map_layers as layers
from vgs_jax.models import remat as remat_lib
from vgs_jax.models.pooling import mean_pool
from vgs_jax.models.vq import VectorQuantizer
from vgs_jax.objectives.similarity import l2_normalize

class BasicBlock(nnx.Module):
    """ResDAVEnet `SpeechBasicBlock`: conv(k, stride) BN ReLU conv(k) BN + shortcut, ReLU; no conv bias."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel: int, *, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        pad = ((kernel // 2, kernel // 2),)
        self.stride = stride
        self.conv1 = nnx.Conv(in_channels, out_channels, kernel_size=(kernel,), strides=(stride,), padding=pad,
                              use_bias=False, kernel_init=layers.he_normal_fan_out(kernel * out_channels), dtype=dtype,
                              rngs=rngs)
        self.bn1 = layers.batch_norm(out_channels, rngs)
        self.conv2 = nnx.Conv(out_channels, out_channels, kernel_size=(kernel,), padding=pad, use_bias=False,
                              kernel_init=layers.he_normal_fan_out(kernel * out_channels), dtype=dtype, rngs=rngs)
        self.bn2 = layers.batch_norm(out_channels, rngs)
        if stride != 1 or in_channels != out_channels:
            self.shortcut_conv = nnx.Conv(in_channels, out_channels, kernel_size=(1,), strides=(stride,),
                                          padding="VALID", use_bias=False,
                                          kernel_init=layers.he_normal_fan_out(out_channels), dtype=dtype, rngs=rngs)
            self.shortcut_bn = layers.batch_norm(out_channels, rngs)
        else:
            self.shortcut_conv = None
            self.shortcut_bn = None

    def __call__(self, h: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """h [B, T, in] (zero at padding), lengths [B] -> (out [B, T', out], lengths', mask' [B, T'])."""
        if self.stride != 1:
            lengths = layers.downsampled_lengths(lengths, 1) if self.stride == 2 else -(-lengths // self.stride)
        y = self.conv1(h)
        mask = layers.lengths_to_mask(lengths, y.shape[1])
        bn_mask = mask[..., None]
        y = layers.zero_padding(jax.nn.relu(self.bn1(y, mask=bn_mask)), mask)
        y = self.bn2(self.conv2(y), mask=bn_mask)
        if self.shortcut_conv is not None:
            short = self.shortcut_bn(self.shortcut_conv(h), mask=bn_mask)
        else:
            short = h
        return layers.zero_padding(jax.nn.relu(y + short), mask), lengths, mask


class ResDavenet(nnx.Module):
    """ResDAVEnet(-VQ): conv1 (40x1, no bias) BN ReLU, four stages of `depths` basic blocks.

    `widths` = (conv1, layer1..layer4); the first block of each stage has stride 2. `vq_on` enables
    quantisers quant1..quant5 (after conv1, layer1..layer4; e.g. (False, True, True, False, False)
    is ResDAVEnet-VQ "{2,3}"), each with `codebook_size` codes (int or one per position).
    Temporal jitter (probability `jitter`, `jitter_mode` as in `layers.temporal_jitter`) follows positions
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
                 length_rounding: str = "ceil", remat: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
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
        self.remat = remat
        self.deterministic = False
        self.conv1 = nnx.Conv(in_features, widths[0], kernel_size=(1,), padding="VALID", use_bias=False,
                              kernel_init=layers.he_normal_fan_out(in_features * widths[0]), dtype=dtype, rngs=rngs)
        self.bn1 = layers.batch_norm(widths[0], rngs)
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
        return layers.map_capabilities(
            ["conv1", *(f"layer{i + 1}" for i in range(len(self.layers)))],
            [(f"quant{i + 1}", caps.FrameClock(2 ** i)) for i, q in enumerate(self.quantizers) if q is not None])

    def _position(self, i: int, h, mask, lengths, key, aux):
        """Quantiser i (0-based) then, at positions 0 and 1, jitter."""
        name = f"quant{i + 1}"
        if self.quantizers[i] is not None:
            aux["vq_inputs"][name] = (h, mask)
            h, stats = self.quantizers[i](h, mask)
            h = layers.zero_padding(h, mask)
            aux[name] = stats
            aux["vq_loss"] = aux["vq_loss"] + stats["commitment_loss"]
        if i < 2 and not self.deterministic and self.jitter > 0:
            if key is None:
                raise ValueError(
                    "ResDavenet: jitter is on in train mode, so pass key=jax.random.key(...) (a fresh key per "
                    "step), or call model.eval(), or build with jitter=0.")
            h = layers.temporal_jitter(h, lengths, jax.random.fold_in(key, i), self.jitter, self.jitter_mode)
        return h

    def _stages(self, features: jax.Array, mask: jax.Array, key: jax.Array | None, aux: dict):
        """The forward pass, one stage at a time (filling `aux` as `encode` documents): yields
        ("conv1" | "layerK", frames after the position's quantiser, stride), then ("final", frames,
        frame mask) with `layers.final_map`'s mask."""
        layers.check_inputs(features, mask, self.in_features, "ResDavenet")
        lengths0 = jnp.sum(mask, axis=1).astype(jnp.int32)
        lengths = lengths0
        h = layers.zero_padding(features.astype(jnp.float32), mask)
        h = layers.zero_padding(jax.nn.relu(self.bn1(self.conv1(h), mask=mask[..., None])), mask)
        h = self._position(0, h, mask, lengths, key, aux)
        yield "conv1", h, 1
        for i, stage in enumerate(self.layers):
            for block in stage:
                h, lengths, mask = remat_lib.call(block, h, lengths, enabled=self.remat)
            h = self._position(i + 1, h, mask, lengths, key, aux)
            yield f"layer{i + 1}", h, 2 ** (i + 1)
        yield ("final",) + layers.final_map(h, lengths0, self.length_rounding)

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
        layers.require_eval(self.bn1, "ResDavenet")
        if not self.deterministic:
            raise ValueError("ResDavenet.frame_outputs is eval-mode only (jitter is on); call model.eval() first.")
        aux = {"vq_loss": jnp.zeros((), jnp.float32), "vq_inputs": {}}
        return layers.frame_outputs_from_stages(self._stages(features, mask, None, aux), mask)

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
