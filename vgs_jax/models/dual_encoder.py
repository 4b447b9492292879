"""The dual encoder: a speech tower and an image tower mapped to one L2-normalised embedding space.

`build_dual_encoder` wires the towers from `config.model` (an `ml_collections.ConfigDict`):

    speech_encoder: str     key of SPEECH_ENCODERS, e.g. "platalea_gru"
    image_encoder: str      key of IMAGE_ENCODERS, "linear" or "conv"
    speech: dict of the chosen encoder's keyword arguments (platalea_gru: conv_channels,
            conv_kernel, conv_stride, conv_bias, hidden, num_layers, attention_hidden, mask_padding)
    image: dict(input_dim, channels)    input_dim is used by "linear", channels by "conv"
    temperature_init: float
    dtype: str (optional, default "float32")  compute dtype of the matmuls/convs, e.g. "bfloat16";
                                              parameters are always float32.
"""
import inspect
import math

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models.image_encoders import IMAGE_ENCODERS
from vgs_jax.models.recurrent_encoders import RHNSpeechEncoder
from vgs_jax.models.recurrent_encoders import Speech2ImageEncoder
from vgs_jax.models.speech_encoders import PlataleaSpeechEncoder
from vgs_jax.models.transformer_encoder import TransformerSpeechEncoder

# Speech encoders that pool to one vector per utterance, by config name.
SPEECH_ENCODERS = {
    "platalea_gru": PlataleaSpeechEncoder,
    "speech2image": Speech2ImageEncoder,
    "rhn": RHNSpeechEncoder,
    "transformer": TransformerSpeechEncoder,
}

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows of x [B, E] scaled to unit L2 norm (float32); an all-zero row stays zero."""
    x = x.astype(jnp.float32)
    sq = jnp.sum(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


class DualEncoder(nnx.Module):
    """Speech and image towers plus a learned log-temperature (a scalar `nnx.Param`)."""

    def __init__(self, speech_encoder: nnx.Module, image_encoder: nnx.Module, *,
                 temperature_init: float = 0.07):
        if not temperature_init > 0:
            raise ValueError(f"DualEncoder: temperature_init must be > 0, got {temperature_init}.")
        s_out = getattr(speech_encoder, "out_features", None)
        i_out = getattr(image_encoder, "out_features", None)
        if s_out != i_out:
            raise ValueError(
                f"DualEncoder: speech encoder out_features ({s_out}) != image encoder out_features ({i_out}); "
                "build the image encoder with the speech encoder's out_features.")
        self.speech_encoder = speech_encoder
        self.image_encoder = image_encoder
        self.embed_dim = s_out
        self.log_temperature = nnx.Param(jnp.asarray(math.log(temperature_init), jnp.float32))

    @property
    def temperature(self) -> jax.Array:
        """exp(log_temperature), a float32 scalar."""
        return jnp.exp(self.log_temperature[...])

    def embed_speech(self, features: jax.Array, mask: jax.Array) -> jax.Array:
        """features [B, T, F] float32, mask [B, T] bool -> [B, E] float32, unit L2 norm."""
        return l2_normalize(self.speech_encoder(features, mask))

    def embed_image(self, image: jax.Array) -> jax.Array:
        """image (precomputed [B, D] float or pixels [B, H, W, 3] uint8) -> [B, E] float32, unit L2 norm."""
        return l2_normalize(self.image_encoder(image))

    def __call__(self, features: jax.Array, mask: jax.Array, image: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns (z_speech [B, E], z_image [B', E]), both L2-normalised float32."""
        return self.embed_speech(features, mask), self.embed_image(image)


class Template:
    """A model split for functional training: structure + non-trainable state, and its params.

    `initial_params` is the pure dict of the model's `nnx.Param`s (what is trained,
    checkpointed and restored); everything else (e.g. RNG counters of dropout layers) stays in
    `rest`. `merge(params)` rebuilds the module, inside or outside `jax.jit`.
    """

    def __init__(self, model: nnx.Module):
        self.graphdef, params, self.rest = nnx.split(model, nnx.Param, ...)
        self.initial_params = nnx.to_pure_dict(params)

    def merge(self, params) -> nnx.Module:
        return nnx.merge(self.graphdef, params, self.rest)


def _field(cfg, name: str, where: str):
    try:
        return cfg[name]
    except (KeyError, AttributeError) as e:
        raise ValueError(f"build_dual_encoder: config.model{where} has no field '{name}'; add it.") from e


def _pick(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(
            f"build_dual_encoder: unknown config.model.{what} '{name}'; valid choices: {sorted(table)}.")
    return table[name]


def build_dual_encoder(model_config, *, num_features: int, rngs: nnx.Rngs) -> DualEncoder:
    """Build a DualEncoder from `config.model` (fields in the module docstring).

    Args:
      model_config: ConfigDict (or dict) with the fields listed in this module's docstring.
      num_features: feature dimension per speech frame (e.g. 39 for platalea MFCC).
      rngs: nnx.Rngs used for parameter initialisation.
    Raises:
      ValueError: unknown encoder name, unknown or missing field, or unknown dtype.
    """
    speech_cls = _pick(SPEECH_ENCODERS, _field(model_config, "speech_encoder", ""), "speech_encoder")
    image_cls = _pick(IMAGE_ENCODERS, _field(model_config, "image_encoder", ""), "image_encoder")
    dtype_name = model_config.get("dtype", "float32") if hasattr(model_config, "get") else "float32"
    dtype = _pick(COMPUTE_DTYPES, dtype_name, "dtype")

    speech_kwargs = dict(_field(model_config, "speech", ""))
    allowed = {n for n, p in inspect.signature(speech_cls.__init__).parameters.items()
               if p.kind == inspect.Parameter.KEYWORD_ONLY} - {"rngs", "dtype"}
    unknown = sorted(set(speech_kwargs) - allowed)
    if unknown:
        raise ValueError(
            f"build_dual_encoder: config.model.speech has fields {unknown} that {speech_cls.__name__} does not "
            f"take; valid fields: {sorted(allowed)}.")
    speech = speech_cls(num_features, **speech_kwargs, dtype=dtype, rngs=rngs)

    image_cfg = _field(model_config, "image", "")
    image = image_cls.from_config(image_cfg, speech.out_features, dtype=dtype, rngs=rngs)
    return DualEncoder(speech, image, temperature_init=float(_field(model_config, "temperature_init", "")))
