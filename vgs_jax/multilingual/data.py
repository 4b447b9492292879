"""Parallel captions: the same images spoken in several languages, as one view per language and as batches.

`config.multilingual` fields read here:

    layout: "grouped"   one example per (caption, language), the captions of one meaning grouped by
                        `meaning_id` and told apart by `language` (spoken_shapes 2.0.0 `*_multi`)
            "fields"    one example holds every language; `renames[language]` = {field: field of the
                        example it is read from} (places_audio/bilingual: hindi {"audio": "audio_hindi"},
                        english {"caption_id": "caption_id_english"})

`parallel_views` gives one `LanguageView` per language: a source (len + [i]) whose example i is row i's
caption in that language, with the usual fields (audio, image, image_id, caption_id), so the single-language
pipeline, evaluation and analyses read it unchanged. `make_train_iterator` draws the same rows for every
language (one batch plan, from the element-wise longest utterance) and returns batches with the first
language in the usual fields and each other language L in audio_L [B, T_L, F], audio_mask_L [B, T_L],
audio_len_L [B] and caption_id_L [B].
"""

from typing import Sequence

import numpy as np

from vgs_jax import data_sources
from vgs_jax import input_pipeline
from vgs_jax.multilingual import model as ml_model

LAYOUTS = ("grouped", "fields")


class LanguageView:
    """Example i of a parallel split in one language: `source[rows[i]]` with `renames` applied."""

    def __init__(self, source: Sequence[dict], rows: np.ndarray, renames: dict[str, str] | None = None):
        self.source, self.rows, self.renames = source, np.asarray(rows, np.int64), dict(renames or {})

    def __len__(self) -> int:
        return len(self.rows)

    def _view(self, ex: dict) -> dict:
        ex = dict(ex)
        ex.update({field: ex[src] for field, src in self.renames.items()})
        return ex

    def __getitem__(self, i: int) -> dict:
        return self._view(self.source[int(self.rows[i])])

    def __getitems__(self, indices) -> list[dict]:
        rows = [int(self.rows[i]) for i in indices]
        exs = self.source.__getitems__(rows) if hasattr(self.source, "__getitems__") else [self.source[r] for r in rows]
        return [self._view(ex) for ex in exs]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_fields(source: Sequence[dict], names: tuple[str, ...]) -> list[tuple]:
    """(ex[name] for name in names) of every example; TFDS sources skip decoding images."""
    info, raw = getattr(source, "dataset_info", None), getattr(source, "data_source", None)
    if info is None or raw is None or not hasattr(raw, "__getitems__"):
        return [tuple(source[i][n] for n in names) for i in range(len(source))]
    import tensorflow_datasets as tfds  # deferred: costs ~0.4 s to import

    skip = {k: tfds.decode.SkipDecoding() for k, f in info.features.items() if isinstance(f, tfds.features.Image)}
    out = []
    for start in range(0, len(source), 1024):
        keys = list(range(start, min(start + 1024, len(source))))
        for rec in raw.__getitems__(keys):
            ex = info.features.deserialize_example_np(rec, decoders=skip)
            out.append(tuple(ex[n] for n in names))
    return out


def grouped_rows(source: Sequence[dict], languages: tuple[str, ...]) -> np.ndarray:
    """int64 [N, L]: row n holds the example index of meaning n's caption in each language (meanings in
    first-seen order). ValueError naming a meaning that lacks a language."""
    table: dict[int, dict[str, int]] = {}
    for i, (meaning, language) in enumerate(_read_fields(source, ("meaning_id", "language"))):
        table.setdefault(int(meaning), {})[_text(language)] = i
    rows = []
    for meaning, by_language in table.items():
        missing = [x for x in languages if x not in by_language]
        if missing:
            raise ValueError(f"meaning_id {meaning} has no caption in {missing} (it has {sorted(by_language)}); "
                             "config.multilingual.languages must be spoken in every example group (spoken_shapes: "
                             "use a *_multi config).")
        rows.append([by_language[x] for x in languages])
    return np.asarray(rows, np.int64).reshape(-1, len(languages))


def parallel_views(source: Sequence[dict], ml_config) -> dict[str, LanguageView]:
    """{language: LanguageView} of one split for `config.multilingual` (layout, languages, renames)."""
    languages = ml_model.check_languages(ml_config)
    layout = ml_config.layout
    if layout == "grouped":
        rows = grouped_rows(source, languages)
        return {x: LanguageView(source, rows[:, i]) for i, x in enumerate(languages)}
    if layout == "fields":
        renames = dict(ml_config.get("renames") or {})
        all_rows = np.arange(len(source))
        return {x: LanguageView(source, all_rows, dict(renames.get(x) or {})) for x in languages}
    raise ValueError(f"config.multilingual.layout={layout!r}; choose one of {LAYOUTS}.")


def view_lengths(views: dict[str, LanguageView]) -> dict[str, np.ndarray]:
    """Waveform lengths [N] per language: the underlying source's cached lengths where audio is not renamed."""
    out = {}
    for language, view in views.items():
        if "audio" in view.renames:
            out[language] = data_sources.example_lengths(view)
        else:
            out[language] = data_sources.example_lengths(view.source)[view.rows]
    return out


class ParallelIterator:
    """One train iterator per language over the same batch plan, zipped into one batch (module doc);
    checkpointable like a grain iterator (`get_state` / `set_state`)."""

    def __init__(self, iterators: dict):
        self._iterators = iterators

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batches = {language: next(it) for language, it in self._iterators.items()}
        (first, out), *others = batches.items()
        out = dict(out)
        for language, batch in others:
            if not np.array_equal(batch["image_id"], out["image_id"]):
                raise RuntimeError(f"parallel batches of {first!r} and {language!r} hold different images.")
            for field in ("audio", "audio_mask", "audio_len", "caption_id"):
                out[f"{field}_{language}"] = batch[field]
        return out

    def get_state(self) -> dict:
        return next(iter(self._iterators.values())).get_state()

    def set_state(self, state: dict) -> None:
        for it in self._iterators.values():
            it.set_state(state)


def make_train_iterator(views: dict[str, LanguageView], **kwargs) -> ParallelIterator:
    """`input_pipeline.make_train_iterator` (kwargs) of every language's view (`parallel_views`) with one
    batch plan."""
    lengths = np.max(np.stack(list(view_lengths(views).values())), axis=0)
    return ParallelIterator({language: input_pipeline.make_train_iterator(view, lengths=lengths, **kwargs)
                             for language, view in views.items()})
