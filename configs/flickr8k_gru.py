"""Platalea's speech-image model on Flickr8K Audio Captions, its exact recipe (reference notes §1).

    python -m vgs_jax.main --config=configs/flickr8k_gru.py --workdir=runs/flickr8k_gru

Reproduces `platalea/experiments/flickr8k/basic.py` (Chrupała et al.; Higy et al. 2020):
39-d platalea MFCCs (§1.2), Conv1D 39->64 (k6, s2, no bias) + 4 x BiGRU 1024/direction +
vectorial attention pooling -> 2048-d L2-normalised (§1.4); precomputed ResNet-152 10-crop
image vectors (2048-d) -> Linear 2048 + L2 (§1.3, §1.5); symmetric hinge, margin 0.2, all
in-batch negatives, / B^2 (§1.6); Adam, cyclic cosine 1e-6 <-> 2e-4 with a 4-epoch period,
batch 32, 32 epochs, seed 123 (§1.7). Published platalea-family speech->image R@10 on the
Flickr8K test set: 0.24-0.40 (Chrupała 2019; Scholten et al. 2020). One deliberate difference:
the attention pooling masks padding (`model.speech.mask_padding=False` restores the reference).

Needs the `flickr8k_audio` dataset and its ResNet-152 image vectors (README, "Real corpora");
without them training stops at once with a message naming the files it needs.
"""

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False)
    config = configs.platalea_corpus_config("flickr8k_audio")
    if arg.tiny:
        config.model.speech.hidden = 16
        config.model.speech.num_layers = 1
        config.model.speech.attention_hidden = 8
        config.batch_size = 8
        config.num_train_steps = 2
    return config
