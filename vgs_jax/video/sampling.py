"""Boggust et al. (2019)'s sampling strategies: which audio fragment and which still frame form a pair.

* "uniform" (unsupervised): a fragment at a uniformly random start; a uniformly random frame of it.
* "center" (unsupervised): a fragment at a uniformly random start; its centre frame.
* "mention" (supervised by the stored mention times): a fragment centred on a mention; a random
  frame whose time lies inside a mention.

Clips are one fragment each (the whole clip); episodes are cut into fragments of `seconds`.
Fragment starts lie on the frame grid (k / fps), so every fragment has the same number of frames.
"""
from __future__ import annotations

import numpy as np

STRATEGIES = ("uniform", "center", "mention")


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"sampling strategy {strategy!r} is unknown; choose one of {STRATEGIES} "
                         "(e.g. configs/moving_shapes_boggust.py:strategy=mention).")


def fragment_starts(duration: float, mention_start, seconds: float, fps: int, strategy: str,
                    rng: np.random.Generator, count: int | None, mention_end=None) -> np.ndarray:
    """float64 [count] fragment starts (s, multiples of 1 / fps) in [0, duration - seconds].
    "mention": each centred on a mention (drawn at random among those that start on screen, i.e.
    before `duration`; `mention_end` [M] with `mention_start` [M]; count None: every such mention
    once, in order); otherwise uniform (count None: one)."""
    check_strategy(strategy)
    last = int(np.floor((duration - seconds) * fps + 1e-6))
    if last < 0:
        raise ValueError(f"fragments of {seconds} s do not fit in {duration} s of video; use shorter fragments.")
    if strategy != "mention":
        return rng.integers(0, last + 1, size=count or 1) / fps
    starts, ends = np.asarray(mention_start, np.float64), np.asarray(mention_end, np.float64)
    on_screen = np.nonzero(starts < duration - 1.0 / fps)[0]
    if not len(on_screen):
        raise ValueError("strategy 'mention': no mention starts while the video runs; use 'uniform'.")
    pick = on_screen if count is None else rng.choice(on_screen, size=count)
    centre = (starts[pick] + np.minimum(ends[pick], duration)) / 2
    return np.clip(np.round((centre - seconds / 2) * fps), 0, last) / fps


def frame_index(frame_times, mention_start, mention_end, strategy: str, rng: np.random.Generator) -> int:
    """The still frame of a fragment with frames at `frame_times` [F] (s from its start) and mentions
    [M] (start, end, same clock): random ("uniform"), the centre one ("center", F // 2), or a random
    one inside a mention ("mention"; ValueError when no frame is)."""
    check_strategy(strategy)
    times = np.asarray(frame_times)
    if strategy == "uniform":
        return int(rng.integers(len(times)))
    if strategy == "center":
        return len(times) // 2
    s, e = np.asarray(mention_start)[:, None], np.asarray(mention_end)[:, None]
    inside = np.nonzero(np.any((times[None, :] >= s) & (times[None, :] <= e), axis=0))[0]
    if not len(inside):
        raise ValueError("strategy 'mention': no frame of this fragment lies inside a mention; cut fragments "
                         "with strategy 'mention' (centred on mentions) or use 'uniform'.")
    return int(rng.choice(inside))
