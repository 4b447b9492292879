"""DAVEnet (Harwath et al. 2018) on `spoken_shapes`: conv speech frames x image map, MISA matchmaps.

    python -m vgs_jax.main --config=configs/shapes_davenet.py --workdir=runs/shapes_davenet

The DAVEnet recipe of configs/places_davenet.py (log-mel 40 input BatchNorm, conv (40x1) then
convs 11/17/17/17 with max-pools, 16x downsampling; MISA similarity of frame map x image map;
sampled-impostor hinge, margin 1) with widths /4 (32..256 instead of 128..1024), the small pixel
CNN's 8 x 8 map instead of VGG16's 14 x 14, and Adam with warm-up + cosine instead of SGD so it
trains in minutes on 2 CPU cores. `:tiny` for tests.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False)
    config = configs.spoken_shapes_config(tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
    config.features.recipe = "davenet_logmel"
    config.model.speech_encoder = "davenet"
    config.model.speech = ml_collections.ConfigDict(
        dict(widths=(8, 8, 16, 16, 16) if arg.tiny else (32, 64, 128, 128, 256), length_rounding="ceil"))
    config.model.image_encoder = "conv_map"
    config.model.image = ml_collections.ConfigDict(dict(channels=(8, 16, 16) if arg.tiny else (32, 64, 128)))
    config.model.similarity = "MISA"
    config.loss.name = "sampled_impostor_hinge"
    config.loss.margin = 1.0
    return config
