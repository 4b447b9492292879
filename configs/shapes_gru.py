"""Default config: a small platalea-style GRU dual encoder on the embedded `spoken_shapes` corpus.

    python -m vgs_jax.main --config=configs/shapes_gru.py --workdir=runs/shapes_gru
    python -m vgs_jax.evaluate --workdir=runs/shapes_gru --split=test

Same architecture family as platalea (Conv1D -> stacked BiGRU -> vectorial attention pooling,
39-d platalea MFCCs, symmetric margin loss over all in-batch negatives) but sized to learn in
about ten minutes on 2 CPU cores; images are pixels (64x64) through a small CNN. The dataset
is generated on first use (a few minutes). `:tiny` is the seconds-long variant used by tests.
Measured (README, on spoken_shapes 1.0.0, i.e. `:v1`): test speech->image R@10 0.855. Data: 2.0.0 by
default, `:v1` for 1.0.0 (see configs.spoken_shapes_name).
"""

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False)
    config = configs.spoken_shapes_config(tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
    speech = config.model.speech
    speech.conv_stride = 3  # 33 frames/s into the GRU: 1.4x faster than stride 2 on CPU
    speech.hidden = 16 if arg.tiny else 128
    speech.num_layers = 1 if arg.tiny else 2
    speech.attention_hidden = 8 if arg.tiny else 64
    return config


def get_sweep(arg=None):
    """`python -m vgs_jax.sweep --config=configs/shapes_gru.py[:tiny] --workdir=runs/sweep`: peak
    learning rate (x margin, full size). Each point is a dict of config overrides."""
    if config_lib.parse_arg(arg, tiny=False, v1=False, v2=False).tiny:
        return [{"optimizer.lr_max": lr} for lr in (1e-3, 3e-3)]
    return [{"optimizer.lr_max": lr, "loss.margin": margin} for lr in (5e-4, 1e-3, 2e-3) for margin in (0.1, 0.2)]
