"""Harwath & Glass (2015)'s embedding alignment model on `spoken_shapes` (survey-systems.md B.2).

    python -m vgs_jax.segment_train --config=configs/shapes_hg2015.py --workdir=runs/shapes_hg2015

Words are cut at the stored word alignments (12 log-mel frames each, flattened) and embedded by an
affine map + ReLU; regions are the whole image plus each object's box (12 x 12 crops) embedded by an
affine map; a caption-image score is eq. (3) (matchmap FRAGMENT: per region, the best non-negative
word-region product, summed); loss eq. (2), all batch negatives, margin 1 (captions of one image are
not each other's negatives). Differences: the paper's pre-trained word CNN (WSJ) and RCNN region
features (4096-d) are not available offline, so one trained Linear + ReLU layer of `model.hidden`
units stands in for each (`model.hidden=0`: the affine maps on raw segments/crops alone); Adam.
Reports caption -> image and image -> caption R@10 against chance and the random-init model.
`:tiny` for tests.
"""

from vgs_jax import config_lib
from vgs_jax.segment_train import segment_config


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False)
    return segment_config("hg2015", tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
