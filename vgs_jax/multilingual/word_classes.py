"""Word classes of spoken_shapes 2.0.0 captions in each language (en, hi, ja), for the attention analysis.

Havard et al. (2019a) found that attention pooling peaks on nouns in English but, in Japanese, on the
particle "ga" that ends the subject noun phrase. The classes here let `vgs_jax.analysis.attention_words`
compare content words and particles in every language. A caption word (the words of the `words`
alignment, i.e. the space-separated tokens; Japanese is written in hiragana with spaces) gets the class of
the first of these rules that applies:

* ``particle``: Hindi postpositions (का के की में पर से) and Japanese particles (が の に には で を, and the
  sentence-final よ ね); English has none (its prepositions are ``function`` words).
* ``function``: the language's closed-class words in `FUNCTION_WORDS` (articles, copula, auxiliaries,
  pronouns, demonstratives, conjunctions, English prepositions). Hindi एक is the indefinite article of every
  mention without a count (and "one" only after सिर्फ़/केवल/मात्र), so it is ``function``.
* ``number``: the count words of the grammar (English one..six; Hindi दो..छह; Japanese ひとつ.. and いっこ..).
* ``other``: the generic nouns that stand in for a shape ("thing", "object", "shape", "figure";
  आकृति, चीज़, वस्तु; もの, かたち, ずけい, ぶったい) and `OTHER_WORDS` (nouns naming the picture itself).
* ``size``, ``color``, ``shape``: every word of the size, colour and shape synonym phrases, in this order
  (e.g. "grass" of "grass green" is a colour word; "round" of "round shape" a shape word; Hindi रंग of
  "लाल रंग का" a colour word and आकार of "छोटे आकार का" a size word); Hindi adjectives in -ा also in their
  -े and -ी forms (पीले, पीली), as the grammar inflects them.
* ``spatial``: every word of the relation and position phrases ("left", "corner"; बाईं, ऊपर, कोने; ひだり,
  うえ, すみ).
* ``other``: every other word (verbs, adverbs, the caption frames' nouns: "picture", "canvas";
  तस्वीर; え, しゃしん), also words outside the grammar.

The tables are the grammar's own (`tfds_builders.spoken_shapes.grammar_v2`), so a synonym added there is
classified here without an edit.
"""

from typing import Iterable

LANGUAGES = ("en", "hi", "ja")
PARTICLES = {
    "en": frozenset(),
    "hi": frozenset({"का", "के", "की", "में", "पर", "से"}),
    "ja": frozenset({"が", "の", "に", "には", "で", "を", "よ", "ね"}),
}
FUNCTION_WORDS = {
    "en": frozenset({"a", "an", "the", "of", "to", "in", "on", "at", "near", "with", "by", "as", "among", "than",
                     "and", "also", "well", "along", "together", "is", "are", "there", "it", "this", "i", "you",
                     "we", "my", "what", "here", "can", "will", "may", "all", "other", "someone", "somewhere"}),
    "hi": frozenset({"है", "हैं", "हूँ", "एक", "और", "तथा", "एवं", "कि", "साथ", "ही", "तो", "मैं", "मुझे", "हम",
                     "आप", "यह", "इस", "ऐसा", "मेरे", "मेरी", "यहाँ"}),
    "ja": frozenset({"そして", "また", "それから", "さらに", "それと", "それに", "おまけに", "この", "ここ", "わたし",
                     "です", "います", "ください"}),
}
OTHER_WORDS = {"en": frozenset({"picture", "image"}), "hi": frozenset(), "ja": frozenset()}


def _words(table) -> set[str]:
    """Every space-separated word of the strings in a (nested) grammar table."""
    if isinstance(table, str):
        return set(table.split())
    values = table.values() if isinstance(table, dict) else table
    return set().union(*(_words(v) for v in values)) if values else set()


def _hindi_forms(words: set[str]) -> set[str]:
    """`words` with the other two forms of Hindi adjectives in -ा (grammar_v2._hi_adj: -े plural/oblique, -ी
    feminine), e.g. पीला -> पीले, पीली."""
    return words | {w[:-1] + end for w in words if w.endswith("ा") for end in ("े", "ी")}


def _tables(language: str) -> dict[str, Iterable]:
    from tfds_builders.spoken_shapes import grammar_v2 as g  # deferred: only spoken_shapes runs need it

    return {
        "en": dict(number=g.EN_NUMBERS, things=g.EN_THINGS, size=g.EN_SIZES, color=g.EN_COLORS, shape=g.EN_SHAPES,
                   spatial=(g.EN_RELATIONS, g.EN_WHERE)),
        "hi": dict(number=g.HI_NUMBERS, things=g.HI_THINGS, size=g.HI_SIZES, color=g.HI_COLORS, shape=g.HI_SHAPES,
                   spatial=(g.HI_RELATIONS, g.HI_WHERE)),
        "ja": dict(number=g.JA_NUMBERS, things=g.JA_THINGS, size=g.JA_SIZES, color=g.JA_COLORS, shape=g.JA_SHAPES,
                   spatial=(g.JA_RELATIONS, g.JA_WHERE)),
    }[language]


def word_classes(language: str) -> dict[str, str]:
    """word -> class (module doc) of every word the spoken_shapes 2.0.0 grammar of `language` lists."""
    if language not in LANGUAGES:
        raise ValueError(f"spoken_shapes 2.0.0 word classes exist for {LANGUAGES}, not {language!r}.")
    out: dict[str, str] = {}
    tables = _tables(language)
    inflect = _hindi_forms if language == "hi" else set
    rules = [("particle", PARTICLES[language]), ("function", FUNCTION_WORDS[language]),
             ("number", _words(tables["number"])), ("other", _words(tables["things"]) | OTHER_WORDS[language]),
             ("size", inflect(_words(tables["size"]))), ("color", inflect(_words(tables["color"]))),
             ("shape", _words(tables["shape"])),
             ("spatial", _words(tables["spatial"]))]
    for cls, words in rules:
        for word in words:
            out.setdefault(word, cls)
    return out

