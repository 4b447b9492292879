"""Parallel captions of spoken_shapes 2.0: one `consistency.Meaning`, rendered in en, hi and ja.

A meaning becomes clauses: the relation ("A above B") and one clause per other mention; each
language renders a mention as a noun phrase (with synonyms for colours, shapes, sizes, counts,
regions and relations) and wraps the clauses in one of its paraphrase templates. English is
lower case without punctuation; Hindi is Devanagari; Japanese is hiragana with spaces between
words (espeak-ng reads kana, not kanji, and needs spaces for word alignments).
"""

from __future__ import annotations

import numpy as np

from .consistency import Meaning, Mention

LANGUAGES = ("en", "hi", "ja")
VOICES = {"en": "en-us", "hi": "hi", "ja": "ja"}  # espeak voice of each language (for reference).


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


# ---- English ----------------------------------------------------------------------------------
EN_SHAPES = {
    "circle": (("circle", "circles"), ("disc", "discs"), ("round shape", "round shapes"),
               ("circular shape", "circular shapes")),
    "square": (("square", "squares"), ("box", "boxes"), ("block", "blocks"),
               ("square shape", "square shapes")),
    "triangle": (("triangle", "triangles"), ("triangular shape", "triangular shapes")),
    "star": (("star", "stars"), ("star shape", "star shapes")),
    "diamond": (("diamond", "diamonds"), ("rhombus", "rhombuses"), ("lozenge", "lozenges")),
    "cross": (("cross", "crosses"), ("plus sign", "plus signs"),
              ("plus shaped figure", "plus shaped figures")),
    "hexagon": (("hexagon", "hexagons"), ("hexagonal shape", "hexagonal shapes")),
}
EN_COLORS = {"red": ("red", "crimson", "scarlet", "cherry"), "orange": ("orange", "amber", "tangerine", "pumpkin"),
             "yellow": ("yellow", "golden", "lemon", "canary"), "green": ("green", "emerald", "grass green", "jade"),
             "blue": ("blue", "azure", "cobalt", "sapphire"), "purple": ("purple", "violet", "plum"),
             "pink": ("pink", "rose", "rosy", "blush", "bubblegum"), "white": ("white", "ivory", "snow white", "pearly", "milky")}
EN_SIZES = {"small": ("small", "little", "tiny", "miniature", "petite", "smallish"),
            "large": ("large", "big", "huge", "giant", "enormous", "massive")}
EN_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
EN_EXACTLY = ("", "", "exactly", "precisely")
EN_THINGS = (("shape", "shapes"), ("object", "objects"), ("thing", "things"), ("item", "items"),
             ("figure", "figures"), ("form", "forms"), ("element", "elements"))
EN_TOTAL = ("in total", "altogether", "in all", "overall", "counting everything")
EN_RELATIONS = {
    "left_of": ("to the left of", "left of", "on the left side of"),
    "right_of": ("to the right of", "right of", "on the right side of"),
    "above": ("above", "over", "on top of", "higher than", "up above"),
    "below": ("below", "under", "beneath", "underneath", "lower than", "further down than"),
    "next_to": ("next to", "beside", "alongside", "by the side of"),
}
EN_WHERE = {
    ("top", "left"): ("in the top left corner", "in the upper left corner", "at the top left"),
    ("top", "center"): ("at the top", "near the top", "at the top of the picture"),
    ("top", "right"): ("in the top right corner", "in the upper right corner", "at the top right"),
    ("middle", "left"): ("on the left", "on the left hand side", "at the left edge"),
    ("middle", "center"): ("in the middle", "in the center", "at the centre of the image"),
    ("middle", "right"): ("on the right", "on the right hand side", "at the right edge"),
    ("bottom", "left"): ("in the bottom left corner", "in the lower left corner",
                         "at the bottom left"),
    ("bottom", "center"): ("at the bottom", "near the bottom", "at the bottom of the picture"),
    ("bottom", "right"): ("in the bottom right corner", "in the lower right corner",
                          "at the bottom right"),
}
EN_AND = ("and", "and", "as well as", "along with", "together with", "and also")
EN_TEMPLATES = (
    "{x}", "there {be} {x}", "i can see {x}", "you can see {x}", "we see {x}",
    "this picture shows {x}", "this image shows {x}", "the picture contains {x}",
    "the image has {x}", "here we have {x}", "in this picture there {be} {x}", "look at {x}",
    "the scene shows {x}", "a drawing of {x}", "a dark background with {x}",
    "on the grey background there {be} {x}", "somewhere in the picture there {be} {x}",
    "among other things there {be} {x}", "the photo includes {x}", "this illustration depicts {x}",
    "the diagram features {x}", "i notice {x}", "you will find {x}", "it displays {x}",
    "the artist drew {x}", "someone painted {x}", "what i see is {x}", "visible here {be} {x}",
    "we are looking at {x}", "the canvas shows {x}", "on display {be} {x}",
    "the screen presents {x}", "this sketch contains {x}", "i spot {x}", "you may observe {x}",
    "in the frame we find {x}", "the snapshot captures {x}", "my view contains {x}",
    "the painting has {x}", "what we have here is {x}", "i believe there {be} {x}",
    "apparently there {be} {x}", "the view reveals {x}", "clearly visible {be} {x}",
)


def _en_np(m: Mention, rng) -> tuple[str, bool]:
    """(noun phrase, plural) of a mention."""
    words = []
    if m.size:
        words.append(_pick(rng, EN_SIZES[m.size]))
    if m.color:
        words.append(_pick(rng, EN_COLORS[m.color]))
    plural = m.count is not None and m.count > 1
    noun = _pick(rng, EN_SHAPES[m.shape]) if m.shape else _pick(rng, EN_THINGS)
    words.append(noun[plural])
    if m.count is None:
        text = ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)
        if m.where:
            text += " " + _pick(rng, EN_WHERE[m.where])
        return text, False
    exactly = _pick(rng, EN_EXACTLY)
    text = " ".join(w for w in (exactly, EN_NUMBERS[m.count], *words) if w)
    if m.color is None and m.shape is None:
        text += " " + _pick(rng, EN_TOTAL)
    return text, plural


def render_en(meaning: Meaning, rng) -> str:
    phrases, plural = _clauses(meaning, rng, _en_np, lambda s, rel, r, rng: (
        f"{s} {_pick(rng, EN_RELATIONS[rel])} {r}"), oblique=False)
    body = phrases[0]
    for p in phrases[1:]:
        body += f" {_pick(rng, EN_AND)} {p}"
    return _pick(rng, EN_TEMPLATES).format(x=body, be="are" if plural else "is")


def _clauses(meaning: Meaning, rng, noun_phrase, relate, oblique: bool):
    """Clause texts in mention order and whether the first one is plural.

    relate(subject_np, relation, reference_np, rng) renders the relation clause; with `oblique`
    the reference noun phrase is rendered with noun_phrase(m, rng, oblique=True).
    """
    related = {}
    for r in meaning.relations:
        related[r.subject] = r
        related[r.reference] = r
    out, first_plural, done = [], None, set()
    for i, m in enumerate(meaning.mentions):
        if i in done:
            continue
        if i in related:
            r = related[i]
            subject, _ = noun_phrase(meaning.mentions[r.subject], rng)
            ref_m = meaning.mentions[r.reference]
            reference, _ = (noun_phrase(ref_m, rng, oblique=True) if oblique
                            else noun_phrase(ref_m, rng))
            out.append(relate(subject, r.relation, reference, rng))
            done.update((r.subject, r.reference))
            plural = False
        else:
            text, plural = noun_phrase(m, rng)
            out.append(text)
            done.add(i)
        if first_plural is None:
            first_plural = plural
    return out, bool(first_plural)


# ---- Hindi ------------------------------------------------------------------------------------
# Nouns: (direct singular, direct plural, oblique singular); all shape nouns are masculine.
HI_SHAPES = {"circle": (("गोला", "गोले", "गोले"), ("वृत्त", "वृत्त", "वृत्त")),
             "square": (("वर्ग", "वर्ग", "वर्ग"), ("चौकोर", "चौकोर", "चौकोर")),
             "triangle": (("त्रिभुज", "त्रिभुज", "त्रिभुज"), ("त्रिकोण", "त्रिकोण", "त्रिकोण")),
             "star": (("तारा", "तारे", "तारे"), ("सितारा", "सितारे", "सितारे")),
             "diamond": (("समचतुर्भुज", "समचतुर्भुज", "समचतुर्भुज"),),
             "cross": (("क्रॉस", "क्रॉस", "क्रॉस"),),
             "hexagon": (("षट्भुज", "षट्भुज", "षट्भुज"),)}
HI_COLORS = {"red": ("लाल", "सुर्ख़"), "orange": ("नारंगी", "केसरिया"),
             "yellow": ("पीला", "सुनहरा"), "green": ("हरा",), "blue": ("नीला", "आसमानी"),
             "purple": ("बैंगनी", "जामुनी"),
             "pink": ("गुलाबी",), "white": ("सफ़ेद", "श्वेत")}
HI_SIZES = {"small": ("छोटा", "नन्हा"), "large": ("बड़ा", "विशाल")}
HI_NUMBERS = {1: "एक", 2: "दो", 3: "तीन", 4: "चार", 5: "पाँच", 6: "छह"}
HI_THINGS = (("आकृति", "आकृतियाँ"), ("चीज़", "चीज़ें"))  # Feminine (singular, plural).
HI_RELATIONS = {"left_of": ("के बाईं ओर", "के बाएँ"), "right_of": ("के दाईं ओर", "के दाएँ"),
                "above": ("के ऊपर", "से ऊपर"), "below": ("के नीचे", "से नीचे"),
                "next_to": ("के पास", "के बगल में")}
HI_WHERE = {("top", "left"): "ऊपर बाएँ कोने में", ("top", "center"): "ऊपर की ओर",
            ("top", "right"): "ऊपर दाएँ कोने में", ("middle", "left"): "बाईं ओर",
            ("middle", "center"): "बीच में", ("middle", "right"): "दाईं ओर",
            ("bottom", "left"): "नीचे बाएँ कोने में", ("bottom", "center"): "नीचे की ओर",
            ("bottom", "right"): "नीचे दाएँ कोने में"}
HI_OPENERS = ("", "", "तस्वीर में", "चित्र में", "इस तस्वीर में", "इस चित्र में", "इस छवि में",
              "यहाँ", "इस दृश्य में", "गहरी पृष्ठभूमि पर")
HI_AND = (" और ", " और ", " तथा ")


def _hi_adj(word: str, form: str) -> str:
    """Adjectives in -ा inflect: form "m" (direct singular), "e" (plural/oblique), "f"."""
    if not word.endswith("ा"):
        return word
    return word[:-1] + {"m": "ा", "e": "े", "f": "ी"}[form]


def _hi_np(m: Mention, rng, oblique: bool = False) -> tuple[str, bool]:
    plural = m.count is not None and m.count > 1
    form = "e" if plural or oblique else "m"
    words = [HI_NUMBERS[m.count] if m.count is not None else "एक"]
    if m.count == 1:
        words.insert(0, "सिर्फ़")  # "only": एक alone also means "a".
    elif m.count is not None and rng.random() < 0.3:
        words.insert(0, "ठीक")  # "exactly"
    if m.color is None and m.shape is None:
        words.insert(0, "कुल")  # "in total"
    if m.shape is None:
        form = "f"
    if m.size:
        words.append(_hi_adj(_pick(rng, HI_SIZES[m.size]), form))
    if m.color:
        words.append(_hi_adj(_pick(rng, HI_COLORS[m.color]), form))
    if m.shape:
        forms = _pick(rng, HI_SHAPES[m.shape])
        words.append(forms[2] if oblique else forms[1] if plural else forms[0])
    else:
        words.append(_pick(rng, HI_THINGS)[plural])
    text = " ".join(words)
    if m.where:
        text = f"{HI_WHERE[m.where]} {text}"
    return text, plural


def render_hi(meaning: Meaning, rng) -> str:
    def np_clause(m, rng, oblique=False):
        text, plural = _hi_np(m, rng, oblique)
        return (text if oblique else f"{text} {'हैं' if plural else 'है'}"), plural

    def relate(subject, rel, reference, rng):
        return f"{subject[:-len(' है')]} {reference} {_pick(rng, HI_RELATIONS[rel])} है"

    phrases, _ = _clauses(meaning, rng, np_clause, relate, oblique=True)
    opener = _pick(rng, HI_OPENERS)
    body = phrases[0] + "".join(_pick(rng, HI_AND) + p for p in phrases[1:])
    return " ".join(p for p in (opener, body) if p)


# ---- Japanese (hiragana, words separated by spaces) -------------------------------------------
JA_SHAPES = {"circle": ("まる", "えん", "まるい かたち"), "square": ("しかく", "せいほうけい"),
             "triangle": ("さんかく", "さんかっけい"), "star": ("ほし", "ほしがた"),
             "diamond": ("ひしがた",), "cross": ("じゅうじ", "じゅうじがた"),
             "hexagon": ("ろっかっけい",)}
JA_COLORS = {"red": ("あかい", "まっかな"), "orange": ("おれんじいろ の", "だいだいいろ の"),
             "yellow": ("きいろい", "きいろ の"), "green": ("みどり の", "みどりいろ の"),
             "blue": ("あおい",), "purple": ("むらさき の", "むらさきいろ の"),
             "pink": ("ぴんく の", "ももいろ の"), "white": ("しろい", "まっしろな")}
JA_SIZES = {"small": ("ちいさい", "ちいさな"), "large": ("おおきい", "おおきな")}
JA_NUMBERS = {1: "ひとつ", 2: "ふたつ", 3: "みっつ", 4: "よっつ", 5: "いつつ", 6: "むっつ"}
JA_RELATIONS = {"left_of": ("ひだり", "ひだりがわ"), "right_of": ("みぎ", "みぎがわ"),
                "above": ("うえ",), "below": ("した",), "next_to": ("となり", "よこ")}
JA_WHERE = {("top", "left"): "ひだりうえ の すみ", ("top", "center"): "うえ の ほう",
            ("top", "right"): "みぎうえ の すみ", ("middle", "left"): "ひだり がわ",
            ("middle", "center"): "まんなか", ("middle", "right"): "みぎ がわ",
            ("bottom", "left"): "ひだりした の すみ", ("bottom", "center"): "した の ほう",
            ("bottom", "right"): "みぎした の すみ"}
JA_VERBS = ("あります", "みえます", "えがかれて います")
JA_OPENERS = ("", "", "この え には", "え の なか に", "ここ には", "がめん には",
              "くらい はいけい に")
JA_AND = (" そして ", " そして ", " また ")


def _ja_noun(m: Mention, rng) -> str:
    words = []
    if m.size:
        words.append(_pick(rng, JA_SIZES[m.size]))
    if m.color:
        words.append(_pick(rng, JA_COLORS[m.color]))
    if m.shape:
        words.append(_pick(rng, JA_SHAPES[m.shape]))
    else:
        words.append("かたち" if m.color is None else "もの")
    return " ".join(words)


def render_ja(meaning: Meaning, rng) -> str:
    def np_clause(m, rng, oblique=False):
        noun = _ja_noun(m, rng)
        if oblique:
            return noun, False
        verb = _pick(rng, JA_VERBS)
        if m.count is not None:
            total = "ぜんぶ で " if m.color is None and m.shape is None else ""
            exactly = "ちょうど " if rng.random() < 0.3 else ""
            return f"{noun} が {total}{exactly}{JA_NUMBERS[m.count]} {verb}", m.count > 1
        where = f"{JA_WHERE[m.where]} に " if m.where else ""
        return f"{where}{noun} が {verb}", False

    def relate(subject, rel, reference, rng):
        noun = subject.rsplit(" が ", 1)[0]
        return f"{reference} の {_pick(rng, JA_RELATIONS[rel])} に {noun} が {_pick(rng, JA_VERBS)}"

    phrases, _ = _clauses(meaning, rng, np_clause, relate, oblique=True)
    opener = _pick(rng, JA_OPENERS)
    body = phrases[0] + "".join(_pick(rng, JA_AND) + p for p in phrases[1:])
    return " ".join(p for p in (opener, body) if p)


RENDERERS = {"en": render_en, "hi": render_hi, "ja": render_ja}


def render(meaning: Meaning, language: str, rng: np.random.Generator) -> str:
    """The caption of `meaning` in `language` (one of LANGUAGES); synonyms drawn from rng."""
    if language not in RENDERERS:
        raise ValueError(f"spoken_shapes 2.0 has no grammar for language {language!r}; "
                         f"choose one of {LANGUAGES}.")
    return RENDERERS[language](meaning, rng)
