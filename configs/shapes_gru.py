"""Default config: a small platalea-style GRU dual encoder on the embedded `spoken_shapes` corpus.

    python -m vgs_jax.main --config=configs/shapes_gru.py --workdir=runs/shapes_gru
    python -m vgs_jax.evaluate --workdir=runs/shapes_gru --split=test

Same architecture family as platalea (Conv1D -> stacked BiGRU -> vectorial attention pooling,
39-d platalea MFCCs, symmetric margin loss over all in-batch negatives) but sized to learn in
about ten minutes on 2 CPU cores; images are pixels (64x64) through a small CNN. The dataset
is generated on first use (a few minutes). `:tiny` is the seconds-long variant used by tests.
"""

from vgs_jax import config_lib


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False)
    config = config_lib.base_config()
    config.dataset.name = "spoken_shapes/small"
    config.dataset.build_if_missing = True  # generated locally, no download
    config.features.bucket_boundaries = (160, 224, 288, 384, 512)  # utterances are 1-4 s
    config.features.max_frames = 512

    config.model.image_encoder = "conv"
    config.model.speech.conv_stride = 3  # 33 frames/s into the GRU: 1.4x faster than stride 2 on CPU
    config.model.speech.hidden = 128
    config.model.speech.num_layers = 2
    config.model.speech.attention_hidden = 64
    config.model.image.channels = (16, 32, 64, 64)

    config.loss.name = "platalea_hinge"
    config.loss.exclude_same_image = True

    config.batch_size = 32
    config.num_epochs = 4
    config.optimizer.schedule = "warmup_cosine"
    config.optimizer.lr_max = 1e-3
    config.optimizer.lr_min = 1e-5
    config.optimizer.warmup_steps = 100
    config.log_every_steps = 50
    config.eval_every_steps = 500
    config.checkpoint_every_steps = 500

    if arg.tiny:
        config.dataset.name = "spoken_shapes/tiny"
        config.features.bucket_boundaries = (256, 512)
        config.model.image.channels = (8, 16)
        config.model.speech.hidden = 16
        config.model.speech.num_layers = 1
        config.model.speech.attention_hidden = 8
        config.batch_size = 8
        config.eval_batch_size = 16
        config.num_train_steps = 6
        config.log_every_steps = 2
        config.eval_every_steps = 3
        config.checkpoint_every_steps = 3
        config.optimizer.warmup_steps = 2
    return config
