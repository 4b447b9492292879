"""A small wav2vec 2.0-style encoder trained from scratch on `spoken_shapes` with the grounding loss only.

    python -m vgs_jax.main --config=configs/shapes_ssl_vgs.py --workdir=runs/shapes_ssl_vgs

Raw 16 kHz waveforms (`features.recipe="raw"`, lengths in samples: up to 81 920 = 5.12 s, as the other
shapes configs' 512 frames) -> `wav2vec2` encoder (`vgs_jax.models.ssl_speech_encoder`), sized to train on
2 CPU cores: the published conv stack's kernels and strides (20 ms frames) with 64 channels, a 128-wide
post-LN Transformer of 2 layers and 4 heads (feed-forward 256), the positional conv with kernel 32 and
8 groups, "group" feature norm, last layer, platalea's vectorial attention pooling, waveforms normalised
per utterance. Choices, stated: random init (no SSL checkpoint), nothing frozen, no SpecAugment or
LayerDrop. Loss, image CNN and schedule are the shapes family's (`configs.spoken_shapes_config`).
`:tiny` for tests.

Grounded + self-supervised (survey §9.1): `:ssl_weight=W` (W > 0) adds W x HuBERT's masked prediction
(`vgs_jax.objectives.masked_prediction`) to the grounding loss, e.g.

    python -m vgs_jax.main --config=configs/shapes_ssl_vgs.py:ssl_weight=1 --workdir=runs/shapes_ssl_vgs_ssl

Choices, stated: HuBERT's first iteration, not wav2vec 2.0's contrastive loss (no quantiser); targets
are 100 k-means clusters of 39-d MFCC frames fitted on the training split (`vgs_jax.ssl_targets`: librosa
MFCC, full-batch Lloyd on 100 000 frames of 1000 utterances; HuBERT: Kaldi MFCC, MiniBatchKMeans);
span masks with HuBERT's mask_prob 0.8 and mask_length 10 frames (200 ms), at least 2 spans; cosine
logits over learned cluster embeddings (final_proj to 256, temperature 0.1); loss on masked frames
only. The masked pass is a second pass through the Transformer (the grounding pass sees the unmasked
waveform), both trained together from step 1 on the same batch (HuBERT pre-trains first; FaST-VGS+
likewise adds wav2vec 2.0's loss to the grounding loss in one run). W = 0 (the default) builds no head
and is the purely grounded model.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False, ssl_weight=0.0)
    config = configs.spoken_shapes_config(tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
    config.features.recipe = "raw"
    config.features.max_frames = 16000 if arg.tiny else 81920  # tiny: first second, one padded length
    config.features.bucket_boundaries = (16000,) if arg.tiny else (24000, 32000, 40000, 48000, 64000, 81920)
    config.model.speech_encoder = "wav2vec2"
    config.model.speech = ml_collections.ConfigDict(dict(
        size="custom",
        # tiny: 3 convs (stride 20) to compile and run in seconds
        conv_dim=(8,) * 3 if arg.tiny else (64,) * 7,
        conv_kernel=(10, 3, 2) if arg.tiny else (10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2) if arg.tiny else (5, 2, 2, 2, 2, 2, 2),
        conv_bias=False,
        feat_norm="group",
        hidden=16 if arg.tiny else 128,
        num_layers=1 if arg.tiny else 2,
        num_heads=2 if arg.tiny else 4,
        ff_dim=32 if arg.tiny else 256,
        layer_norm_first=False,
        pos_kernel=8 if arg.tiny else 32,
        pos_groups=2 if arg.tiny else 8,
        dropout=0.0,
        weights="",
        freeze="none",
        layers="last",
        pooling="vectorial",
        attention_hidden=8 if arg.tiny else 64,
        normalize_waveform=True,
        ssl_clusters=(8 if arg.tiny else 100) if arg.ssl_weight else 0,
        ssl_head_dim=8 if arg.tiny else 256,
    ))
    config.loss.ssl_weight = arg.ssl_weight
    if arg.tiny:
        config.ssl_targets.update(fit_utterances=20, fit_frames=2000, kmeans_iters=10)
    return config
