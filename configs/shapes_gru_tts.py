"""TTS augmentation (Ilharco et al. 2019) on spoken_shapes 2.0: few spoken captions + synthetic speech.

    python -m vgs_jax.main --config=configs/shapes_gru_tts.py --workdir=runs/shapes_gru_tts
    python -m vgs_jax.main --config=configs/shapes_gru_tts.py:augment=false --workdir=runs/shapes_gru_tts_none
    python -m vgs_jax.evaluate --workdir=runs/shapes_gru_tts --split=test_unseen_speakers

The model, features, loss and optimizer of `configs/shapes_gru.py` (`:v2`) on
`spoken_shapes/quick_tts:2.0.0` (400 train images; the builder's `train_tts` split speaks every
train caption once more with a TTS voice that neither `test` nor `test_unseen_speakers` uses;
see tfds_builders/spoken_shapes/tts_augmentation.py). `dataset.tts` (vgs_jax/caption_mix.py)
keeps `fraction` of the spoken train captions (default 25%) and, with `augment` (default),
adds the synthetic captions of the rest, `synthetic_ratio` = 1 - fraction of the stream (each
caption once per epoch, real or synthetic). `augment=false` is the same fraction without
synthetic speech. Both run `num_train_steps` steps, so they cost the same compute.
`:tiny` (tests) is the same on `spoken_shapes/tiny_tts:2.0.0`.
"""

import importlib.util
import os

from vgs_jax import config_lib


def _shapes_gru():
    """configs/shapes_gru.py, the file beside this one (configs are not a package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes_gru.py")
    spec = importlib.util.spec_from_file_location("_shapes_gru", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, augment=True, fraction=0.25)
    config = _shapes_gru().get_config("tiny,v2" if arg.tiny else "v2")
    config.dataset.name = f"spoken_shapes/{'tiny' if arg.tiny else 'quick'}_tts:2.0.0"
    config.dataset.tts.spoken_fraction = arg.fraction
    if arg.augment:
        config.dataset.tts.synthetic_split = "train_tts"
        config.dataset.tts.synthetic_ratio = round(1.0 - arg.fraction, 6)
    if not arg.tiny:
        config.num_train_steps = 300
        config.eval_every_steps = 150
        config.checkpoint_every_steps = 150
    return config
