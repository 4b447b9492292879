"""TFDS builder for `spoken_sick`: the SICK sentence pairs, both sentences spoken by espeak-ng.

The user supplies SICK in its distributed tab-separated format (``SICK.txt``: columns pair_ID,
sentence_A, sentence_B, relatedness_score, entailment_label (or entailment_judgment), SemEval_set
TRAIN/TRIAL/TEST; other columns are ignored) in the manual directory. Each pair becomes one
example with both waveforms (16 kHz int16), word and phone alignments, the human relatedness score
and the entailment label, as Chrupala et al. (2017a) spoke SICK to test utterance embeddings.
Speech comes from `tfds_builders.spoken_shapes.speech` (same speakers, same determinism).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from tfds_builders.spoken_shapes import grammar
from tfds_builders.spoken_shapes import speech

FILE_NAME = "SICK.txt"
SPLITS = {"TRAIN": "train", "TRIAL": "validation", "TEST": "test"}
ENTAILMENT = ("NEUTRAL", "ENTAILMENT", "CONTRADICTION")
SPEAKERS = speech.make_speaker_table(grammar.ENGLISH.voices)
PAIRS_PER_FORK = 8  # pairs synthesized in one forked child (amortises the fork)
_COLUMNS = {"pair_id": ("pair_ID",), "sentence_a": ("sentence_A",), "sentence_b": ("sentence_B",),
            "relatedness": ("relatedness_score",), "entailment": ("entailment_label", "entailment_judgment"),
            "split": ("SemEval_set",)}

_MANUAL = f"""\
Obtain SICK (Marelli et al. 2014; https://marcobaroni.org/composes/sick.html, licence CC BY-NC-SA 3.0)
and place its tab-separated file `{FILE_NAME}` (header line with pair_ID, sentence_A, sentence_B,
relatedness_score, entailment_label, SemEval_set) in `<manual_dir>/spoken_sick/` or `<manual_dir>/`.
"""


def read_sick(path: str) -> dict[str, list[dict]]:
    """Parses a SICK-format TSV into {split: [row dict]}; raises ValueError naming the bad line."""
    lines = epath.Path(path).read_text(encoding="utf-8-sig").splitlines()
    if not lines:
        raise ValueError(f"{path} is empty; it must start with a header line naming the SICK columns")
    header = lines[0].split("\t")
    where = {}
    for key, names in _COLUMNS.items():
        found = [header.index(n) for n in names if n in header]
        if not found:
            raise ValueError(f"{path}: no column {' or '.join(names)} in the header {header}; "
                             f"the file must be SICK's tab-separated format")
        where[key] = found[0]
    out: dict[str, list[dict]] = {s: [] for s in SPLITS.values()}
    seen = set()
    for no, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < len(header):
            raise ValueError(f"{path}:{no}: {len(cells)} tab-separated fields, header has {len(header)}")
        row = {k: cells[i].strip() for k, i in where.items()}
        try:
            pair_id, score = int(row["pair_id"]), float(row["relatedness"])
        except ValueError as e:
            raise ValueError(f"{path}:{no}: pair_ID must be an integer and relatedness_score a number ({e})") from e
        if row["split"] not in SPLITS or row["entailment"] not in ENTAILMENT:
            raise ValueError(f"{path}:{no}: SemEval_set {row['split']!r} must be one of {list(SPLITS)} and the "
                             f"entailment label {row['entailment']!r} one of {list(ENTAILMENT)}")
        if pair_id in seen:
            raise ValueError(f"{path}:{no}: pair_ID {pair_id} appears twice; pair ids must be unique")
        if not any(c.isalpha() for c in row["sentence_a"]) or not any(c.isalpha() for c in row["sentence_b"]):
            raise ValueError(f"{path}:{no}: pair {pair_id} has a sentence without words; fix or drop it")
        seen.add(pair_id)
        out[SPLITS[row["split"]]].append({**row, "pair_id": pair_id, "relatedness": score})
    return out


def _intervals(items, label: str) -> dict:
    return {label: [x[0] for x in items], "start": np.array([x[1] for x in items], np.float32),
            "end": np.array([x[2] for x in items], np.float32)}


def speak_pair(row: dict, seed: int) -> dict:
    """One example from a parsed row; speakers of A and B drawn from rng([seed, pair_id])."""
    rng = np.random.default_rng([seed, row["pair_id"]])
    speakers = rng.integers(len(SPEAKERS), size=2)
    synthesizer = speech.get_synthesizer()
    example = {"pair_id": row["pair_id"], "relatedness": np.float32(row["relatedness"]),
               "entailment": row["entailment"]}
    for side, speaker_id in zip("ab", speakers):
        text = row[f"sentence_{side}"]
        utt = synthesizer.synthesize(text, SPEAKERS[int(speaker_id)], grammar.ENGLISH.joined_word_phones)
        example.update({f"sentence_{side}": text, f"audio_{side}": utt.waveform,
                        f"speaker_{side}": int(speaker_id), f"phonemes_{side}": utt.phonemes,
                        f"words_{side}": _intervals(utt.words, "word"),
                        f"phones_{side}": _intervals(utt.phones, "phone")})
    return example


def _speak_block(rows: list[dict], seed: int) -> list[dict]:
    return [speak_pair(row, seed) for row in rows]


def _isolated_block(task) -> list[dict]:
    rows, seed = task
    return speech.run_isolated(_speak_block, rows, seed)


def _init_worker() -> None:
    speech.get_synthesizer()  # one espeak initialisation per worker; the worker never speaks


def iter_examples(rows: list[dict], seed: int, num_workers: int):
    """Yields `speak_pair` of each row in order (in forked children; a spawn pool if num_workers > 0)."""
    tasks = [(rows[i:i + PAIRS_PER_FORK], seed) for i in range(0, len(rows), PAIRS_PER_FORK)]
    if num_workers <= 0:
        speech.get_synthesizer()
        for task in tasks:
            yield from _isolated_block(task)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(num_workers, os.cpu_count() or 1), initializer=_init_worker) as pool:
        for block in pool.imap(_isolated_block, tasks):
            yield from block


@dataclasses.dataclass(eq=False)
class SpokenSickConfig(tfds.core.BuilderConfig):
    """seed: speaker choice per pair; num_workers: spawned synthesis processes (0 = fork from this
    process, unsafe once JAX threads run); only speed changes, never the bytes."""

    seed: int = 0
    num_workers: int = 1


class Builder(tfds.core.GeneratorBasedBuilder):
    """spoken_sick: one example = one SICK pair with both sentences spoken."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL
    BUILDER_CONFIGS = [SpokenSickConfig(name="default", description="SICK spoken by 16 espeak-ng speakers.")]

    def __init__(self, *, file_format=None, **kwargs):
        # array_record is the only format that builds and reads without TensorFlow.
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        text = tfds.features.Text
        side = {}
        for s in "ab":
            side.update({
                f"sentence_{s}": text(), f"phonemes_{s}": text(), f"speaker_{s}": np.int32,
                f"audio_{s}": tfds.features.Tensor(shape=(None,), dtype=np.int16),  # 16 kHz
                f"words_{s}": tfds.features.Sequence({"word": text(), "start": np.float32, "end": np.float32}),
                f"phones_{s}": tfds.features.Sequence({"phone": text(), "start": np.float32, "end": np.float32}),
            })
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "pair_id": np.int64, "relatedness": np.float32,
                "entailment": tfds.features.ClassLabel(names=ENTAILMENT), **side}),
            supervised_keys=None,
            homepage="https://marcobaroni.org/composes/sick.html",
        )

    def _sick_path(self, dl_manager) -> str:
        manual = getattr(dl_manager, "_manual_dir", None)
        manual = os.fspath(manual) if manual else os.path.join(os.fspath(self.data_dir_root), "downloads", "manual")
        candidates = [os.path.join(manual, "spoken_sick", FILE_NAME), os.path.join(manual, FILE_NAME)]
        for path in candidates:
            if epath.Path(path).exists():
                return path
        raise FileNotFoundError(f"spoken_sick: {FILE_NAME} not found at {' or '.join(candidates)}. {_MANUAL}")

    def _split_generators(self, dl_manager):
        rows = read_sick(self._sick_path(dl_manager))
        return {split: self._generate_examples(split_rows) for split, split_rows in rows.items() if split_rows}

    def _generate_examples(self, rows):
        config = self.builder_config
        for example in iter_examples(rows, config.seed, config.num_workers):
            yield str(example["pair_id"]), example
