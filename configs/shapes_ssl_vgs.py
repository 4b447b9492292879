"""A small wav2vec 2.0-style encoder trained from scratch on `spoken_shapes` with the grounding loss only.

    python -m vgs_jax.main --config=configs/shapes_ssl_vgs.py --workdir=runs/shapes_ssl_vgs

Raw 16 kHz waveforms (`features.recipe="raw"`, lengths in samples: up to 81 920 = 5.12 s, as the other
shapes configs' 512 frames) -> `wav2vec2` encoder (`vgs_jax.models.ssl_speech_encoder`), sized to train on
2 CPU cores: the published conv stack's kernels and strides (20 ms frames) with 64 channels, a 128-wide
post-LN Transformer of 2 layers and 4 heads (feed-forward 256), the positional conv with kernel 32 and
8 groups, "group" feature norm, last layer, platalea's vectorial attention pooling, waveforms normalised
per utterance. Choices, stated: random init (no SSL checkpoint), nothing frozen, no SpecAugment or
LayerDrop, no self-supervised loss yet (the issue's masked-prediction / contrastive term is not
implemented). Loss, image CNN and schedule are the shapes family's (`configs.spoken_shapes_config`).
`:tiny` for tests.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False)
    config = configs.spoken_shapes_config(tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
    config.features.recipe = "raw"
    config.features.max_frames = 16000 if arg.tiny else 81920  # tiny: first second, one padded length
    config.features.bucket_boundaries = (16000,) if arg.tiny else (24000, 32000, 40000, 48000, 64000, 81920)
    config.model.speech_encoder = "wav2vec2"
    config.model.speech = ml_collections.ConfigDict(dict(
        size="custom",
        # tiny: 3 convs (stride 20) to compile and run in seconds
        conv_dim=(8,) * 3 if arg.tiny else (64,) * 7,
        conv_kernel=(10, 3, 2) if arg.tiny else (10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2) if arg.tiny else (5, 2, 2, 2, 2, 2, 2),
        conv_bias=False,
        feat_norm="group",
        hidden=16 if arg.tiny else 128,
        num_layers=1 if arg.tiny else 2,
        num_heads=2 if arg.tiny else 4,
        ff_dim=32 if arg.tiny else 256,
        layer_norm_first=False,
        pos_kernel=8 if arg.tiny else 32,
        pos_groups=2 if arg.tiny else 8,
        dropout=0.0,
        weights="",
        freeze="none",
        layers="last",
        pooling="vectorial",
        attention_hidden=8 if arg.tiny else 64,
        normalize_waveform=True,
    ))
    return config
