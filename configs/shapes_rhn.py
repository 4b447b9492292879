"""Recurrent highway network encoder (Chrupała, Gelderloos, Alishahi 2017) on `spoken_shapes`.

    python -m vgs_jax.main --config=configs/shapes_rhn.py --workdir=runs/shapes_rhn

Strided Conv1D -> residual RHN layers with 2 micro-steps -> scalar attention pooling
(vgs_jax/models/recurrent_encoders.py); the reference uses 4 layers of 1024, here 2 of 256 to
train in minutes on 2 CPU cores. `:tiny` for tests.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False)
    config = configs.spoken_shapes_config(tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
    config.model.speech_encoder = "rhn"
    config.model.speech = ml_collections.ConfigDict(
        dict(
            conv_channels=64,
            conv_kernel=6,
            conv_stride=3,  # the reference uses 2; 3 is faster on CPU
            hidden=16 if arg.tiny else 256,
            num_layers=1 if arg.tiny else 2,
            depth=2,  # RHN micro-steps per time step (reference: 2)
            attention_hidden=8 if arg.tiny else 64,
            residual=True,
            mask_padding=True,
        )
    )
    return config
