"""ResDAVEnet-VQ (Harwath, Hsu & Glass, ICLR 2020; survey table 3) on Places: the two-stage recipe.

    # stage 1, "{2}": quantiser after layer1, from scratch
    python -m vgs_jax.main --config=configs/places_resdavenet_vq.py:vq=2 --workdir=runs/vq2 \\
        --config.model.image.weights=/path/to/resnet50-0676ba61.pth
    # stage 2, "{2} -> {2,3}": warm start from stage 1's best checkpoint, add the layer2 quantiser
    python -m vgs_jax.main --config=configs/places_resdavenet_vq.py:vq=23 --workdir=runs/vq2_23 \\
        --config.init_from=runs/vq2 --config.model.image.weights=/path/to/resnet50-0676ba61.pth

configs/places_resdavenet.py's recipe plus vector quantisation (anchor §3.3): codebooks of 1024
at the positions given by `vq` (digits 1-5: after conv1, layer1..layer4; default "23"), normal(0, 1)
init, EMA decay 0.99 with Laplace smoothing 1e-8 over non-padding frames, straight-through
gradients, commitment cost 1.0 added to the loss; codebook perplexity and usage are logged per
quantiser. `init_from` copies every parameter and statistic whose path and shape match (the
reference's `--seed-dir`); new codebooks stay fresh. `:tiny` shrinks sizes for tests.
"""

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, vq="23")
    return configs.places_resdavenet_config(tiny=arg.tiny, vq=arg.vq)
