"""The encoders by config name: one registry per tower, one construction convention.

`config.model.speech_encoder` / `config.model.image_encoder` name a class here; every class is
built by `cls.from_config(sub_config, size, dtype=..., rngs=...)` from `config.model.speech`
(size = input features per frame) or `config.model.image` (size = the speech tower's
out_features), and declares what it outputs in `capabilities` (`models.capabilities`).
"""

import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import image_trunks
from vgs_jax.models.davenet import Davenet
from vgs_jax.models.kws_cnn import KamperCNN
from vgs_jax.models.hg2017 import HG2017SpeechEncoder
from vgs_jax.models.resdavenet import ResDavenet
from vgs_jax.models.image_encoders import ConvImageEncoder, ConvMapImageEncoder, LinearImageEncoder
from vgs_jax.models.conv_rnn_encoders import PlataleaSpeechEncoder, Speech2ImageEncoder
from vgs_jax.models.recurrent_encoders import RHNSpeechEncoder
from vgs_jax.models.transformer_encoder import TransformerSpeechEncoder
from vgs_jax.models.ssl_speech_encoder import SSLSpeechEncoder
from vgs_jax.video.encoders import FrameEncoder, VideoEncoder

SPEECH_ENCODERS = {
    "platalea_gru": PlataleaSpeechEncoder,
    "speech2image": Speech2ImageEncoder,
    "rhn": RHNSpeechEncoder,
    "transformer": TransformerSpeechEncoder,
    "davenet": Davenet,
    "resdavenet": ResDavenet,
    "wav2vec2": SSLSpeechEncoder,
    "hubert": SSLSpeechEncoder,
    "kamper_cnn": KamperCNN,
    "hg2017": HG2017SpeechEncoder,
}
IMAGE_ENCODERS = {
    "linear": LinearImageEncoder,
    "conv": ConvImageEncoder,
    "conv_map": ConvMapImageEncoder,
    "vgg16": image_trunks.VGG16Trunk,
    "resnet50": image_trunks.ResNet50Trunk,
    "frame_conv": FrameEncoder,  # moving_shapes still frames (vgs_jax/video)
    "video_3d2d": VideoEncoder,  # moving_shapes videos, AVLNet-style (vgs_jax/video)
}


def lookup(table: dict, name: str, what: str):
    """table[name]; an unknown name raises ValueError listing the valid choices of config.model.`what`."""
    if name not in table:
        raise ValueError(
            f"build_dual_encoder: unknown config.model.{what} '{name}'; valid choices: {sorted(table)}.")
    return table[name]


def build_speech_encoder(name: str, speech_config, num_features: int, *, dtype=jnp.float32,
                         rngs: nnx.Rngs, remat: bool = False) -> nnx.Module:
    """SPEECH_ENCODERS[name] built from `config.model.speech` for `num_features` features per frame;
    `remat` (config.model.remat) adds the field remat=True, which the encoder must take."""
    if remat:
        speech_config = {**dict(speech_config or {}), "remat": True}
    return lookup(SPEECH_ENCODERS, name, "speech_encoder").from_config(speech_config, num_features, dtype=dtype,
                                                                       rngs=rngs)


def build_image_encoder(name: str, image_config, out_features: int, *, dtype=jnp.float32,
                        rngs: nnx.Rngs, remat: bool = False) -> nnx.Module:
    """IMAGE_ENCODERS[name] built from `config.model.image` with `out_features` channels; `remat`
    (config.model.remat) adds the field remat=True (towers without inner layers, e.g. "linear", ignore it)."""
    if remat:
        image_config = {**dict(image_config or {}), "remat": True}
    return lookup(IMAGE_ENCODERS, name, "image_encoder").from_config(image_config, out_features, dtype=dtype,
                                                                     rngs=rngs)
