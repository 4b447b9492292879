"""The recurrent highway network model of Chrupała, Gelderloos & Alishahi (2017) on Flickr8K.

    python -m vgs_jax.main --config=configs/flickr8k_rhn.py --workdir=runs/flickr8k_rhn

Encoder as in `gchrupala/visually-grounded-speech` (vgs_jax/models/recurrent_encoders.py):
Conv1D 64 channels, kernel 6, stride 2 -> 4 residual RHN layers of 1024 units, 2 micro-steps ->
scalar attention (128) -> L2 (1024-d); 39-d MFCC input; image side a linear map of precomputed
image vectors + L2; symmetric hinge with margin 0.2 over all in-batch negatives. Published
(Chrupała et al. 2017, survey table 4): Flickr8K speech->image R@1/5/10 0.055/0.163/0.253, medr 48.
Differences, stated: the 2017 model used VGG-16 fc7 image vectors (select them with
`--config.model.image.input_dim=4096 --config.dataset.image_features_model=vgg16` once extracted),
variational dropout (not implemented), and its optimizer schedule is not in our reference notes, so
platalea's Adam + cyclic schedule is used. `:tiny` shrinks sizes for tests.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False)
    config = configs.platalea_corpus_config("flickr8k_audio")
    config.model.speech_encoder = "rhn"
    config.model.speech = ml_collections.ConfigDict(dict(
        conv_channels=64, conv_kernel=6, conv_stride=2,
        hidden=16 if arg.tiny else 1024, num_layers=1 if arg.tiny else 4, depth=2,
        attention_hidden=8 if arg.tiny else 128, residual=True, mask_padding=True))
    if arg.tiny:
        config.batch_size = 8
        config.num_train_steps = 2
    return config
