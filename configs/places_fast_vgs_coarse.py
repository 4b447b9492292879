"""FaST-VGS "coarse" (the dual-encoder path of Peng & Harwath 2022, sota-and-metrics.md A.1) on Places.

    python -m vgs_jax.main --config=configs/places_fast_vgs_coarse.py --workdir=runs/places_fast_vgs_coarse \
        --config.model.speech.weights=pretrained/wav2vec_small.pt

Speech: the fairseq wav2vec 2.0 Base checkpoint `wav2vec_small.pt` (or a Hugging Face folder of
facebook/wav2vec2-base), read from `model.speech.weights` (default `pretrained/wav2vec_small.pt`; a missing
file stops training before any work, naming it and what to download); its first 8 of 12 Transformer
layers (`--layer_use 7`), the conv feature extractor frozen (`--feature_grad_mult 0.`), waveforms
normalised per utterance, dropout 0.1, a CLS token and a projection to 768.
Image: ResNet-50 trunk + 1x1 embedder (the family's Places image tower). Loss: symmetric InfoNCE with
same-image masking; batch 48, Adam lr 1e-4 with 10% warm-up, 20 epochs (FaST-VGS's Places script).
Differences, stated: FaST-VGS prepends its CLS token inside the wav2vec 2.0 Transformer and trains its
image side on Faster R-CNN region features through a 6-layer Transformer; here the CLS goes through one
extra post-LN layer after the 8 kept layers ("cls_parallel") and the image side is the pixel ResNet-50.
Its loss subtracts a margin of 1 from the positives (here 0), it weights this coarse loss 0.1 beside
the cross-encoder loss (no cross encoder here: "coarse" only), and its BertAdam decays linearly (here
cosine). No LayerDrop or SpecAugment masking. `:tiny` shrinks sizes for tests (random init).
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False)
    config = configs.places_config()
    config.features.recipe = "raw"
    config.features.max_frames = 160000  # 10 s
    config.features.bucket_boundaries = (48000, 80000, 120000, 160000)
    config.model.speech_encoder = "wav2vec2"
    config.model.speech = ml_collections.ConfigDict(dict(
        size="base", num_layers=8, weights="pretrained/wav2vec_small.pt", freeze="feature_extractor",
        layers="last", pooling="cls_parallel", head_layers=1, out_features=768, normalize_waveform=True,
        dropout=0.1))
    config.model.image_encoder = "resnet50"
    config.model.image = ml_collections.ConfigDict(dict(freeze_trunk=False, weights=""))
    config.model.similarity = "cosine"
    config.loss.name = "infonce"
    config.loss.exclude_same_image = True
    config.optimizer.name = "adam"
    config.optimizer.lr_max = 1e-4
    config.optimizer.lr_min = 0.0
    config.optimizer.schedule = "warmup_cosine"
    config.optimizer.warmup_steps = 8000  # ~10% of 20 epochs of ~400k / 48
    config.optimizer.weight_decay = 0.0
    config.batch_size = 48
    config.num_epochs = 20
    if arg.tiny:
        config.model.speech.update(dict(
            size="custom", conv_dim=(8,) * 3, conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2), conv_bias=False,
            feat_norm="group", hidden=16, num_layers=1, num_heads=2, ff_dim=32, layer_norm_first=False,
            pos_kernel=8, pos_groups=2, out_features=16, weights=""))
        config.batch_size = 8
        config.num_train_steps = 2
    return config
