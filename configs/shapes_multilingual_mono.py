"""Multilingual model on spoken_shapes 2.0.0: one language (English), the mono baseline of the README table.

    python -m vgs_jax.main --config=configs/shapes_multilingual_mono.py --workdir=runs/shapes_multilingual_mono
    python -m vgs_jax.evaluate --workdir=runs/shapes_multilingual_mono --split=test

Arguments: `tiny` (tests), `size=quick|small|large` (default small), `languages=en` (codes joined by "+"),
`shared=true` (one speech tower for all languages), `expansion=true` (pair expansion). Every choice is listed
in `configs/__init__.py` spoken_shapes_multilingual_config.
"""

from vgs_jax import configs


def get_config(arg=None):
    return configs.spoken_shapes_multilingual_config(arg, languages="en")
