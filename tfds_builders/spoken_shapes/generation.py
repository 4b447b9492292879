"""Generation of spoken_shapes examples: scene -> PNG image, 5 captions -> speech + alignments.

Everything about image `image_id` comes from `numpy.random.default_rng([seed, image_id])`,
and its speech is synthesized in a child process forked from a process whose espeak-ng state
is clean (see `speech.run_isolated`), so an example's bytes depend only on (config, image_id):
not on the worker count, the scheduling, or what was generated before.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Sequence

import numpy as np

from . import grammar
from . import scenes
from . import speech
from . import worker_pool

NUM_CAPTIONS = 5  # Spoken captions per image; caption_id = image_id * NUM_CAPTIONS + k.
IMAGES_PER_FORK = 4  # Images synthesized in one forked child (amortises the fork).


@dataclasses.dataclass(frozen=True)
class GenerationSpec:
    """What determines the content: seed, image side in pixels, caption language."""

    seed: int
    image_size: int
    language: str


def image_examples(image_id: int, spec: GenerationSpec) -> list[dict]:
    """The NUM_CAPTIONS examples of one image, as plain Python / NumPy values.

    Each example: caption_id, image_id (int), image (PNG bytes), audio (int16 [n] at 16 kHz),
    text, phonemes (str), speaker_id (int), words / phones (dicts of lists: label, start,
    end in seconds), objects (dict: shape, color, size names; bbox float32 [num_objects, 4]).
    """
    rng = np.random.default_rng([spec.seed, image_id])
    objects = scenes.sample_scene(rng)
    png = scenes.png_bytes(scenes.render(objects, spec.image_size))
    lexicon = grammar.get_lexicon(spec.language)
    texts = grammar.make_captions(objects, lexicon, rng, NUM_CAPTIONS)
    speakers = speech.make_speaker_table(lexicon.voices)
    speaker_ids = rng.integers(len(speakers), size=NUM_CAPTIONS)
    synthesizer = speech.get_synthesizer()
    annotations = {
        "shape": [o.shape for o in objects],
        "color": [o.color for o in objects],
        "size": [o.size for o in objects],
        "bbox": np.stack([o.bbox() for o in objects]).astype(np.float32),
    }
    examples = []
    for k, (text, speaker_id) in enumerate(zip(texts, speaker_ids)):
        utt = synthesizer.synthesize(text, speakers[int(speaker_id)], lexicon.joined_word_phones)
        examples.append({
            "caption_id": image_id * NUM_CAPTIONS + k,
            "image_id": image_id,
            "image": png,
            "audio": utt.waveform,
            "text": text,
            "phonemes": utt.phonemes,
            "speaker_id": int(speaker_id),
            "words": _intervals(utt.words, "word"),
            "phones": _intervals(utt.phones, "phone"),
            "objects": annotations,
        })
    return examples


def _intervals(items, label: str) -> dict:
    return {
        label: [x[0] for x in items],
        "start": np.array([x[1] for x in items], dtype=np.float32),
        "end": np.array([x[2] for x in items], dtype=np.float32),
    }


def _block_examples(image_ids: Sequence[int], spec: GenerationSpec) -> list[list[dict]]:
    # Looked up at call time so tests can patch `image_examples`.
    return [image_examples(i, spec) for i in image_ids]


def _isolated_block(task) -> list[list[dict]]:
    image_ids, spec = task
    speech.get_synthesizer()  # One espeak initialisation per process; it never speaks itself.
    return speech.run_isolated(_block_examples, image_ids, spec)


def num_pool_workers(num_workers: int, num_images: int) -> int:
    """Workers worth starting for `num_images` images: at most one per block and per CPU."""
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}.")
    if num_workers == 0:
        return 0
    num_blocks = -(-num_images // IMAGES_PER_FORK)
    return min(num_workers, os.cpu_count() or 1, max(1, num_blocks))


def iter_image_examples(image_ids: Sequence[int], spec: GenerationSpec, num_workers: int = 0,
                        pool: worker_pool.WorkerPool | None = None) -> Iterator[list[dict]]:
    """Yields `image_examples(i, spec)` for each id, in order.

    num_workers=0 forks the children from this process; num_workers>=1 uses that many worker
    processes (capped at the CPU count and the number of blocks; see worker_pool for why they
    are not multiprocessing workers) that fork the children; `pool` reuses running workers
    instead. Same bytes either way.
    """
    image_ids = [int(i) for i in image_ids]
    tasks = [(image_ids[i:i + IMAGES_PER_FORK], spec)
             for i in range(0, len(image_ids), IMAGES_PER_FORK)]
    if not tasks:
        return
    if pool is not None:
        for block in pool.imap(_isolated_block, tasks):
            yield from block
        return
    workers = num_pool_workers(num_workers, len(image_ids))
    if workers == 0:
        for task in tasks:
            yield from _isolated_block(task)
        return
    with worker_pool.WorkerPool(workers) as own_pool:
        for block in own_pool.imap(_isolated_block, tasks):
            yield from block
