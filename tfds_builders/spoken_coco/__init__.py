"""spoken_coco: COCO 2014 images + SpokenCOCO spoken captions (importing registers it)."""

from .spoken_coco_dataset_builder import Builder, SpokenCocoConfig

__all__ = ["Builder", "SpokenCocoConfig"]
