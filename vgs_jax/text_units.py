"""Text units of the auxiliary text tasks: vocabularies, example -> unit ids, and which training
utterances have a transcription (the low-resource fraction).

Two unit kinds (`config.text.units`): "chars" (the lowercased caption text) and "phones" (the
builder's phone alignment, espeak IPA with stress marks removed). Unit ids are 1..V in vocabulary
order; 0 is the CTC blank and the padding value (`objectives.ctc`).

Translations as the text side (`config.text.language`, "" = the spoken caption's own text): the text of
each utterance is its parallel caption in that language, the caption of the same `meaning_id` in
spoken_shapes 2.0.0's config of that language (`<size>_hi`, `<size>_ja`, `<size>` for "en"; a `*_multi`
dataset holds every language itself), read from every split of it. Characters only: the Hindi and
Japanese vocabularies are the characters of `grammar_v2`'s lexicons (Devanagari, hiragana) and space.

Config fields (`config.text`, see configs/shapes_mtl_asr.py):
    units: "chars" | "phones"
    language: "" | "en" | "hi" | "ja"  (optional) text side: the caption's own text, or its translation
    max_len: int            padded length of the unit ids in a batch (longer transcripts are an error)
    fraction: float in [0, 1]  share of training utterances whose transcription is used
    weights: speech_image, asr, text_image (floats): the task weights of `objectives.multitask`
"""

from typing import Callable

import numpy as np

UNITS = ("chars", "phones")
CHARACTERS = tuple(" 'abcdefghijklmnopqrstuvwxyz")
# spoken_shapes' English phones (espeak-ng IPA, stress marks removed): those of `small` 1.0.0, then those 2.0.0's
# voices add (found in a sample of every 9th utterance of `small:2.0.0`).
PHONES = ("a", "aɪ", "aɪə", "aʊ", "b", "d", "dʒ", "eə", "f", "h", "iə", "iː", "j", "k", "l", "m", "n", "oʊ",
          "p", "s", "t", "tʃ", "uː", "v", "w", "z", "æ", "ð", "ŋ", "ɐ", "ɑː", "ɑːɹ", "ɒ", "ɔ", "ɔː", "ɔːɹ",
          "ə", "əl", "əʊ", "ɚ", "ɛ", "ɛɹ", "ɜː", "ɡ", "ɪ", "ɪɹ", "ɹ", "ɾ", "ʃ", "ʊ", "ʌ", "θ", "ᵻ",
          "a:", "aa", "aɪɚ", "aː", "e", "eɪ", "eː", "i", "o", "oə", "oː", "r", "t̪", "ɑə", "ɔə", "əɪ", "əɹ", "ɛə",
          "ɜ", "ʉ", "ʉː", "ʌɹ", "ʌʉ", "ʍ", "ʒ", "ʲ")
# The characters of grammar_v2's Hindi and Japanese lexicons (every caption of `quick_multi` uses only these).
TRANSLATION_CHARACTERS = {
    "en": CHARACTERS,
    "hi": tuple(" ँंअआइईउऊएऐओऔकखगघचछजझटठडणतथदधनपफबभमयरलवशषसह़ािीुूृेैॉोौ्"),
    "ja": tuple(" あいうえおかがきぎくぐけこごさざしじすずせぜそぞただちっつてでとどなにねのはばぱひぴふぶぷべほまみむめもゃやゅゆょよらりるれろわをん"),
}
STRESS_MARKS = "ˈˌ"
IDS_KEY, LEN_KEY, AVAILABLE_KEY = "text_ids", "text_len", "text_available"


def vocabulary(units: str, language: str = "") -> tuple[str, ...]:
    """The symbols of `units` ("chars" or "phones") of the text side's `language` ("": the spoken caption's
    own, English); symbol k has id k + 1."""
    if units not in UNITS:
        raise ValueError(f"config.text.units={units!r}; choose one of {UNITS}.")
    if language and language not in TRANSLATION_CHARACTERS:
        raise ValueError(f"config.text.language={language!r}; choose one of {sorted(TRANSLATION_CHARACTERS)} "
                         "(spoken_shapes 2.0.0's languages) or '' (the spoken caption's own text).")
    if units == "phones":
        if language:
            raise ValueError(f"config.text.language={language!r} needs config.text.units='chars' (translations "
                             "come as characters; phones are the spoken caption's own).")
        return PHONES
    return TRANSLATION_CHARACTERS[language] if language else CHARACTERS


def config_vocabulary(config) -> tuple[str, ...]:
    """`vocabulary` of `config.text` (its units and language)."""
    return vocabulary(config.text.units, config.text.get("language", ""))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def units_of(example: dict, units: str) -> list[str]:
    """The transcription of `example` as a list of symbols of `units`."""
    if units == "chars":
        return list(_text(example["text"]).lower())
    if units == "phones":
        phones = [_text(p) for p in example["phones"]["phone"]]
        return [p.translate({ord(c): None for c in STRESS_MARKS}) for p in phones]
    raise ValueError(f"config.text.units={units!r}; choose one of {UNITS}.")


def encode(symbols: list[str], vocab: tuple[str, ...]) -> np.ndarray:
    """Symbols -> int32 ids 1..V; ValueError naming any symbol outside the vocabulary."""
    index = {s: i + 1 for i, s in enumerate(vocab)}
    unknown = sorted({s for s in symbols if s not in index})
    if unknown:
        raise ValueError(f"text units {unknown} are not in the vocabulary ({len(vocab)} symbols, "
                         "vgs_jax.text_units); add them there (the model's vocab_size grows with it).")
    return np.asarray([index[s] for s in symbols], np.int32)


def decode(ids, length: int, vocab: tuple[str, ...]) -> list[str]:
    """The first `length` ids (1..V) as symbols."""
    return [vocab[int(i) - 1] for i in np.asarray(ids)[:int(length)]]


def has_transcription(caption_id: int, fraction: float, seed: int) -> bool:
    """Whether a training caption's transcription is used when only `fraction` of them are: a draw
    fixed by (seed, caption_id), so a resumed run and every epoch use the same subset."""
    if fraction >= 1.0:
        return True
    return bool(np.random.default_rng([seed, int(caption_id)]).random() < fraction)


def check_config(config) -> None:
    """ValueError when `config.text` or `config.model.text` is inconsistent."""
    text = config.text
    vocab = config_vocabulary(config)
    if not 0.0 <= text.fraction <= 1.0:
        raise ValueError(f"config.text.fraction={text.fraction} must be in [0, 1] (share of training utterances "
                         "with a transcription).")
    if text.max_len < 1:
        raise ValueError(f"config.text.max_len={text.max_len} must be >= 1.")
    size = config.model.text.vocab_size
    if size != len(vocab):
        raise ValueError(f"config.model.text.vocab_size={size}, but units {text.units!r} have {len(vocab)} "
                         f"symbols; set vocab_size={len(vocab)}.")
    if config.get("train", {}).get("embedding_cache_chunks", 1) > 1:
        raise ValueError("config.train.embedding_cache_chunks > 1 is unsupported with text tasks (a `text` "
                         "section): the embedding cache keeps no CTC logits. Set it to 1.")
    if config.loss.get("chunked", False):
        raise ValueError("config.loss.chunked=True is unsupported with text tasks (a `text` section); set "
                         "loss.chunked=False.")


def parallel_texts(config) -> dict[int, str]:
    """meaning_id -> caption text in `config.text.language`, from every split of spoken_shapes 2.0.0's config of
    that language (the dataset itself when it is a `*_multi` config; built if missing and allowed)."""
    # pylint: disable=import-outside-toplevel,protected-access (configs import this module: keep it light)
    from vgs_jax import data_sources
    from vgs_jax.kws import pivot
    from vgs_jax.multilingual import data as ml_data
    language, data = config.text.language, config.dataset
    multi = data.name.partition(":")[0].endswith("_multi")
    name = data.name if multi else pivot.parallel_dataset_name(data.name, language, field="config.text.language")
    build = data.get("build_if_missing", False)
    first = data_sources.open_split(name, data.train_split, data_dir=data.data_dir, build_if_missing=build)
    table: dict[int, str] = {}
    for split in first.dataset_info.splits:
        source = data_sources.open_split(name, split, data_dir=data.data_dir)
        for meaning, lang, text in ml_data._read_fields(source, ("meaning_id", "language", "text")):
            if _text(lang) == language and table.setdefault(int(meaning), _text(text)) != _text(text):
                raise ValueError(f"{name}: meaning_id {int(meaning)} has two {language} captions "
                                 f"({table[int(meaning)]!r}, {_text(text)!r}); config.text.language needs one.")
    return table


def example_fields(config, *, training: bool = True) -> Callable[[dict], dict[str, np.ndarray]] | None:
    """For the input pipeline: example -> {IDS_KEY: int32 [max_len], LEN_KEY: int32 [],
    AVAILABLE_KEY: bool []} when the config has a `text` section, else None. In training, only
    `config.text.fraction` of the utterances are available (`has_transcription`); in evaluation all."""
    text = config.get("text")
    if not text:
        return None
    check_config(config)
    vocab, max_len = config_vocabulary(config), int(text.max_len)
    fraction = float(text.fraction) if training else 1.0
    translations = parallel_texts(config) if text.get("language") else None

    def symbols(example: dict) -> list[str]:
        if translations is None:
            return units_of(example, text.units)
        meaning = int(example["meaning_id"])
        if meaning not in translations:
            raise KeyError(f"meaning_id {meaning} (caption_id {int(example['caption_id'])}) has no "
                           f"{text.language} caption (config.text.language); the parallel config must hold the "
                           "same images.")
        return list(translations[meaning])

    def fields(example: dict) -> dict[str, np.ndarray]:
        ids = encode(symbols(example), vocab)
        if len(ids) > max_len:
            raise ValueError(f"caption_id={example['caption_id']} has {len(ids)} {text.units}, more than "
                             f"config.text.max_len={max_len}; raise max_len.")
        return {IDS_KEY: np.pad(ids, (0, max_len - len(ids))), LEN_KEY: np.int32(len(ids)),
                AVAILABLE_KEY: np.bool_(has_transcription(example["caption_id"], fraction, config.seed))}

    return fields
