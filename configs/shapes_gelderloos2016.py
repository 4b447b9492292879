"""Gelderloos & Chrupała (2016) on `spoken_shapes` captions (survey-systems.md B.3).

    python -m vgs_jax.phoneme_train --config=configs/shapes_gelderloos2016.py --workdir=runs/shapes_gelderloos2016
    python -m vgs_jax.analyze --workdir=runs/shapes_gelderloos2016

Choices (paper / gchrupala/reimaginet `examples/run.py` and `imaginet/defn/visual.py` where it says):
- input: each caption's text through espeak-ng's grapheme-to-phoneme (US English voice, so English
  captions only), spaces removed, stress marks dropped (`vgs_jax.phonemes`); phoneme vocabulary
  from the training split;
- model: phoneme embedding 256, 3 GRU layers of 1024 units (reimaginet size_embed=256,
  size_hidden=1024, depth=3), layers 2 and 3 residual (input added to the output); the top
  layer's state at the last phoneme -> Linear -> image vector. The GRU is the standard tanh GRU
  (reimaginet's used a clipped-rectifier activation);
- target: the image's object counts per shape/colour/size (`image_vector="scene"`; the paper's
  VGG fc7 vector cannot be computed offline), standardised by the training images (reimaginet
  scale=True); `image_vector="pixels"`: 8 x 8 block means of the image instead;
- loss: mean squared error (the paper; reimaginet's code later used cosine distance);
- optimiser: Adam, lr 2e-4 (reimaginet's default), gradients clipped to global norm 5
  (max_norm=5.0; reimaginet clips per update), batch 64 (reimaginet batch_size=64);
- steps: 2000 (the paper trained for epochs on COCO; spoken_shapes/small is far smaller).
`:tiny` for tests (tiny dataset, small model, a few steps).
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False)
    c = ml_collections.ConfigDict()
    c.system = "gelderloos2016"
    c.seed = 0
    c.dataset = ml_collections.ConfigDict(dict(
        name=configs.spoken_shapes_name(tiny=arg.tiny, v1=arg.v1, v2=arg.v2), data_dir=config_lib.default_data_dir(),
        build_if_missing=True, eval_split="test", max_train_captions=0, max_eval_captions=0))  # 0: all
    c.image_vector = "scene"
    c.model = ml_collections.ConfigDict(dict(embed_dim=16 if arg.tiny else 256, hidden=32 if arg.tiny else 1024,
                                             depth=3))
    c.lr = 2e-4
    c.max_norm = 5.0
    c.batch_size = 8 if arg.tiny else 64
    c.num_train_steps = 4 if arg.tiny else 2000
    c.log_every_steps = 2 if arg.tiny else 200
    return c
