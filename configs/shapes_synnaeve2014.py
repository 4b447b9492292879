"""Synnaeve et al. (2014) on `spoken_shapes` (survey-systems.md B.1): word segments x object crops.

    python -m vgs_jax.segment_train --config=configs/shapes_synnaeve2014.py --workdir=runs/shapes_synnaeve2014

Word-sized speech segments are the stored word alignments' log-mel frames (12 per word, flattened),
image fragments each object's box crop (12 x 12 pixels, flattened); two MLP branches (Linear 128,
ReLU, Linear 64) trained with coscos² (survey eq. 1) on batches of half matched pairs (a shape or
colour word and an object it names in its own image) and half random pairs, labelled "same" when
the word names the fragment's shape or colour. Differences: object crops stand in for the paper's
RCNN region features, and synthetic spoken_shapes captions for Pascal1K/LUCID. Reports word ->
fragment and fragment -> word precision at 1 and 10 against the random baseline and the random-init
model. `:tiny` for tests.
"""

from vgs_jax import config_lib
from vgs_jax.segment_train import segment_config


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False)
    return segment_config("synnaeve2014", tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
