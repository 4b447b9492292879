"""moving_shapes examples: a clip or an episode -> PNG frames, narration speech, alignments, tracks.

* clip (Spoken Moments style): `clip_seconds` of video with 1-2 objects crossing it and ONE spoken
  description of the whole clip ("a small red circle moves to the right and ...").
* episode (instructional-video style): `episode_seconds` of video in which objects come in one after
  another (gaps of `episode_gap` seconds); the narrator mentions each ("a large blue star comes in
  from the left") starting `narration_offset` s after it enters, plus a uniform jitter of
  +-`narration_jitter` s (mentions never overlap: one waits for the previous one to end), so speech
  is only loosely synchronised with the picture. Fragments for training are sampled from episodes
  by the reader (`fragments.cut`).

Example `id`'s content comes from `numpy.random.default_rng([seed, id])` and its speech is synthesized
in a forked child with clean espeak state (`speech.run_isolated`), so bytes depend only on (spec, id).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from tfds_builders.spoken_shapes import grammar
from tfds_builders.spoken_shapes import scenes
from tfds_builders.spoken_shapes import speech
from tfds_builders.spoken_shapes import worker_pool

from . import motion

SPEED_RANGE = (0.35, 0.7)  # image sides per second
MENTION_GAP = 0.3  # seconds of silence at least between two mentions
SPEAKERS = speech.make_speaker_table(grammar.ENGLISH.voices)


@dataclasses.dataclass(frozen=True)
class Spec:
    """What fixes the content (see MovingShapesConfig for the meaning of each field)."""

    form: str
    seed: int
    image_size: int
    fps: int
    clip_seconds: float
    episode_seconds: float
    episode_gap: tuple[float, float]
    narration_offset: float
    narration_jitter: float


def _movers(rng, spec: Spec) -> list[motion.Mover]:
    if spec.form == "clips":
        movers = []
        for _ in range(int(rng.integers(1, 3))):
            m = motion.sample_mover(rng, 0.0, SPEED_RANGE)
            cross = m.leave - m.enter  # start so that it is on screen for much of the clip
            movers.append(dataclasses.replace(m, enter=float(rng.uniform(-0.5 * cross, 0.3 * spec.clip_seconds))))
        return movers
    movers, t = [], 0.3
    while t < spec.episode_seconds - 1.0:
        movers.append(motion.sample_mover(rng, t, SPEED_RANGE))
        t += float(rng.uniform(*spec.episode_gap))
    return movers


def _intervals(items, label: str, shift: float = 0.0) -> dict:
    return {label: [x[0] for x in items], "start": np.array([x[1] + shift for x in items], np.float32),
            "end": np.array([x[2] + shift for x in items], np.float32)}


def _concat(parts: list[dict]) -> dict:
    return {k: ([x for p in parts for x in p[k]] if isinstance(parts[0][k], list)
                else np.concatenate([p[k] for p in parts]).astype(np.float32)) for k in parts[0]}


def example(example_id: int, spec: Spec) -> dict:
    """One example: id, video (PNG bytes per frame), fps, text, audio (int16 at 16 kHz), speaker_id,
    words / phones (label, start, end in s on the video's clock), mentions (object, text, start, end),
    objects (shape, color, size, side, enter, leave), boxes float32 [O * F, 4] and visible bool [O * F]
    (object-major: [O, F, 4] and [O, F] flattened)."""
    rng = np.random.default_rng([spec.seed, example_id])
    movers = _movers(rng, spec)
    duration = spec.clip_seconds if spec.form == "clips" else spec.episode_seconds
    times = motion.frame_times(duration, spec.fps)
    video = [scenes.png_bytes(f) for f in motion.render_frames(movers, times, spec.image_size)]
    boxes, visible = motion.tracks(movers, times)
    speaker_id = int(rng.integers(len(SPEAKERS)))
    synthesizer = speech.get_synthesizer()
    joined = grammar.ENGLISH.joined_word_phones
    if spec.form == "clips":
        said = [(0, motion.clip_description(movers), 0.0)]
    else:
        said = [(o, motion.mention(m), m.enter + spec.narration_offset
                 + float(rng.uniform(-spec.narration_jitter, spec.narration_jitter))) for o, m in enumerate(movers)]
    audio = np.zeros(int(round(duration * speech.SAMPLE_RATE)), np.int16)
    mentions, words, phones, free = [], [], [], 0.0
    for o, text, want in said:
        utt = synthesizer.synthesize(text, SPEAKERS[speaker_id], joined)
        start = round(max(want, free, 0.0), 3)
        a = int(round(start * speech.SAMPLE_RATE))
        if a + len(utt.waveform) > len(audio):
            audio = np.concatenate([audio, np.zeros(a + len(utt.waveform) - len(audio), np.int16)])
        audio[a:a + len(utt.waveform)] = utt.waveform
        mentions.append((o, text, start, start + utt.duration))
        words.append(_intervals(utt.words, "word", start))
        phones.append(_intervals(utt.phones, "phone", start))
        free = start + utt.duration + MENTION_GAP
    return {
        "id": example_id, "video": video, "fps": spec.fps, "text": " . ".join(m[1] for m in mentions),
        "audio": audio, "speaker_id": speaker_id, "words": _concat(words), "phones": _concat(phones),
        "mentions": {"object": [m[0] for m in mentions], "text": [m[1] for m in mentions],
                     "start": np.array([m[2] for m in mentions], np.float32),
                     "end": np.array([m[3] for m in mentions], np.float32)},
        "objects": {"shape": [m.shape for m in movers], "color": [m.color for m in movers],
                    "size": [m.size for m in movers], "side": [m.side for m in movers],
                    "enter": np.array([m.enter for m in movers], np.float32),
                    "leave": np.array([m.leave for m in movers], np.float32)},
        "boxes": boxes.reshape(-1, 4), "visible": visible.reshape(-1),
    }


def _block(ids, spec: Spec) -> list[dict]:
    return [example(i, spec) for i in ids]


def _isolated_block(task) -> list[dict]:
    ids, spec = task
    speech.get_synthesizer()  # one espeak initialisation per process; it never speaks itself
    return speech.run_isolated(_block, ids, spec)


def iter_examples(ids, spec: Spec, pool: worker_pool.WorkerPool, per_fork: int = 4):
    """Yields `example(i, spec)` for each id in order, generated by `pool`'s workers."""
    ids = [int(i) for i in ids]
    tasks = [(ids[i:i + per_fork], spec) for i in range(0, len(ids), per_fork)]
    for block in pool.imap(_isolated_block, tasks):
        yield from block
