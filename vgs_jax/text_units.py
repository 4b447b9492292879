"""Text units of the auxiliary text tasks: vocabularies, example -> unit ids, and which training
utterances have a transcription (the low-resource fraction).

Two unit kinds (`config.text.units`): "chars" (the lowercased caption text) and "phones" (the
builder's phone alignment, espeak IPA with stress marks removed). Unit ids are 1..V in vocabulary
order; 0 is the CTC blank and the padding value (`objectives.ctc`).

Config fields (`config.text`, see configs/shapes_mtl_asr.py):
    units: "chars" | "phones"
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
STRESS_MARKS = "ˈˌ"
IDS_KEY, LEN_KEY, AVAILABLE_KEY = "text_ids", "text_len", "text_available"


def vocabulary(units: str) -> tuple[str, ...]:
    """The symbols of `units` ("chars" or "phones"); symbol k has id k + 1."""
    if units == "chars":
        return CHARACTERS
    if units == "phones":
        return PHONES
    raise ValueError(f"config.text.units={units!r}; choose one of {UNITS}.")


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
    vocab = vocabulary(text.units)
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


def example_fields(config, *, training: bool = True) -> Callable[[dict], dict[str, np.ndarray]] | None:
    """For the input pipeline: example -> {IDS_KEY: int32 [max_len], LEN_KEY: int32 [],
    AVAILABLE_KEY: bool []} when the config has a `text` section, else None. In training, only
    `config.text.fraction` of the utterances are available (`has_transcription`); in evaluation all."""
    text = config.get("text")
    if not text:
        return None
    check_config(config)
    vocab, max_len = vocabulary(text.units), int(text.max_len)
    fraction = float(text.fraction) if training else 1.0

    def fields(example: dict) -> dict[str, np.ndarray]:
        ids = encode(units_of(example, text.units), vocab)
        if len(ids) > max_len:
            raise ValueError(f"caption_id={example['caption_id']} has {len(ids)} {text.units}, more than "
                             f"config.text.max_len={max_len}; raise max_len.")
        return {IDS_KEY: np.pad(ids, (0, max_len - len(ids))), LEN_KEY: np.int32(len(ids)),
                AVAILABLE_KEY: np.bool_(has_transcription(example["caption_id"], fraction, config.seed))}

    return fields
