"""AVLNet-style audio-video model (Rouditchenko et al. 2020; survey-systems.md C) on `moving_shapes`.

    python -m vgs_jax.video.train --config=configs/moving_shapes_avlnet.py --workdir=runs/ms_avlnet
    python -m vgs_jax.evaluate --workdir=runs/ms_avlnet

Audio: a ResDAVEnet (residual 1-D conv stages, no quantisers, no jitter; narrow widths). Video:
`vgs_jax.video.encoders.VideoEncoder`, a 3x3x3 conv then per-frame 2D conv stages and a temporal
mean over ALL frames of the clip or fragment. Loss: masked margin softmax (AVLNet's MMS) on the
cosine scores of the batch, margin 0.001 as AVLNet, but temperature 0.1 instead of AVLNet's 1 (our
batches are small). Arguments: tiny (clips_tiny, a few steps, for tests), episodes (random
3-second fragments of episodes_*; strategy=mention centres them on mentions instead). Differences:
synthetic videos instead of HowTo100M, small towers trained from scratch, no text branch.
"""

from vgs_jax import config_lib
from vgs_jax.video.train import video_config


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, episodes=False, strategy="uniform")
    c = video_config("avlnet", tiny=arg.tiny, episodes=arg.episodes, strategy=arg.strategy)
    c.model.speech_encoder = "resdavenet"
    c.model.speech = dict(widths=(8, 8, 16, 16, 32) if arg.tiny else (64, 64, 128, 128, 256),
                          depths=(1, 1, 1, 1), kernel=9, jitter=0.0)
    c.model.image_encoder = "video_3d2d"
    c.model.image = dict(conv3d_channels=8 if arg.tiny else 32, channels=(16, 32) if arg.tiny else (64, 128, 128),
                         image_size=c.video.image_size)
    c.model.temperature_init = 0.07  # unused by this loss; the dual encoder always holds one
    c.loss.name = "mms"
    c.loss.margin = 0.001
    c.loss.temperature = 0.1
    return c
