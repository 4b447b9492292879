"""Conv + bidirectional RNN + vectorial attention speech encoders: platalea and speech2image.

`ConvRNNSpeechEncoder` is Conv1d -> stacked BiGRU or BiLSTM -> vectorial attention pooling. Two
presets keep their registry names, config fields and parameter paths:
- `PlataleaSpeechEncoder` ("platalea_gru", anchor §1.4): platalea's `SpeechEncoder`, conv without
  bias, BiGRU stack under `grus`, frame outputs "gru_0"...
- `Speech2ImageEncoder` ("speech2image", Merkx et al. 2019): conv with bias (Interspeech19 branch),
  BiGRU (Interspeech19) or BiLSTM (master) under `rnns`, frame outputs "rnn_0"...
The recurrent layers live in `recurrent_layers`; `Conv1dFrontEnd` here is shared by every
conv-front-end encoder (RHN, Transformer). All masks are prefix masks [B, T] (valid frames first).
"""
import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import capabilities as caps
from vgs_jax.models import remat as remat_lib
from vgs_jax.models.pooling import VectorialAttentionPooling, torch_uniform_init
from vgs_jax.models.recurrent_layers import BiGRU, BiLSTM, check_x_mask, conv_output_lengths


class Conv1dFrontEnd(nnx.Module):
    """Platalea's Conv1d front end (39 -> 64, kernel 6, stride 2, VALID, no bias, no activation)."""

    def __init__(self, in_features: int, out_features: int = 64, kernel: int = 6, stride: int = 2, *,
                 use_bias: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        if min(in_features, out_features, kernel, stride) <= 0:
            raise ValueError(
                f"Conv1dFrontEnd: in_features={in_features}, out_features={out_features}, kernel={kernel}, "
                f"stride={stride} must all be positive.")
        self.in_features = in_features
        self.out_features = out_features
        self.kernel = kernel
        self.stride = stride
        fan_in = in_features * kernel
        self.conv = nnx.Conv(in_features, out_features, kernel_size=(kernel,), strides=(stride,),
                             padding="VALID", use_bias=use_bias, dtype=dtype,
                             kernel_init=torch_uniform_init(fan_in), bias_init=torch_uniform_init(fan_in),
                             rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x [B, T, in] float, prefix mask [B, T] bool -> (y [B, T', out], mask' [B, T'] bool).

        T' = floor((T - kernel) / stride) + 1. A valid output frame only sees valid input frames.
        """
        check_x_mask(x, mask, "Conv1dFrontEnd", self.in_features)
        if x.shape[1] < self.kernel:
            raise ValueError(
                f"Conv1dFrontEnd: the batch has {x.shape[1]} frames, fewer than the conv kernel "
                f"({self.kernel}); pad the batch to at least {self.kernel} frames.")
        y = self.conv(x)
        lengths = conv_output_lengths(jnp.sum(mask, axis=1), self.kernel, self.stride)
        new_mask = jnp.arange(y.shape[1])[None, :] < lengths[:, None]
        return y, new_mask


def conv_front_end_capabilities(conv: Conv1dFrontEnd, layers, attention: str) -> caps.Capabilities:
    """A pooled encoder whose `frame_outputs` are "conv" then `layers`, all on the conv's frame clock."""
    return caps.Capabilities(output=caps.POOLED, frame_outputs=("conv", *layers),
                             frame_clock=caps.FrameClock(conv.stride, conv.kernel), attention=attention)



class ConvRNNSpeechEncoder(nnx.Module):
    """Conv1d -> stacked BiGRU (`rnn="gru"`) or BiLSTM (`rnn="lstm"`) -> vectorial attention pooling.

    `__call__` returns the pooled [B, 2*hidden] vector, not L2-normalised (the dual encoder does that).
    `dtype` is the compute dtype of the matmuls (params stay float32; accumulation is float32).
    `mask_padding=True` (default) makes an utterance's embedding independent of its batch's padding;
    `mask_padding=False` reproduces the references' unmasked pooling, which matches them only when
    the batch is padded to its longest utterance, as they pad (the conv output length follows the
    padded length).

    Subclasses name the attribute holding the RNN stack (`_STACK`, part of the parameter paths) and
    the prefix of its frame outputs (`_PREFIX`).
    """

    _STACK = "rnns"
    _PREFIX = "rnn"

    def __init__(self, in_features: int, *, rnn: str = "gru", conv_bias: bool = True,
                 conv_channels: int = 64, conv_kernel: int = 6, conv_stride: int = 2, hidden: int = 1024,
                 num_layers: int = 4, attention_hidden: int = 128, mask_padding: bool = True,
                 remat: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        name = type(self).__name__
        layer_types = {"gru": BiGRU, "lstm": BiLSTM}
        if rnn not in layer_types:
            raise ValueError(f"{name}: rnn={rnn!r}; use 'gru' (platalea, speech2image Interspeech19) or "
                             "'lstm' (speech2image master).")
        if num_layers < 1 or hidden <= 0:
            raise ValueError(f"{name}: num_layers ({num_layers}) and hidden ({hidden}) must be >= 1.")
        self.in_features = in_features
        self.out_features = 2 * hidden
        self.rnn_type = rnn
        self.remat = remat
        self.conv = Conv1dFrontEnd(in_features, conv_channels, conv_kernel, conv_stride, use_bias=conv_bias,
                                   dtype=dtype, rngs=rngs)
        setattr(self, self._STACK, nnx.List([
            layer_types[rnn](conv_channels if i == 0 else 2 * hidden, hidden, dtype=dtype, rngs=rngs)
            for i in range(num_layers)]))
        self.pool = VectorialAttentionPooling(2 * hidden, attention_hidden, mask_padding=mask_padding,
                                              dtype=dtype, rngs=rngs)

    from_config = classmethod(caps.speech_from_config)

    @property
    def _layers(self) -> nnx.List:
        return getattr(self, self._STACK)

    @property
    def capabilities(self) -> caps.Capabilities:
        """Pooled, vectorial attention; frame outputs "conv", "<prefix>_0".. on the conv's clock."""
        return conv_front_end_capabilities(
            self.conv, [f"{self._PREFIX}_{i}" for i in range(len(self._layers))], "vectorial")

    def frame_outputs(self, features: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        """Per-layer activations for analysis.

        Args:
          features: [B, T, in_features] float32; mask: [B, T] bool prefix mask.
        Returns:
          dict with "conv" [B, T', conv_channels], "<prefix>_0" ... "<prefix>_{L-1}" [B, T', 2*hidden]
          (zero at padding), "pooled" [B, 2*hidden] and "mask" [B, T'] bool (the frame mask after
          the conv).
        """
        h, m = self.conv(features, mask)
        out = {"conv": h}
        for i, layer in enumerate(self._layers):
            h = remat_lib.call(layer, h, m, enabled=self.remat)
            out[f"{self._PREFIX}_{i}"] = h
        out["pooled"] = self.pool(h, m)
        out["mask"] = m
        return out

    def __call__(self, features: jax.Array, mask: jax.Array) -> jax.Array:
        """features [B, T, in_features] float32, prefix mask [B, T] bool -> [B, 2*hidden] float32."""
        return self.frame_outputs(features, mask)["pooled"]


class PlataleaSpeechEncoder(ConvRNNSpeechEncoder):
    """platalea `SpeechEncoder` ("platalea_gru"): Conv1d without bias -> BiGRU stack (`grus`, frame
    outputs "gru_0"..) -> vectorial attention. Config fields are those of `ConvRNNSpeechEncoder`
    except `rnn` (always "gru")."""

    _STACK = "grus"
    _PREFIX = "gru"

    def __init__(self, in_features: int, *, conv_channels: int = 64, conv_kernel: int = 6,
                 conv_stride: int = 2, conv_bias: bool = False, hidden: int = 1024, num_layers: int = 4,
                 attention_hidden: int = 128, mask_padding: bool = True, remat: bool = False,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        super().__init__(in_features, rnn="gru", conv_bias=conv_bias, conv_channels=conv_channels,
                         conv_kernel=conv_kernel, conv_stride=conv_stride, hidden=hidden,
                         num_layers=num_layers, attention_hidden=attention_hidden,
                         mask_padding=mask_padding, remat=remat, dtype=dtype, rngs=rngs)


class Speech2ImageEncoder(ConvRNNSpeechEncoder):
    """speech2image ("speech2image"): Conv1d with bias -> BiGRU ("gru", Interspeech19) or BiLSTM
    ("lstm", master) stack (`rnns`, frame outputs "rnn_0"..) -> vectorial attention; the defaults of
    `ConvRNNSpeechEncoder`."""
