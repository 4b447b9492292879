"""DAVEnet (Harwath et al., ECCV 2018; survey table 3) on Places audio captions, its recipe (anchor §2).

    python -m vgs_jax.main --config=configs/places_davenet.py --workdir=runs/places_davenet

Reproduces `dharwath/DAVEnet-pytorch` `run.py` defaults: 40-d log-mel (n_fft 400, hop 160, Hamming,
power_to_db ref=max, top_db 80, 2048-frame cap, §2.1); speech: input BatchNorm, conv (40x1) 128,
convs 11/17/17/17 to 256/512/512/1024 with max-pools, 16x downsampling (§2.3), frame counts
floor(L/16) as the reference crops; image: VGG16 conv trunk + 3x3 conv to 1024 -> 14 x 14 map,
trained end to end, from random init unless `--config.model.image.weights=vgg16-397923af.pth`
(the reference's `--pretrained-image-model`, off by default) (§2.2); MISA matchmap similarity
(§2.4); sampled-impostor hinge, margin 1 (§2.5); SGD momentum 0.9, lr 0.001, weight decay 5e-7,
lr x 0.1 every 40 epochs (epochs counted from 1), batch 100 (§2.6). The reference trains until
stopped; 100 epochs here. Published: Places R@10 roughly 0.5-0.6 (sota-and-metrics.md, unverified).
Differences, stated: no RandomResizedCrop augmentation (images are the builder's centre crops),
BatchNorm statistics over valid frames only, best checkpoint by speech->image R@10 (the reference
uses the mean of both directions). `:tiny` shrinks sizes for tests.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False)
    config = configs.places_config()
    config.model.speech_encoder = "davenet"
    config.model.speech = ml_collections.ConfigDict(dict(length_rounding="floor"))
    config.model.image_encoder = "vgg16"
    config.model.image = ml_collections.ConfigDict(dict(freeze_trunk=False, weights=""))
    config.optimizer.name = "sgd"
    config.optimizer.momentum = 0.9
    config.optimizer.lr_max = 0.001
    config.optimizer.weight_decay = 5e-7
    config.optimizer.schedule = "step"
    config.optimizer.decay_epochs = 40
    config.optimizer.decay_factor = 0.1
    config.batch_size = 100
    config.num_epochs = 100
    if arg.tiny:
        config.model.speech.widths = (8, 8, 16, 16, 16)
        config.batch_size = 8
        config.num_train_steps = 2
    return config
