"""speech2image's encoder (Merkx, Frank, Ernestus 2019) sized for `spoken_shapes` on CPU.

    python -m vgs_jax.main --config=configs/shapes_speech2image.py --workdir=runs/shapes_speech2image

The Interspeech19 encoder (reference notes §4.3): Conv1D with bias -> stacked BiGRU ->
vectorial attention pooling; `:lstm` selects the later master branch's LSTM. Sizes shrunk
(128 per direction, 2 layers) to train in minutes on 2 CPU cores; `:tiny` for tests.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False, lstm=False)
    config = configs.spoken_shapes_config(tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
    config.model.speech_encoder = "speech2image"
    config.model.speech = ml_collections.ConfigDict(
        dict(
            rnn="lstm" if arg.lstm else "gru",  # Interspeech19: GRU; master branch: LSTM
            conv_bias=True,  # the Interspeech19 conv has a bias (reference notes §4.3)
            conv_channels=64,
            conv_kernel=6,
            conv_stride=3,  # the reference uses 2; 3 is 1.4x faster on CPU
            hidden=16 if arg.tiny else 128,
            num_layers=1 if arg.tiny else 2,
            attention_hidden=8 if arg.tiny else 64,
            mask_padding=True,
        )
    )
    return config
