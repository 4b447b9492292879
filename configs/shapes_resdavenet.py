"""ResDAVEnet and ResDAVEnet-VQ (Harwath, Hsu, Glass 2020) on `spoken_shapes`.

    python -m vgs_jax.main --config=configs/shapes_resdavenet.py --workdir=runs/shapes_resdavenet
    # ResDAVEnet-VQ "{} -> {2,3}": warm start from the run above, quantisers after layer1 and layer2
    python -m vgs_jax.main --config=configs/shapes_resdavenet.py:vq=23 \\
        --config.init_from=runs/shapes_resdavenet --workdir=runs/shapes_resdavenet_vq23

The recipe of configs/places_resdavenet.py (log-mel 40, conv1 + four residual stages of 2 basic
blocks, kernel 9, stride 2 per stage; pooled dot product (SISA); sampled + semi-hard hinges in both
directions, margin 1; centred temporal jitter 0.12; EMA codebooks, commitment 1.0 added to the loss)
with widths /4 (32..256), codebooks of 64 instead of 1024, the small pixel CNN's map instead of
ResNet-50, and Adam with warm-up + cosine so it trains in minutes on 2 CPU cores. `vq=DIGITS` turns
on quantisers at those positions (1 = after conv1, 2..5 = after layer1..layer4). `:tiny` for tests.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False, vq="")
    config = configs.spoken_shapes_config(tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
    config.features.recipe = "davenet_logmel"
    config.model.speech_encoder = "resdavenet"
    config.model.speech = ml_collections.ConfigDict(dict(
        widths=(8, 8, 16, 16, 16) if arg.tiny else (32, 64, 64, 128, 256),
        depths=(1, 1, 1, 1) if arg.tiny else (2, 2, 2, 2),
        kernel=9,
        vq_on=configs.vq_positions(arg.vq),
        codebook_size=16 if arg.tiny else 64,
        commitment_cost=1.0,
        jitter=0.12,
        jitter_mode="centred",
    ))
    config.model.image_encoder = "conv_map"
    config.model.image = ml_collections.ConfigDict(dict(channels=(8, 16, 16) if arg.tiny else (32, 64, 128)))
    config.model.similarity = "pooled_dot"
    config.loss.name = "semihard_hinge"
    config.loss.margin = 1.0
    return config
