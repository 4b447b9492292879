"""Shapes that enter, cross and leave the frame, and what a narrator says about them.

An object (spoken_shapes' shapes, colours and sizes) enters at time `enter` from one side
("left", "right", "top", "bottom") and moves in a straight line at `speed` image sides per second
to the opposite side, where it leaves; its centre starts and ends one radius outside the frame.
Frames are rendered with `spoken_shapes.scenes.render` (objects off the frame are clipped by the
canvas); per frame, each object's box [ymin, xmin, ymax, xmax] (fractions of the side, clipped to
the frame) and whether any of it is visible.

Everything comes from a `numpy.random.Generator`, so a seed fixes the content.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from tfds_builders.spoken_shapes import scenes

SIDES = ("left", "right", "top", "bottom")
# Unit direction of motion (dx, dy), y downwards, for an object entering from each side.
_DIRECTION = {"left": (1.0, 0.0), "right": (-1.0, 0.0), "top": (0.0, 1.0), "bottom": (0.0, -1.0)}
MOVES = {"left": "to the right", "right": "to the left", "top": "down", "bottom": "up"}


@dataclasses.dataclass(frozen=True)
class Mover:
    """One moving object: kind, side it enters from, time it enters (s), speed (sides/s), lane in [0, 1]
    (its position across the direction of motion)."""

    shape: str
    color: str
    size: str
    side: str
    enter: float
    speed: float
    lane: float

    @property
    def radius(self) -> float:
        return scenes.DIAMETER[self.size] / 2

    @property
    def leave(self) -> float:
        """Time (s) its centre reaches one radius past the far side."""
        return self.enter + (1.0 + 2 * self.radius) / self.speed

    def at(self, t: float) -> scenes.SceneObject:
        """The object at time t (centre possibly outside [0, 1])."""
        dx, dy = _DIRECTION[self.side]
        travel = (t - self.enter) * self.speed - self.radius  # along the motion, from the entry border
        along = travel if dx + dy > 0 else 1.0 - travel
        cx, cy = (along, self.lane) if dx else (self.lane, along)
        return scenes.SceneObject(self.shape, self.color, self.size, float(cx), float(cy))

    def box(self, t: float) -> tuple[np.ndarray, bool]:
        """(bbox float32 [4] clipped to the frame, visible) at time t."""
        pts = self.at(t).outline()
        b = np.array([pts[:, 1].min(), pts[:, 0].min(), pts[:, 1].max(), pts[:, 0].max()])
        visible = bool(b[0] < 1 and b[1] < 1 and b[2] > 0 and b[3] > 0)
        return b.clip(0.0, 1.0).astype(np.float32), visible


def sample_mover(rng: np.random.Generator, enter: float, speed_range: tuple[float, float]) -> Mover:
    size = scenes.SIZES[rng.integers(len(scenes.SIZES))]
    lo = 0.03 + scenes.DIAMETER[size] / 2
    return Mover(scenes.SHAPES[rng.integers(len(scenes.SHAPES))], scenes.COLORS[rng.integers(len(scenes.COLORS))],
                 size, SIDES[rng.integers(len(SIDES))], float(enter), float(rng.uniform(*speed_range)),
                 float(rng.uniform(lo, 1.0 - lo)))


def frame_times(duration: float, fps: int) -> np.ndarray:
    """Times (s) of the frames of a video of `duration` seconds: k / fps, k = 0 .. ceil(duration * fps) - 1."""
    return np.arange(int(np.ceil(duration * fps - 1e-9))) / fps


def render_frames(movers, times, image_size: int) -> list:
    """PIL images [len(times)] of the movers visible at each time."""
    frames = []
    for t in times:
        frames.append(scenes.render([m.at(t) for m in movers if m.box(t)[1]], image_size))
    return frames


def tracks(movers, times) -> tuple[np.ndarray, np.ndarray]:
    """(boxes float32 [O, F, 4], visible bool [O, F]) of O movers at F frame times."""
    boxes = np.zeros((len(movers), len(times), 4), np.float32)
    visible = np.zeros((len(movers), len(times)), bool)
    for o, m in enumerate(movers):
        for f, t in enumerate(times):
            boxes[o, f], visible[o, f] = m.box(t)
    return boxes, visible


def noun_phrase(m: Mover, article: str = "a") -> str:
    return f"{article} {m.size} {m.color} {m.shape}"


def clip_description(movers) -> str:
    """One sentence about every mover of a clip: "a small red circle moves to the right and ..."."""
    return " and ".join(f"{noun_phrase(m)} moves {MOVES[m.side]}" for m in movers)


def mention(m: Mover) -> str:
    """The narrator's sentence when an object comes in: "a large blue star comes in from the left"."""
    return f"{noun_phrase(m)} comes in from the {m.side}"
