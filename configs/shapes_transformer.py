"""platalea's Transformer speech encoder on `spoken_shapes`.

    python -m vgs_jax.main --config=configs/shapes_transformer.py --workdir=runs/shapes_transformer

Conv1D -> linear to d_model -> post-norm Transformer layers with a padding mask and no
positional encoding (as platalea's `SpeechEncoderTransformer`) -> vectorial attention
pooling. platalea uses d_model 512, 4 layers, 8 heads; here 128, 2 layers, 4 heads to train in
minutes on 2 CPU cores. `:tiny` for tests.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False)
    config = configs.spoken_shapes_config(tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
    config.model.speech_encoder = "transformer"
    config.model.speech = ml_collections.ConfigDict(
        dict(
            conv_channels=64,
            conv_kernel=6,
            conv_stride=3,
            conv_bias=False,
            d_model=16 if arg.tiny else 128,
            num_heads=2 if arg.tiny else 4,
            num_layers=1 if arg.tiny else 2,
            ff_dim=32 if arg.tiny else 256,
            dropout=0.0,  # platalea: 0 (dropout > 0 draws fresh masks every step)
            attention_hidden=8 if arg.tiny else 64,
            positions="none",
            mask_padding=True,
        )
    )
    return config
