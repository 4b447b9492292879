"""speech2image (Merkx, Frank & Ernestus, Interspeech 2019) on Flickr8K, its recipe (reference notes §4).

    python -m vgs_jax.main --config=configs/flickr8k_speech2image.py --workdir=runs/flickr8k_speech2image

Conv1D 39->64 (k6, s2, with bias) -> 4 x BiGRU 1024/direction (`:lstm`: the master branch's
BiLSTM) -> vectorial attention (128) -> L2 (2048-d); image: Linear 2048 on ResNet-152 vectors + L2;
batch hinge, margin 0.2, all in-batch negatives, / B^2 (§4.4); Adam with the cyclic cosine
2e-4 <-> 1e-6, 4-epoch period, batch 32, 32 epochs (§4.6). The reference never puts two captions
of one image in a batch (§4.5); here such pairs are excluded as negatives instead
(`loss.exclude_same_image`). Features: 39-d MFCC as platalea (§4.1 notes the reference's int16
scaling shifts log energies by a constant). Published (survey table 4): Flickr8K speech->image
R@1/5/10 0.084/0.257/0.376, medr 21. `:tiny` for tests.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, lstm=False)
    config = configs.platalea_corpus_config("flickr8k_audio")
    config.model.speech_encoder = "speech2image"
    config.model.speech = ml_collections.ConfigDict(dict(
        rnn="lstm" if arg.lstm else "gru", conv_bias=True, conv_channels=64, conv_kernel=6, conv_stride=2,
        hidden=16 if arg.tiny else 1024, num_layers=1 if arg.tiny else 4,
        attention_hidden=8 if arg.tiny else 128, mask_padding=True))
    config.loss.exclude_same_image = True
    if arg.tiny:
        config.batch_size = 8
        config.num_train_steps = 2
    return config
