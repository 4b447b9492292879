"""Tests of the moving_shapes builder: motion by hand, and a tiny build of each form checked against its frames."""
import numpy as np
import pytest

from tfds_builders.moving_shapes import fragments, motion
from tfds_builders.moving_shapes.moving_shapes_dataset_builder import Builder, MovingShapesConfig
from tfds_builders.spoken_shapes import scenes

BACKGROUND = np.array(scenes.BACKGROUND)


def test_a_mover_enters_crosses_and_leaves_by_hand():
    m = motion.Mover("square", "red", "small", "left", enter=1.0, speed=0.5, lane=0.3)
    r = scenes.DIAMETER["small"] / 2  # 0.1
    assert m.leave == pytest.approx(1.0 + (1.0 + 2 * r) / 0.5)
    assert (m.at(1.0).cx, m.at(1.0).cy) == pytest.approx((-r, 0.3))  # one radius outside the left side
    assert m.at(2.0).cx == pytest.approx(0.5 - r)
    assert m.at(m.leave).cx == pytest.approx(1.0 + r)
    assert not m.box(0.9)[1] and m.box(1.1)[1] and not m.box(m.leave + 0.01)[1]
    up = motion.Mover("star", "blue", "large", "bottom", enter=0.0, speed=1.0, lane=0.5)
    assert up.at(0.5).cy == pytest.approx(1.0 + up.radius - 0.5) and up.at(0.5).cx == 0.5
    box, visible = up.box(0.0)  # just below the frame: clipped to the bottom edge
    assert not visible and box[0] == box[2] == 1.0
    assert motion.frame_times(3.0, 8).tolist() == [k / 8 for k in range(24)]
    assert motion.clip_description([m, up]) == "a small red square moves to the right and a large blue star moves up"
    assert motion.mention(up) == "a large blue star comes in from the bottom"
    with pytest.raises(ValueError, match="form='film'"):
        MovingShapesConfig(name="x", form="film")


def _check_example(ex, seconds, fps):
    boxes, visible = fragments.tracks(ex)
    frames = np.stack(ex["video"])
    assert frames.shape == (int(seconds * fps), 32, 32, 3) and boxes.shape[:2] == visible.shape
    assert visible.shape == (len(ex["objects"]["shape"]), len(frames))
    for f, frame in enumerate(frames):  # an empty frame is background only; a visible box has paint
        drawn = np.any(np.abs(frame.astype(int) - BACKGROUND) > 8, axis=-1)
        assert drawn.any() == visible[:, f].any()
        for o in np.nonzero(visible[:, f])[0]:
            y0, x0, y1, x1 = (boxes[o, f] * 32).round().astype(int)
            assert drawn[max(y0 - 1, 0):y1 + 1, max(x0 - 1, 0):x1 + 1].any()
    words = ex["words"]
    assert len(words["word"]) > 0 and np.all(np.asarray(words["end"]) <= len(ex["audio"]) / 16000 + 1e-3)
    return boxes, visible


def test_tiny_builds_of_both_forms(tmp_path):
    clips = MovingShapesConfig(name="t_clips", form="clips", num_train=2, num_validation=1, num_test=1)
    episodes = MovingShapesConfig(name="t_episodes", form="episodes", num_train=1, num_validation=1, num_test=1,
                                  episode_seconds=6.0, episode_gap=(1.5, 2.0), narration_offset=0.5,
                                  narration_jitter=0.25, seed=1)
    for config in (clips, episodes):
        Builder(config=config, data_dir=str(tmp_path)).download_and_prepare()
    source = Builder(config=clips, data_dir=str(tmp_path)).as_data_source("train")
    assert len(source) == 2
    for ex in source:
        _check_example(ex, 3.0, 8)
        assert len(ex["mentions"]["text"]) == 1 and ex["text"].decode() == ex["mentions"]["text"][0].decode()
        assert ex["text"].decode().split() == [w.decode() for w in ex["words"]["word"]]
    ex = Builder(config=episodes, data_dir=str(tmp_path)).as_data_source("train")[0]
    _check_example(ex, 6.0, 8)
    enter = np.asarray(ex["objects"]["enter"])
    starts, ends = np.asarray(ex["mentions"]["start"]), np.asarray(ex["mentions"]["end"])
    assert len(enter) >= 2 and list(ex["mentions"]["object"]) == list(range(len(enter)))
    assert np.all(starts >= enter + 0.5 - 0.25 - 1e-3)  # offset minus jitter, or later when the narrator is busy
    assert np.all(starts[1:] >= ends[:-1] + 0.3 - 1e-3)  # mentions never overlap
    assert starts[0] == pytest.approx(enter[0] + 0.5, abs=0.25 + 1e-3)  # nobody spoke before the first
    fragment = fragments.cut(ex, 0.0, 3.0)
    assert fragment["video"].shape[0] == 24 and len(fragment["audio"]) == 48000
    assert all(e <= 3.0 for e in fragment["words"]["end"]) and fragment["boxes"].shape[1] == 24
    with pytest.raises(ValueError, match="not inside"):
        fragments.cut(ex, 5.0, 3.0)
