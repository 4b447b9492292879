"""moving_shapes: generated videos of moving shapes with spoken narration (importing registers it)."""

from .moving_shapes_dataset_builder import Builder, MovingShapesConfig

__all__ = ["Builder", "MovingShapesConfig"]
