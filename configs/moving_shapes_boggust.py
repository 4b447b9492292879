"""Boggust et al. (2019) on `moving_shapes` (survey-systems.md C): DAVEnet on still frames + audio.

    python -m vgs_jax.video.train --config=configs/moving_shapes_boggust.py:strategy=mention --workdir=runs/ms_boggust
    python -m vgs_jax.evaluate --workdir=runs/ms_boggust

A DAVEnet audio tower (five convs, four max-pools; narrow widths) and a pixel CNN on ONE still frame
of the fragment, trained on (audio fragment, still frame) pairs with AVLNet's masked margin softmax
(margin 0.001, temperature 0.1) on cosine scores: DAVEnet's sampled-impostor hinge
(loss.name="sampled_impostor_hinge") collapsed to identical embeddings in our clips_tiny runs. `strategy` picks the frame (`vgs_jax.video.sampling`):
"uniform" (random frame: unsupervised), "center" (the fragment's centre frame) or "mention" (a frame
inside a mention: supervised by the stored mention times; on episodes the fragments are also centred
on mentions). Evaluation embeds the centre frame. Arguments: tiny (clips_tiny, a few steps, for
tests), episodes (train and evaluate on episodes_*: 3-second fragments), strategy. Differences from
the paper: synthetic shapes instead of cooking videos, a small CNN instead of VGG16.
"""

from vgs_jax import config_lib
from vgs_jax.video.train import video_config


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, episodes=False, strategy="uniform")
    c = video_config("boggust", tiny=arg.tiny, episodes=arg.episodes, strategy=arg.strategy)
    c.model.speech_encoder = "davenet"
    c.model.speech = dict(widths=(16, 16, 32, 32, 64) if arg.tiny else (64, 64, 128, 128, 256))
    c.model.image_encoder = "frame_conv"
    c.model.image = dict(channels=(16, 32, 64) if arg.tiny else (32, 64, 128, 128), image_size=c.video.image_size)
    c.model.temperature_init = 0.07  # unused by this loss; the dual encoder always holds one
    c.loss.name = "mms"
    c.loss.margin = 0.001
    c.loss.temperature = 0.1
    return c
