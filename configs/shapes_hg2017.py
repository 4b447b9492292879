"""Harwath & Glass (2017)'s convolutional speech encoder (survey Table 3) on `spoken_shapes`.

    python -m vgs_jax.main --config=configs/shapes_hg2017.py --workdir=runs/shapes_hg2017

The encoder is Table 3's (`vgs_jax/models/hg2017.py`: conv 1x40 128, conv 11 256, three max-pools
3/2 between convs 17 of 512, 512, 1024, mean pool over time, L2 norm) on 40 log-mel bands (the DAVEnet recipe of the same lab, dB re the utterance maximum).
Deliberate differences, so it trains in minutes on 2 CPU cores: widths /4 (32, 64, 128, 128, 256
instead of 128 ... 1024); the small pixel CNN instead of the paper's VGG16 image tower; the
spoken_shapes family's platalea hinge (margin 0.2 on cosines) with Adam, warm-up + cosine, instead
of the paper's sampled margin ranking loss with SGD; Adam's peak learning rate is 2e-4, not the
family's 1e-3: the encoder has no normalisation between its five ReLU convs, and at 1e-3 or 2e-3
Adam's first 50-75 steps grow a few always-on conv5 units (at 2e-3: conv5 mean 1.05 -> 19.7 while
its active fraction falls 0.53 -> 0.25) until every caption embeds to the same direction (cosine
0.999): all scores tie, the loss sits at its tie value 0.375 (batch 16) and the gradient fades
(norm 0.15 -> 5e-5). At 2e-4 it learns with or without the per-utterance input normalisation, faster
with it (validation R@10 0.79 vs 0.68 after 200 steps of 16; 20 images, chance 0.5).
`:tiny` for tests.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False)
    config = configs.spoken_shapes_config(tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
    config.features.recipe = "davenet_logmel"
    config.model.speech_encoder = "hg2017"
    config.model.speech = ml_collections.ConfigDict(
        dict(widths=(8, 8, 16, 16, 16) if arg.tiny else (32, 64, 128, 128, 256)))
    config.model.similarity = "cosine"
    config.optimizer.lr_max = 2e-4  # at 1e-3 every caption embeds alike (see above)
    return config
