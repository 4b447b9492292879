"""spoken_shapes: generated spoken captions of rendered shape scenes (importing registers it)."""

from .spoken_shapes_dataset_builder import (
    COLORS, SHAPES, SIZES, SPEAKERS, Builder, SpokenShapesConfig)

__all__ = ["Builder", "SpokenShapesConfig", "SHAPES", "COLORS", "SIZES", "SPEAKERS"]
