"""Keyword vocabularies, and what each utterance's text and image say about them.

A vocabulary is a tuple of `Keyword`s. On spoken_shapes ("spoken_shapes"): the 7 shapes, 8 colours
and 2 sizes of its scenes, named in English. A keyword is

- *spoken* (exact relevance) when one of its forms in the utterance's language (`language` field,
  English without one) is a word of the utterance's transcript (`words` alignment, else `text`). In
  English the forms are the name and, for shapes, the plural the captions use; in spoken_shapes
  2.0.0's Hindi and Japanese (cross-lingual spotting, `kws.pivot`) they are the translation: every
  inflection of the plainest lexicon entry (Hindi -a/-e/-i adjectives; shapes' plural and oblique),
  its head word (Japanese "おれんじいろ の" -> "おれんじいろ");
- *shown* (semantic relevance) when the utterance's image has an object of that shape, colour or
  size (`objects` scene metadata). Synonyms ("little", "crimson", "disc" in 2.0.0) and partial
  captions make the two differ.

On a captioned corpus ("caption_words", Flickr8K: Kamper et al. 2017) the vocabulary is the
`model.speech.num_keywords` most frequent words of the training captions, stop words and non-words
left out (ties alphabetically); such a keyword is spoken when the word is in the transcript and
*shown* when it is in any caption of the utterance's image in the split (`image_relevance`: Kamper et
al. 2019 had people judge semantic relevance; the image's other captions are the automatic proxy).

Tagger targets per training example (`config.kws.tagger_targets`): "text", the caption's bag of
keywords (each of an image's captions in turn, so the tagger learns how often each keyword is said
of the image), "scene", the concepts its image shows, or "pretrained", a tagger file's outputs for its
image vector (`kws.tagger_file`, vocabulary "tagger_file"). None reaches the speech model, which only
sees the tagger's outputs (or, with `loss.oracle_tagger`, the scene's or the file's). With
`kws.tagger_language` set ("en") the text targets are those of the same image's caption in that
language (`kws.pivot`: cross-lingual spotting, Kamper & Roth 2018). Batches carry the targets as
`keyword_targets` float32 [B, V] (`example_fields`).
"""
import collections
import dataclasses
from typing import Callable, Sequence

import numpy as np

from vgs_jax import data_sources
from vgs_jax.kws import pivot
from vgs_jax.kws import tagger_file
from vgs_jax.objectives.tags import TARGETS_KEY

TAGGER_TARGETS = ("text", "scene", "pretrained")


@dataclasses.dataclass(frozen=True)
class Keyword:
    """name: the query word; kind: the `objects` field it names ("shape", "color", "size") and
    index its class number there; forms: English words that count as speaking it; translations:
    language -> the words that count in that language."""

    name: str
    kind: str
    index: int
    forms: tuple[str, ...]
    translations: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def forms_in(self, language: str) -> tuple[str, ...]:
        """The words that speak this keyword in `language` ("en": `forms`)."""
        if language == "en":
            return self.forms
        table = dict(self.translations)
        if language not in table:
            raise ValueError(f"Keyword {self.name!r} has no {language!r} forms (it has en and {sorted(table)}); "
                             "exact spotting in that language needs a vocabulary that translates it.")
        return table[language]


def _heads(phrases) -> tuple[str, ...]:
    """The first word of each phrase, in order, without repeats."""
    return tuple(dict.fromkeys(p.split()[0] for p in phrases))


def _translations(kind: str, concept: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(("hi", forms), ("ja", forms)) of a spoken_shapes concept: the first (plainest) entry of
    grammar_v2's lexicon, in every inflection the captions use, head words only."""
    from tfds_builders.spoken_shapes import grammar_v2  # deferred: only spoken_shapes runs need it

    hi = getattr(grammar_v2, f"HI_{kind.upper()}S")[concept][0]
    hi = hi if kind == "shape" else tuple(grammar_v2._hi_adj(hi, form) for form in "mef")
    ja = (getattr(grammar_v2, f"JA_{kind.upper()}S")[concept][0],)
    return (("hi", _heads(hi)), ("ja", _heads(ja)))


def spoken_shapes_keywords() -> tuple[Keyword, ...]:
    """Shapes (with the captions' plurals), colours and sizes of spoken_shapes, in that order."""
    from tfds_builders.spoken_shapes import grammar  # deferred: only spoken_shapes runs need it
    from tfds_builders.spoken_shapes import scenes

    shapes = tuple(Keyword(s, "shape", i, tuple(grammar.ENGLISH.shapes[s]), _translations("shape", s))
                   for i, s in enumerate(scenes.SHAPES))
    colors = tuple(Keyword(c, "color", i, (c,), _translations("color", c)) for i, c in enumerate(scenes.COLORS))
    sizes = tuple(Keyword(s, "size", i, (s,), _translations("size", s)) for i, s in enumerate(scenes.SIZES))
    return shapes + colors + sizes


# English function words left out of caption vocabularies (closed-class words, a subset of NLTK's English stop list).
STOP_WORDS = frozenset("""a an the and or but if of at by for with about against between into through during
before after above below to from up down in out on off over under again further then once here there when where
why how all any both each few more most other some such no nor not only own same so than too very can will just
should now is are was were be been being have has had having do does did doing i me my we our you your he him his
she her it its they them their what which who whom this that these those am while as until""".split())


def caption_word_keywords(config) -> tuple[Keyword, ...]:
    """The `config.model.speech.num_keywords` most frequent content words of the training captions
    (count of captions that hold the word; ties alphabetically), kind "word"."""
    data = config.dataset
    source = data_sources.open_config_split(data, data.train_split,
                                            build_if_missing=data.get("build_if_missing", False))
    counts = collections.Counter(w for i in range(len(source)) for w in set(transcript_words(source[i]))
                                 if w.isalpha() and w not in STOP_WORDS)
    n = config.model.speech.num_keywords
    if len(counts) < n:
        raise ValueError(f"config.model.speech.num_keywords={n}, but the {data.train_split} captions of {data.name} "
                         f"hold only {len(counts)} content words; set num_keywords <= {len(counts)}.")
    ranked = sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))[:n]
    return tuple(Keyword(w, "word", i, (w,)) for i, (w, _) in enumerate(ranked))


def tagger_file_keywords(config) -> tuple[Keyword, ...]:
    """The keywords of the pretrained tagger file `config.kws.tagger_weights` (`kws.tagger_file`), kind "word"."""
    words = tagger_file.load(config.kws.tagger_weights).keywords
    return tuple(Keyword(w, "word", i, (w,)) for i, w in enumerate(words))


VOCABULARIES: dict[str, Callable[..., tuple[Keyword, ...]]] = {
    "spoken_shapes": lambda config: spoken_shapes_keywords(),
    "caption_words": caption_word_keywords,
    "tagger_file": tagger_file_keywords,
}


def vocabulary(config) -> tuple[Keyword, ...]:
    """The keywords of `config.kws.vocabulary`; ValueError listing the known ones."""
    name = config.kws.vocabulary
    if name not in VOCABULARIES:
        raise ValueError(f"Unknown config.kws.vocabulary {name!r}; choose one of {sorted(VOCABULARIES)}.")
    return VOCABULARIES[name](config)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def transcript_words(example: dict) -> list[str]:
    """Lower-case words of the example's transcript: the `words` alignment, else `text` split on spaces."""
    if "words" in example:
        return [_text(w).lower() for w in example["words"]["word"]]
    if "text" in example:
        return _text(example["text"]).lower().split()
    raise KeyError(f"Example caption_id={example.get('caption_id')} has neither 'words' nor 'text'; exact "
                   "keyword spotting needs a transcript.")


def language(example: dict) -> str:
    """The example's `language` field ("en" when it has none: spoken_shapes 1.0.0, Flickr8K)."""
    return _text(example.get("language", "en")) or "en"


def spoken(example: dict, keywords: tuple[Keyword, ...]) -> np.ndarray:
    """bool [V]: keyword v is a word of the transcript, in the example's language (exact relevance)."""
    words, lang = set(transcript_words(example)), language(example)
    return np.array([bool(words.intersection(k.forms_in(lang))) for k in keywords])


def shown(example: dict, keywords: tuple[Keyword, ...]) -> np.ndarray:
    """bool [V]: the example's image has an object of keyword v's class (semantic relevance)."""
    if any(k.kind == "word" for k in keywords):
        raise ValueError("Caption-word keywords are shown by the image's captions, not by one example: use "
                         "image_relevance over the split (and kws.tagger_targets='text' for training).")
    if "objects" not in example:
        raise KeyError(f"Example caption_id={example.get('caption_id')} has no 'objects'; semantic keyword "
                       "spotting needs the scene metadata (spoken_shapes).")
    objects = example["objects"]
    return np.array([k.index in {int(i) for i in objects[k.kind]} for k in keywords])


def image_relevance(spoken_matrix: np.ndarray, image_ids: Sequence[int]) -> np.ndarray:
    """bool [N, V]: keyword v is spoken in some caption (row) of the same image as row n."""
    image_ids = np.asarray(image_ids)
    images, index = np.unique(image_ids, return_inverse=True)
    per_image = np.zeros((len(images), spoken_matrix.shape[1]), bool)
    np.logical_or.at(per_image, index, spoken_matrix)
    return per_image[index]


def _pretrained_fields(config) -> Callable[[dict], dict[str, np.ndarray]]:
    """example -> {TARGETS_KEY: the tagger file's probabilities for its image vector}."""
    tagger, key = tagger_file.load(config.kws.tagger_weights), config.dataset.image_key
    if config.kws.vocabulary != "tagger_file":
        raise ValueError(f"config.kws.tagger_targets='pretrained' scores the tagger file's keywords; set "
                         f"kws.vocabulary='tagger_file' (got {config.kws.vocabulary!r}).")
    return lambda example: {TARGETS_KEY: tagger.probabilities(example[key])}


def example_fields(config) -> Callable[[dict], dict[str, np.ndarray]] | None:
    """For the train iterator: example -> {TARGETS_KEY: float32 [V]} (the tagger's targets) when the
    config trains a keyword spotter (has a `kws` section), else None."""
    kws = config.get("kws")
    if not kws:
        return None
    if kws.tagger_targets not in TAGGER_TARGETS:
        raise ValueError(f"config.kws.tagger_targets={kws.tagger_targets!r}; choose one of {TAGGER_TARGETS}.")
    if config.get("train", {}).get("embedding_cache_chunks", 1) > 1:
        raise ValueError(f"config.train.embedding_cache_chunks={config.train.embedding_cache_chunks} is unsupported "
                         "with keyword spotting (a `kws` section, loss.name='visual_tags'): the embedding cache keeps "
                         "no keyword logits. Set train.embedding_cache_chunks=1.")
    if config.loss.get("oracle_tagger") and kws.tagger_targets == "text":
        raise ValueError(f"config.loss.oracle_tagger=True with config.kws.tagger_targets={kws.tagger_targets!r} would "
                         "train the speech model on its transcripts; set tagger_targets='scene' (a perfect visual "
                         "tagger), 'pretrained' (a tagger file) or oracle_tagger=False.")
    keywords = vocabulary(config)
    num = config.model.speech.get("num_keywords")
    if num != len(keywords):
        raise ValueError(f"config.model.speech.num_keywords={num}, but vocabulary {kws.vocabulary!r} has "
                         f"{len(keywords)} keywords; set num_keywords={len(keywords)}.")
    if kws.tagger_targets == "pretrained":
        return _pretrained_fields(config)
    relevance = spoken if kws.tagger_targets == "text" else shown
    if kws.get("tagger_language"):
        if kws.tagger_targets != "text":
            raise ValueError(f"config.kws.tagger_language={kws.tagger_language!r} picks the captions the tagger learns "
                             "from; it needs kws.tagger_targets='text' (or set tagger_language='').")
        return pivot.pivot_fields(config, lambda example: spoken(example, keywords))
    return lambda example: {TARGETS_KEY: relevance(example, keywords).astype(np.float32)}
