"""Random scenes of simple objects and their rendering with PIL.

A scene has 1-3 non-overlapping objects; each object has a shape, a colour, a size and a
position (bounding box [ymin, xmin, ymax, xmax] as fractions of the image side, y downwards).
Sampling is driven by a `numpy.random.Generator`, so a fixed seed gives a fixed scene, and
rendering is pure PIL (drawn at 4x and box-filtered down), so a fixed scene gives fixed pixels.
"""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross", "hexagon")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
SIZES = ("small", "large")
RGB = {
    "red": (220, 40, 40), "orange": (245, 140, 30), "yellow": (240, 220, 40),
    "green": (40, 170, 60), "blue": (50, 90, 230), "purple": (150, 60, 200),
    "pink": (250, 135, 195), "white": (245, 245, 245),
}
BACKGROUND = (45, 45, 45)
DIAMETER = {"small": 0.2, "large": 0.34}  # Object extent as a fraction of the image side.
MIN_IMAGE_SIZE = 32  # Pixels; below this the small objects are a few pixels wide.
NUM_OBJECTS_PROBS = (0.2, 0.4, 0.4)  # P(1 object), P(2 objects), P(3 objects).
SAME_KIND_PROB = 0.25  # P(an object copies another's colour and shape), to get "two red circles".
_MARGIN = 0.03  # Minimum distance of an object to the image border.
_GAP = 0.04  # Minimum distance between two objects' boxes.
_SUPERSAMPLE = 4


@dataclasses.dataclass(frozen=True)
class SceneObject:
    """One object: names from SHAPES/COLORS/SIZES; centre (cx, cy) in [0, 1], y downwards."""

    shape: str
    color: str
    size: str
    cx: float
    cy: float

    @property
    def radius(self) -> float:
        """Half the object's extent, as a fraction of the image side."""
        return DIAMETER[self.size] / 2

    def outline(self) -> np.ndarray:
        """Polygon vertices [n, 2] as (x, y) fractions of the image side (a circle: 64 points)."""
        return _unit_outline(self.shape) * self.radius + np.array([self.cx, self.cy])

    def bbox(self) -> np.ndarray:
        """float32 [4] = [ymin, xmin, ymax, xmax], fractions of the image side, tight."""
        pts = self.outline()
        return np.array([pts[:, 1].min(), pts[:, 0].min(), pts[:, 1].max(), pts[:, 0].max()],
                        dtype=np.float32).clip(0.0, 1.0)


def _unit_outline(shape: str) -> np.ndarray:
    """Vertices (x, y) of `shape` inside the square [-1, 1]^2, y downwards."""
    if shape == "circle":
        t = np.linspace(0.0, 2 * math.pi, 64, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    if shape == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * 0.85
    if shape == "triangle":
        return np.array([[0, -1], [1, 0.8], [-1, 0.8]], float)
    if shape == "diamond":
        return np.array([[0, -1], [0.75, 0], [0, 1], [-0.75, 0]], float)
    if shape == "star":
        t = -math.pi / 2 + np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return np.stack([r * np.cos(t), r * np.sin(t) + 0.1], axis=1)
    if shape == "cross":
        a, b = 1.0, 0.33
        return np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a],
                         [-b, b], [-a, b], [-a, -b], [-b, -b]], float)
    if shape == "hexagon":
        t = np.arange(6) * math.pi / 3
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    raise ValueError(f"Unknown shape {shape!r}; choose one of {SHAPES}.")


def boxes_overlap(a: np.ndarray, b: np.ndarray, gap: float = 0.0) -> bool:
    """Whether boxes [ymin, xmin, ymax, xmax] come closer than `gap` on both axes."""
    return not (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1]
                or b[3] + gap <= a[1])


def sample_scene(rng: np.random.Generator, max_tries: int = 200) -> tuple[SceneObject, ...]:
    """Draws 1-3 objects that do not overlap (boxes at least `_GAP` apart) and stay inside."""
    num = int(rng.choice(len(NUM_OBJECTS_PROBS), p=NUM_OBJECTS_PROBS)) + 1
    kinds = []
    for i in range(num):
        if i > 0 and rng.random() < SAME_KIND_PROB:
            kinds.append(kinds[int(rng.integers(i))])
        else:
            kinds.append((SHAPES[rng.integers(len(SHAPES))], COLORS[rng.integers(len(COLORS))]))
    sizes = [SIZES[rng.integers(len(SIZES))] for _ in range(num)]
    objects = _place(rng, kinds, sizes, max_tries)
    if objects is None:  # Could not place them: all small always fits.
        objects = _place(rng, kinds, ["small"] * num, max_tries)
    if objects is None:
        raise RuntimeError(f"Could not place {num} objects without overlap in {max_tries} tries.")
    return objects


def _place(rng, kinds, sizes, max_tries):
    """Uniform positions for objects of the given kinds/sizes, or None after `max_tries`."""
    for _ in range(max_tries):
        objects: list[SceneObject] = []
        for (shape, color), size in zip(kinds, sizes):
            lo = _MARGIN + DIAMETER[size] / 2
            cx, cy = rng.uniform(lo, 1.0 - lo, size=2)
            obj = SceneObject(shape, color, size, float(cx), float(cy))
            if any(boxes_overlap(obj.bbox(), o.bbox(), _GAP) for o in objects):
                break
            objects.append(obj)
        if len(objects) == len(kinds):
            return tuple(objects)
    return None


def render(objects, image_size: int) -> Image.Image:
    """Draws the objects on the plain background; returns an RGB PIL image [size, size]."""
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size={image_size} is too small; use at least {MIN_IMAGE_SIZE}.")
    big = image_size * _SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for obj in objects:
        pts = [(float(x) * big, float(y) * big) for x, y in obj.outline()]
        draw.polygon(pts, fill=RGB[obj.color])
    return canvas.resize((image_size, image_size), Image.Resampling.BOX)


def png_bytes(image: Image.Image) -> bytes:
    """PNG encoding of a PIL image (deterministic for a given Pillow version)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
