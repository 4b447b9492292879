"""The example fields each analysis reads, and what a corpus without them can still run.

Phone analyses need the ``phones`` alignments, word analyses the ``words`` alignments, gating and
the matchmap localisation/lexicon also the ``objects`` labels. spoken_shapes has every field;
places_audio, speech_coco and synthetically_spoken_coco store ``words`` but no ``phones``; the
other corpora have neither. `analyze` checks the first example of the split: analyses it cannot
feed are reported as not applicable (default set) or refused with `MissingFieldsError` (when
asked for by name).
"""

from typing import Sequence

FIELDS = {
    "probes": ("phones",),
    "abx": ("phones", "speaker_id"),
    "rsa": ("phones",),
    "boundaries": ("phones",),
    "word_presence": ("words",),
    "gating": ("words", "objects", "image_id"),
    "attention": ("words",),
    "localization": ("words", "objects"),
    "lexicon": ("words", "objects"),
    "vq_units": ("phones", "words"),
    "heatmaps": ("words",),
    "semantics": ("text",),
}


class MissingFieldsError(ValueError):
    """Analyses were asked for by name but the corpus lacks the fields they read."""


def missing_fields(analysis: str, example: dict) -> list[str]:
    """The fields of `FIELDS[analysis]` that `example` (a dataset example or `Activations.meta` entry) lacks."""
    if analysis not in FIELDS:
        raise ValueError(f"unknown analysis {analysis!r}; choose one of {list(FIELDS)}.")
    return [k for k in FIELDS[analysis] if k not in example]


def split_by_fields(analyses: Sequence[str], example: dict) -> tuple[list[str], dict[str, list[str]]]:
    """(analyses whose fields `example` has, {analysis: its missing fields} for the others), in order."""
    runnable, missing = [], {}
    for name in analyses:
        lacks = missing_fields(name, example)
        if lacks:
            missing[name] = lacks
        else:
            runnable.append(name)
    return runnable, missing


def not_applicable_reason(lacks: Sequence[str], where: str) -> str:
    """Why an analysis reading `lacks` cannot run on the corpus named by `where`."""
    return f"{where} has no {list(lacks)} (spoken_shapes has every field an analysis reads)"


def missing_fields_message(missing: dict[str, list[str]], example: dict, where: str) -> str:
    """The error for analyses asked for by name that `example` of `where` (e.g. "dataset 'x' split
    'y'") cannot feed: what is missing, for which analysis, and what can run instead."""
    lacking = sorted({k for fields in missing.values() for k in fields})
    runnable = [name for name in FIELDS if not missing_fields(name, example)]
    needs = "; ".join(f"{name} needs {fields}" for name, fields in missing.items())
    instead = (f"the analyses it can feed, {runnable} (e.g. --analyses={','.join(runnable)}); " if runnable else "")
    return (f"{where} has no {lacking} field(s) (its examples have {sorted(example)}), which the requested "
            f"analyses read: {needs}. What can run instead: {instead}every analysis that applies, by leaving "
            "out --analyses (the others are reported as not applicable); or activations of WAV files, with "
            "--wav_list=FILE (no alignments needed). spoken_shapes has every field.")
