"""Examples of spoken_shapes 2.0 from planned images (`plan_v2.ImagePlan`): render and speak.

One example per (caption k, language). Voices come from `speech.sample_voice` (pool "train",
or "held_out" in test_unseen_speakers) and recording conditions from `acoustics.apply`, both
drawn from `numpy.random.default_rng([seed, 2, image_id, k, language index, pool index])`;
word and phone times are shifted by the added leading silence and clipped to the recording.
As in 1.0, blocks of images are synthesized in forked children (`speech.run_isolated`).
`SpecV2.synthetic` speaks the captions with TTS voices instead (`tts_augmentation`).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np

from . import acoustics
from . import generation
from . import grammar
from . import grammar_v2
from . import plan_v2
from . import scenes
from . import speech
from . import tts_augmentation
from . import worker_pool

POOLS = ("train", "held_out")
# Phone counts of words espeak reads together with the previous one (see grammar.Lexicon).
JOINED_WORD_PHONES = {"en": grammar.ENGLISH.joined_word_phones}


@dataclasses.dataclass(frozen=True)
class SpecV2:
    """seed, image side, the languages spoken (in order), whether the sound is clean, and
    whether the captions are spoken by TTS voices (`tts_augmentation`) instead of a pool's."""

    seed: int
    image_size: int
    languages: tuple[str, ...]
    clean: bool = False
    synthetic: bool = False


def caption_id(image_id: int, k: int, language: str, pool: str) -> int:
    """Unique over a size's configs: ((image_id * 5 + k) * 4 + language index) * 2 + pool."""
    return ((image_id * 5 + k) * 4 + grammar_v2.LANGUAGES.index(language)) * 2 + POOLS.index(pool)


def _shift(items, offset: float, duration: float):
    """(labels, start float32 [n], end float32 [n]) moved by offset s, clipped to [0, duration]."""
    labels = [x[0] for x in items]
    start = np.clip(np.array([x[1] for x in items], np.float64) + offset, 0, duration)
    end = np.clip(np.array([x[2] for x in items], np.float64) + offset, 0, duration)
    return labels, start.astype(np.float32), end.astype(np.float32)


def image_examples(image: plan_v2.ImagePlan, spec: SpecV2) -> list[dict]:
    """The examples of one planned image (caption-major, then language), plain values."""
    png = scenes.png_bytes(scenes.render(image.objects, spec.image_size))
    pool = "held_out" if image.split == "test_unseen_speakers" else "train"
    stream = tts_augmentation.STREAM if spec.synthetic else POOLS.index(pool)
    id_offset = tts_augmentation.CAPTION_ID_OFFSET if spec.synthetic else 0
    options = acoustics.AcousticOptions.clean() if spec.clean else acoustics.AcousticOptions()
    objects = {
        "shape": [o.shape for o in image.objects], "color": [o.color for o in image.objects],
        "size": [o.size for o in image.objects],
        "bbox": np.stack([o.bbox() for o in image.objects]).astype(np.float32),
    }
    synthesizer = speech.get_synthesizer()
    examples = []
    for cap in image.captions:
        for language in spec.languages:
            rng = np.random.default_rng([spec.seed, 2, image.image_id, cap.k,
                                         grammar_v2.LANGUAGES.index(language), stream])
            voice = (tts_augmentation.tts_voice(rng, language) if spec.synthetic
                     else speech.sample_voice(rng, language, pool))
            text = cap.texts[language]
            utt = synthesizer.speak(text, voice, JOINED_WORD_PHONES.get(language))
            wave, lead = acoustics.apply(acoustics.from_int16(utt.waveform), rng, options)
            audio = acoustics.to_int16(wave)
            duration = audio.shape[0] / speech.SAMPLE_RATE
            words, w_start, w_end = _shift(utt.words, lead, duration)
            phones, p_start, p_end = _shift(utt.phones, lead, duration)
            examples.append({
                "caption_id": caption_id(image.image_id, cap.k, language, pool) + id_offset,
                "meaning_id": image.image_id * plan_v2.NUM_CAPTIONS + cap.k,
                "image_id": image.image_id,
                "image": png,
                "audio": audio,
                "text": text,
                "language": language,
                "phonemes": utt.phonemes,
                "speaker_id": int(voice.speaker_id),
                "words": {"word": words, "start": w_start, "end": w_end},
                "phones": {"phone": phones, "start": p_start, "end": p_end},
                "objects": objects,
                "consistent_image_ids": np.asarray(cap.consistent, np.int64),
                "minimal_pair_of": image.minimal_pair_of,
            })
    return examples


def _block(images: Sequence, spec: SpecV2) -> list[list[dict]]:
    return [image_examples(image, spec) for image in images]


def _isolated_block(task) -> list[list[dict]]:
    images, spec = task
    speech.get_synthesizer()  # One espeak initialisation per process; it never speaks itself.
    return speech.run_isolated(_block, images, spec)


def iter_image_examples(images: Sequence, spec: SpecV2, num_workers: int = 0,
                        pool: worker_pool.WorkerPool | None = None) -> Iterator[list[dict]]:
    """Yields `image_examples(image, spec)` for each planned image, in order (same bytes for
    any worker count; see generation.iter_image_examples)."""
    size = generation.IMAGES_PER_FORK
    tasks = [(list(images[i:i + size]), spec) for i in range(0, len(images), size)]
    if not tasks:
        return
    if pool is not None:
        for block in pool.imap(_isolated_block, tasks):
            yield from block
        return
    workers = generation.num_pool_workers(num_workers, len(images))
    if workers == 0:
        for task in tasks:
            yield from _isolated_block(task)
        return
    with worker_pool.WorkerPool(workers) as own_pool:
        for block in own_pool.imap(_isolated_block, tasks):
            yield from block
