"""Reading moving_shapes examples: object tracks, and fragments cut from episodes.

`tracks(ex)` reshapes the stored flat boxes/visibility to [objects, frames, ...]. `cut(ex, start, seconds)`
returns the part of an example between `start` and `start + seconds` on the video clock: its frames,
its audio samples, the words, phones and mentions that lie wholly inside (times shifted to the
fragment's start) and the tracks of those frames. Where the fragment starts is the reader's choice
(uniformly, or around mentions: Boggust et al. 2019's sampling strategies).
"""
from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000


def tracks(ex: dict) -> tuple[np.ndarray, np.ndarray]:
    """(boxes float32 [O, F, 4], visible bool [O, F]) of an example with F frames."""
    frames = len(ex["video"])
    boxes, visible = np.asarray(ex["boxes"], np.float32), np.asarray(ex["visible"], bool)
    if frames == 0 or len(visible) % frames or len(boxes) != len(visible):
        raise ValueError(f"example has {len(boxes)} boxes and {len(visible)} visibility flags for {frames} frames; "
                         "expected objects * frames of each (a moving_shapes example).")
    return boxes.reshape(-1, frames, 4), visible.reshape(-1, frames)


def _inside(intervals: dict, label: str, start: float, end: float) -> dict:
    s, e = np.asarray(intervals["start"], np.float32), np.asarray(intervals["end"], np.float32)
    keep = (s >= start) & (e <= end)
    return {label: [x for x, k in zip(intervals[label], keep) if k], "start": s[keep] - start, "end": e[keep] - start}


def cut(ex: dict, start: float, seconds: float) -> dict:
    """The fragment [start, start + seconds) of `ex` (see the module docstring); frames [f, H, W, 3]."""
    fps, frames = int(ex["fps"]), len(ex["video"])
    duration = frames / fps
    if seconds <= 0 or start < 0 or start + seconds > duration + 1e-6:
        raise ValueError(f"fragment [{start}, {start + seconds}) s is not inside the example's {duration} s of video.")
    f0, f1 = int(np.ceil(start * fps - 1e-9)), min(frames, int(np.ceil((start + seconds) * fps - 1e-9)))
    boxes, visible = tracks(ex)
    a0, a1 = int(round(start * SAMPLE_RATE)), int(round((start + seconds) * SAMPLE_RATE))
    mentions = _inside(ex["mentions"], "text", start, start + seconds)
    objects = [o for o, s, e in zip(ex["mentions"]["object"], ex["mentions"]["start"], ex["mentions"]["end"])
               if s >= start and e <= start + seconds]
    return {"video": np.stack([np.asarray(f) for f in ex["video"][f0:f1]]), "frame_times": np.arange(f0, f1) / fps - start,
            "audio": np.asarray(ex["audio"])[a0:a1], "words": _inside(ex["words"], "word", start, start + seconds),
            "phones": _inside(ex["phones"], "phone", start, start + seconds),
            "mentions": {**mentions, "object": objects}, "boxes": boxes[:, f0:f1], "visible": visible[:, f0:f1]}
