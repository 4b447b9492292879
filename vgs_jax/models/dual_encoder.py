"""The dual encoder: a speech tower and an image tower mapped to one embedding space.

`build_dual_encoder` wires the towers from `config.model` (an `ml_collections.ConfigDict`):

    speech_encoder: str     key of registry.SPEECH_ENCODERS, e.g. "platalea_gru", "davenet", "resdavenet"
    image_encoder: str      key of registry.IMAGE_ENCODERS: "linear", "conv", "conv_map", "vgg16", "resnet50"
    speech: dict of the chosen speech encoder's keyword arguments (e.g. platalea_gru: conv_channels,
            conv_kernel, conv_stride, conv_bias, hidden, num_layers, attention_hidden, mask_padding)
    image: dict of the image encoder's fields (linear: input_dim; conv/conv_map: channels;
           vgg16/resnet50: freeze_trunk, optional `weights` = path of a torchvision .pth/.npz file)
    similarity: str (optional, default "cosine")  see `vgs_jax.objectives.similarity.SIMILARITIES`
    temperature_init: float
    logit_bias_init: float or None (optional)  a learned logit bias (SigLIP's b, init -10) when set
    dtype: str (optional, default "float32")  compute dtype of the matmuls/convs, e.g. "bfloat16";
                                              parameters are always float32.
    text: dict (optional)  auxiliary text tasks (CTC head, text encoder): see `models.text_heads`.

Towers come in two kinds, as each declares (`encoder.capabilities.output`, see
`models.capabilities`). Pooling towers return one vector per utterance / image. Frame-map towers
return a map with its mask; their embedding is the L2-normalised masked mean of the map, and
matchmap similarities use the map. The model owns its similarity (`model.similarity`, checked
against the towers when it is built); evaluation and analysis ask the model for it.
"""
import math

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import registry
from vgs_jax.models import weight_conversion
from vgs_jax.models.pooling import mean_pool
from vgs_jax.models.vq import VQState
from vgs_jax.objectives import similarity as similarity_lib
from vgs_jax.objectives.similarity import l2_normalize

_WEIGHT_CONVERTERS = {"vgg16": weight_conversion.convert_vgg16, "resnet50": weight_conversion.convert_resnet50}

# Non-gradient model state carried through training and checkpointed: BatchNorm running
# statistics and VQ codebooks with their EMA statistics.
MODEL_STATE = (nnx.BatchStat, VQState)

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def speech_outputs(encoder: nnx.Module, features: jax.Array, mask: jax.Array, *, key: jax.Array | None = None) -> dict:
    """`DualEncoder.encode_speech`'s dict from the speech tower `encoder` (also used by the towers of
    `vgs_jax.multilingual.model`)."""
    if not encoder.capabilities.has_map:
        logits = encoder(features, mask)
        return {"embedding": l2_normalize(logits), "logits": logits}
    frames, frame_mask, aux = encoder.encode(features, mask, key=key)
    stats = {k: v for k, v in aux.items() if k.startswith("quant")}
    return {"embedding": l2_normalize(mean_pool(frames, frame_mask)), "map": frames, "map_mask": frame_mask,
            "vq_loss": aux["vq_loss"], "vq_inputs": aux["vq_inputs"], "vq_stats": stats}


class DualEncoder(nnx.Module):
    """Speech and image towers, their caption x image similarity (a name of
    `similarity.SIMILARITIES`), a learned log-temperature and optionally a learned logit bias.
    Whether a tower yields a map comes from its declared `capabilities`."""

    def __init__(self, speech_encoder: nnx.Module, image_encoder: nnx.Module, *, similarity: str = "cosine",
                 temperature_init: float = 0.07, logit_bias_init: float | None = None):
        if not temperature_init > 0:
            raise ValueError(f"DualEncoder: temperature_init must be > 0, got {temperature_init}.")
        s_out = getattr(speech_encoder, "out_features", None)
        i_out = getattr(image_encoder, "out_features", None)
        if s_out != i_out:
            raise ValueError(
                f"DualEncoder: speech encoder out_features ({s_out}) != image encoder out_features ({i_out}); "
                "build the image encoder with the speech encoder's out_features.")
        similarity_lib.check_similarity(similarity, speech_has_map=speech_encoder.capabilities.has_map,
                                        image_has_map=image_encoder.capabilities.has_map)
        self.speech_encoder = speech_encoder
        self.image_encoder = image_encoder
        self.similarity = similarity
        self.embed_dim = s_out
        self.log_temperature = nnx.Param(jnp.asarray(math.log(temperature_init), jnp.float32))
        self.logit_bias = (None if logit_bias_init is None
                           else nnx.Param(jnp.asarray(logit_bias_init, jnp.float32)))

    @property
    def speech_has_map(self) -> bool:
        return self.speech_encoder.capabilities.has_map

    @property
    def image_has_map(self) -> bool:
        return self.image_encoder.capabilities.has_map

    @property
    def temperature(self) -> jax.Array:
        """exp(log_temperature), a float32 scalar."""
        return jnp.exp(self.log_temperature[...])

    def encode_speech(self, features: jax.Array, mask: jax.Array, *, key: jax.Array | None = None) -> dict:
        """features [B, T, F] float32, mask [B, T] bool -> dict:
        "embedding" [B, E] float32 unit norm; pooling towers add "logits" [B, E], the tower's output before
        normalisation (keyword logits of `models.kws_cnn`); frame-map towers add "map" [B, T', E], "map_mask" [B, T']
        bool, "vq_loss" (float32 scalar, 0 without quantisers), "vq_inputs" (for `update_codebooks`)
        and "vq_stats" {"quantK": {perplexity, usage, ...}}. `key` drives ResDAVEnet's jitter."""
        return speech_outputs(self.speech_encoder, features, mask, key=key)

    def encode_image(self, image: jax.Array, example_mask: jax.Array | None = None) -> dict:
        """image (precomputed [B, D] float or pixels [B, H, W, 3] uint8) -> dict: "embedding" [B, E]
        float32 unit norm; pooling towers add "logits" [B, E] (before normalisation); frame-map towers add "map" [B, h, w, E] and "map_mask" [B, h, w] bool.
        `example_mask` [B] bool (False = padding row): in train mode the image tower's BatchNorm
        statistics come from the True rows only (None: all rows)."""
        if not self.image_has_map:
            logits = self.image_encoder(image, example_mask)
            return {"embedding": l2_normalize(logits), "logits": logits}
        fmap, fmask = self.image_encoder(image, example_mask)
        b, h, w, e = fmap.shape
        pooled = mean_pool(fmap.reshape(b, h * w, e), fmask.reshape(b, h * w))
        return {"embedding": l2_normalize(pooled), "map": fmap, "map_mask": fmask}

    def update_codebooks(self, speech_outputs: dict) -> None:
        """EMA update of the speech tower's VQ codebooks from `encode_speech`'s outputs (in place;
        a no-op without quantisers). Frames pass through stop_gradient."""
        inputs = speech_outputs.get("vq_inputs")
        if inputs:
            self.speech_encoder.update_codebooks({"vq_inputs": jax.lax.stop_gradient(inputs)})

    def embed_speech(self, features: jax.Array, mask: jax.Array) -> jax.Array:
        """features [B, T, F] float32, mask [B, T] bool -> [B, E] float32, unit L2 norm."""
        return self.encode_speech(features, mask)["embedding"]

    def embed_image(self, image: jax.Array) -> jax.Array:
        """image (precomputed [B, D] float or pixels [B, H, W, 3] uint8) -> [B, E] float32, unit L2 norm."""
        return self.encode_image(image)["embedding"]

    def __call__(self, features: jax.Array, mask: jax.Array, image: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns (z_speech [B, E], z_image [B', E]), both L2-normalised float32."""
        return self.embed_speech(features, mask), self.embed_image(image)


def merge_model(graphdef: nnx.GraphDef, params, model_state, rest, *, train: bool = False) -> nnx.Module:
    """The module of `graphdef` (static: hashable, a jit cache key) with pure-dict `params`,
    `model_state` and `rest`, inside or outside `jax.jit`; in eval mode (BatchNorm running
    averages, no jitter or dropout) unless `train`."""
    model = nnx.merge(graphdef, params, model_state, rest)
    if train:
        model.train()
    else:
        model.eval()
    return model


class Template:
    """A model split for functional training: structure, params, model state and the rest.

    `initial_params` is the pure dict of the model's `nnx.Param`s (what is trained); its
    `initial_model_state` the pure dict of MODEL_STATE variables (BatchNorm statistics, VQ
    codebooks: updated by the train step, not by gradients). Both are checkpointed. Everything
    else (e.g. the RNG streams of dropout layers) stays in `rest`. What the built model declares
    is kept beside: `speech_capabilities`, `image_capabilities` (`models.capabilities`) and
    `similarity`, so callers ask the template, never the config.
    """

    def __init__(self, model: DualEncoder):
        self.speech_capabilities = model.speech_encoder.capabilities
        self.image_capabilities = model.image_encoder.capabilities
        self.similarity = model.similarity
        self.graphdef, params, model_state, rest = nnx.split(model, nnx.Param, MODEL_STATE, ...)
        self.rest = nnx.to_pure_dict(rest)  # pure values: each merge makes fresh Variables (jit-safe)
        self.initial_params = nnx.to_pure_dict(params)
        self.initial_model_state = nnx.to_pure_dict(model_state)
        self.model_state = self.initial_model_state  # what `merge` uses by default

    def merge(self, params, model_state=None, *, train: bool = False) -> nnx.Module:
        """The module with `params` and `model_state` (default: `self.model_state`), inside or outside
        `jax.jit`; in eval mode (BatchNorm running averages, no jitter or dropout) unless `train`."""
        state = self.model_state if model_state is None else model_state
        return merge_model(self.graphdef, params, state, self.rest, train=train)

    @staticmethod
    def model_state_of(model: nnx.Module) -> dict:
        """The pure dict of `model`'s MODEL_STATE variables (e.g. after a train-mode forward pass)."""
        return nnx.to_pure_dict(nnx.state(model, MODEL_STATE))

    def with_model_state(self, model_state) -> "Template":
        """A copy whose `merge` defaults to `model_state` (e.g. a checkpoint's BatchNorm statistics)."""
        other = object.__new__(Template)
        other.__dict__.update(self.__dict__)
        other.model_state = model_state
        return other


def _field(cfg, name: str, where: str):
    try:
        return cfg[name]
    except (KeyError, AttributeError) as e:
        raise ValueError(f"build_dual_encoder: config.model{where} has no field '{name}'; add it.") from e


def load_image_weights(image_encoder: nnx.Module, name: str, path: str) -> None:
    """Writes torchvision weights from `path` (.pth or .npz) into an image trunk (in place).

    Raises ValueError for encoders without a converter, FileNotFoundError naming a missing file.
    """
    if name not in _WEIGHT_CONVERTERS:
        raise ValueError(
            f"config.model.image.weights is set, but image_encoder {name!r} has no pretrained-weight "
            f"converter; use one of {sorted(_WEIGHT_CONVERTERS)} or clear the field.")
    state_dict = weight_conversion.load_torchvision_state_dict(path)
    weight_conversion.apply_converted(image_encoder, _WEIGHT_CONVERTERS[name](state_dict))


def build_dual_encoder(model_config, *, num_features: int, rngs: nnx.Rngs) -> DualEncoder:
    """Build a DualEncoder from `config.model` (fields in the module docstring).

    Args:
      model_config: ConfigDict (or dict) with the fields listed in this module's docstring.
      num_features: feature dimension per speech frame (e.g. 39 for platalea MFCC).
      rngs: nnx.Rngs used for parameter initialisation.
    Raises:
      ValueError: unknown encoder name, unknown or missing field, unknown dtype or similarity, or a
        similarity the towers cannot compute.
    """
    def optional(name, default):
        return model_config.get(name, default) if hasattr(model_config, "get") else default

    speech_name = _field(model_config, "speech_encoder", "")
    image_name = _field(model_config, "image_encoder", "")
    registry.lookup(registry.SPEECH_ENCODERS, speech_name, "speech_encoder")
    registry.lookup(registry.IMAGE_ENCODERS, image_name, "image_encoder")
    dtype = registry.lookup(COMPUTE_DTYPES, optional("dtype", "float32"), "dtype")
    similarity = optional("similarity", "cosine")

    remat = bool(optional("remat", False))
    speech = registry.build_speech_encoder(speech_name, _field(model_config, "speech", ""), num_features,
                                           dtype=dtype, rngs=rngs, remat=remat)
    image_cfg = _field(model_config, "image", "")
    image = registry.build_image_encoder(image_name, image_cfg, speech.out_features, dtype=dtype, rngs=rngs,
                                         remat=remat)
    weights = image_cfg.get("weights", "") if hasattr(image_cfg, "get") else ""
    if weights:
        load_image_weights(image, image_name, weights)
    dual_kwargs = dict(similarity=similarity, temperature_init=float(_field(model_config, "temperature_init", "")),
                       logit_bias_init=optional("logit_bias_init", None))
    if optional("text", None):  # auxiliary text tasks: CTC head, text encoder (models/text_heads.py)
        from vgs_jax.models import text_heads  # pylint: disable=import-outside-toplevel (it imports this module)
        return text_heads.from_config(speech, image, model_config.text, num_features=num_features, dtype=dtype,
                                      rngs=rngs, **dual_kwargs)
    return DualEncoder(speech, image, **dual_kwargs)
