"""platalea's Transformer speech encoder (`SpeechEncoderTransformer`, reference notes §1.4) on Flickr8K.

    python -m vgs_jax.main --config=configs/flickr8k_transformer.py --workdir=runs/flickr8k_transformer

Conv1D 39->64 (k6, s2, no bias) -> Linear to d_model 512 -> 4 post-norm Transformer layers,
8 heads, feed-forward 1024, padding mask, no positional encoding -> vectorial attention (128) -> L2;
everything else is platalea's recipe (configs/flickr8k_gru.py): ResNet-152 vectors, hinge 0.2,
Adam with the cyclic schedule, batch 32, 32 epochs. `:tiny` for tests.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False)
    config = configs.platalea_corpus_config("flickr8k_audio")
    config.model.speech_encoder = "transformer"
    config.model.speech = ml_collections.ConfigDict(dict(
        conv_channels=64, conv_kernel=6, conv_stride=2, conv_bias=False,
        d_model=16 if arg.tiny else 512, num_heads=2 if arg.tiny else 8, num_layers=1 if arg.tiny else 4,
        ff_dim=32 if arg.tiny else 1024, dropout=0.0, attention_hidden=8 if arg.tiny else 128,
        positions="none", mask_padding=True))
    if arg.tiny:
        config.batch_size = 8
        config.num_train_steps = 2
    return config
