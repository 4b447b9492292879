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
HI_SHAPES = {"circle": (("गोला", "गोले", "गोले"), ("वृत्त", "वृत्त", "वृत्त"),
                        ("घेरा", "घेरे", "घेरे"), ("चक्र", "चक्र", "चक्र")),
             "square": (("वर्ग", "वर्ग", "वर्ग"), ("चौकोर", "चौकोर", "चौकोर"),
                        ("डिब्बा", "डिब्बे", "डिब्बे"), ("चौखाना", "चौखाने", "चौखाने")),
             "triangle": (("त्रिभुज", "त्रिभुज", "त्रिभुज"), ("त्रिकोण", "त्रिकोण", "त्रिकोण"),
                          ("तिकोना", "तिकोने", "तिकोने")),
             "star": (("तारा", "तारे", "तारे"), ("सितारा", "सितारे", "सितारे"),
                      ("नक्षत्र", "नक्षत्र", "नक्षत्र")),
             "diamond": (("समचतुर्भुज", "समचतुर्भुज", "समचतुर्भुज"), ("हीरा", "हीरे", "हीरे")),
             "cross": (("क्रॉस", "क्रॉस", "क्रॉस"), ("धन चिह्न", "धन चिह्न", "धन चिह्न"),
                       ("जोड़ का निशान", "जोड़ के निशान", "जोड़ के निशान")),
             "hexagon": (("षट्भुज", "षट्भुज", "षट्भुज"), ("षट्कोण", "षट्कोण", "षट्कोण"),
                         ("छहकोना", "छहकोने", "छहकोने"))}
# Adjectives ending in -ा inflect (`_hi_adj`), also "... रंग का" / "... आकार का".
HI_COLORS = {"red": ("लाल", "सुर्ख़", "रक्तिम", "लाल रंग का"),
             "orange": ("नारंगी", "केसरिया", "संतरी", "नारंगी रंग का"),
             "yellow": ("पीला", "सुनहरा", "बसंती", "पीले रंग का"),
             "green": ("हरा", "हरित", "हरे रंग का", "धानी"),
             "blue": ("नीला", "आसमानी", "नीले रंग का", "नील"),
             "purple": ("बैंगनी", "जामुनी", "बैंगनी रंग का"),
             "pink": ("गुलाबी", "गुलाबी रंग का", "पाटल"),
             "white": ("सफ़ेद", "श्वेत", "धवल", "उजला", "सफ़ेद रंग का")}
HI_SIZES = {"small": ("छोटा", "नन्हा", "लघु", "छोटे आकार का", "ज़रा सा"),
            "large": ("बड़ा", "विशाल", "बड़े आकार का", "बहुत बड़ा", "विराट")}
HI_NUMBERS = {1: "एक", 2: "दो", 3: "तीन", 4: "चार", 5: "पाँच", 6: "छह"}
HI_ONLY = ("सिर्फ़", "केवल", "मात्र")  # Before एक ("only one"): एक alone also means "a".
HI_EXACTLY = ("ठीक", "पूरे", "गिनकर")
HI_TOTAL = ("कुल", "सब मिलाकर", "कुल मिलाकर")
HI_THINGS = (("आकृति", "आकृतियाँ"), ("चीज़", "चीज़ें"), ("वस्तु", "वस्तुएँ"))  # Feminine.
HI_RELATIONS = {"left_of": ("के बाईं ओर", "के बाएँ", "के बाईं तरफ़", "के बाएँ हाथ पर"),
                "right_of": ("के दाईं ओर", "के दाएँ", "के दाईं तरफ़", "के दाएँ हाथ पर"),
                "above": ("के ऊपर", "से ऊपर", "के ऊपर की ओर", "के ऊपर की तरफ़"),
                "below": ("के नीचे", "से नीचे", "के नीचे की ओर", "के तले"),
                "next_to": ("के पास", "के बगल में", "के निकट", "के समीप", "की बगल में")}
HI_WHERE = {("top", "left"): ("ऊपर बाएँ कोने में", "ऊपरी बाएँ कोने में", "बाईं ओर सबसे ऊपर"),
            ("top", "center"): ("ऊपर की ओर", "ऊपरी हिस्से में", "सबसे ऊपर"),
            ("top", "right"): ("ऊपर दाएँ कोने में", "ऊपरी दाएँ कोने में", "दाईं ओर सबसे ऊपर"),
            ("middle", "left"): ("बाईं ओर", "बाएँ किनारे पर", "बाईं तरफ़"),
            ("middle", "center"): ("बीच में", "केंद्र में", "मध्य में"),
            ("middle", "right"): ("दाईं ओर", "दाएँ किनारे पर", "दाईं तरफ़"),
            ("bottom", "left"): ("नीचे बाएँ कोने में", "निचले बाएँ कोने में", "बाईं ओर सबसे नीचे"),
            ("bottom", "center"): ("नीचे की ओर", "निचले हिस्से में", "सबसे नीचे"),
            ("bottom", "right"): ("नीचे दाएँ कोने में", "निचले दाएँ कोने में", "दाईं ओर सबसे नीचे")}
# Paraphrase templates: a frame ("I can see that ...") and a place ("in the picture").
HI_FRAMES = ("", "", "", "मुझे लगता है कि", "मैं देख सकता हूँ कि", "हम देख सकते हैं कि",
             "ऐसा लगता है कि", "साफ़ दिखता है कि", "ध्यान से देखें तो", "गौर से देखने पर",
             "देखिए", "आप देख सकते हैं कि", "यह स्पष्ट है कि", "दिखाई देता है कि",
             "ज़रा देखिए",
             "मेरे ख़्याल से", "मेरी नज़र में", "निश्चित रूप से", "शायद", "दरअसल", "सच में",
             "पहली नज़र में", "वैसे", "असल में", "सच कहूँ तो", "मेरे हिसाब से", "सीधे शब्दों में")
HI_PLACES = ("", "", "तस्वीर में", "चित्र में", "इस तस्वीर में", "इस चित्र में", "इस छवि में", "यहाँ",
             "इस दृश्य में", "गहरी पृष्ठभूमि पर", "स्लेटी पृष्ठभूमि पर", "इस रेखाचित्र में",
             "इस फ़ोटो में", "परदे पर", "कैनवास पर", "फ्रेम के अंदर", "सामने", "इस चित्रकारी में",
             "इस स्केच में", "इस आरेख में", "स्क्रीन पर", "इस पेंटिंग में", "इस नज़ारे में",
             "इस पन्ने पर", "इस डिज़ाइन में", "इस बोर्ड पर")
HI_EXISTS = ("", "", "मौजूद ")  # "X है" or "X मौजूद है" ("X is present").
HI_LOCATED = ("", "", "स्थित ")  # "X Y के ऊपर है" or "... स्थित है" ("is situated").
HI_AND = (" और ", " और ", " तथा ", " एवं ", " और साथ ही ", " साथ ही ")


def _hi_adj(phrase: str, form: str) -> str:
    """A final -ा inflects: form "m" (direct singular), "e" (plural/oblique), "f" (feminine)."""
    if not phrase.endswith("ा"):
        return phrase
    return phrase[:-1] + {"m": "ा", "e": "े", "f": "ी"}[form]


def _hi_np(m: Mention, rng, oblique: bool = False) -> tuple[str, bool]:
    plural = m.count is not None and m.count > 1
    form = "e" if plural or oblique else "m"
    words = [HI_NUMBERS[m.count] if m.count is not None else "एक"]
    if m.count == 1:
        words.insert(0, _pick(rng, HI_ONLY))
    elif m.count is not None and rng.random() < 0.3:
        words.insert(0, _pick(rng, HI_EXACTLY))
    if m.color is None and m.shape is None:
        words.insert(0, _pick(rng, HI_TOTAL))
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
        text = f"{_pick(rng, HI_WHERE[m.where])} {text}"
    return text, plural


def render_hi(meaning: Meaning, rng) -> str:
    def np_clause(m, rng, oblique=False):
        text, plural = _hi_np(m, rng, oblique)
        if oblique:
            return text, plural
        return f"{text} {_pick(rng, HI_EXISTS)}{'हैं' if plural else 'है'}", plural

    def relate(subject, rel, reference, rng):
        subject = subject[:-len(" है")].removesuffix(" मौजूद")
        return f"{subject} {reference} {_pick(rng, HI_RELATIONS[rel])} {_pick(rng, HI_LOCATED)}है"

    phrases, _ = _clauses(meaning, rng, np_clause, relate, oblique=True)
    opener = (_pick(rng, HI_FRAMES), _pick(rng, HI_PLACES))
    body = phrases[0] + "".join(_pick(rng, HI_AND) + p for p in phrases[1:])
    return " ".join(p for p in (*opener, body) if p)


# ---- Japanese (hiragana, words separated by spaces) -------------------------------------------
JA_SHAPES = {"circle": ("まる", "えん", "まるい かたち", "えんけい", "まるがた"),
             "square": ("しかく", "せいほうけい", "ましかく", "しかくい かたち", "はこがた"),
             "triangle": ("さんかく", "さんかっけい", "さんかくけい", "さんかく の かたち"),
             "star": ("ほし", "ほしがた", "ほし の かたち", "ほし の しるし"),
             "diamond": ("ひしがた", "だいや の かたち", "ひし の かたち"),
             "cross": ("じゅうじ", "じゅうじがた", "たす の きごう", "ぷらす の しるし"),
             "hexagon": ("ろっかっけい", "ろっかくけい", "ろっかく の かたち", "きっこうがた")}
JA_COLORS = {"red": ("あかい", "まっかな", "あかいろ の", "べにいろ の", "くれない の"),
             "orange": ("おれんじいろ の", "だいだいいろ の", "みかんいろ の", "おれんじ の"),
             "yellow": ("きいろい", "きいろ の", "こがねいろ の", "やまぶきいろ の", "れもんいろ の"),
             "green": ("みどり の", "みどりいろ の", "わかくさいろ の", "ひすいいろ の"),
             "blue": ("あおい", "あおいろ の", "ぐんじょういろ の", "こんいろ の", "るりいろ の"),
             "purple": ("むらさき の", "むらさきいろ の", "すみれいろ の", "ふじいろ の"),
             "pink": ("ぴんく の", "ももいろ の", "さくらいろ の", "なでしこいろ の"),
             "white": ("しろい", "まっしろな", "しろいろ の", "ゆきのように しろい", "はくしょく の",
                       "にゅうはくしょく の")}
JA_SIZES = {"small": ("ちいさい", "ちいさな", "こがた の", "ちっちゃな", "こぶりな", "ちいさめ の"),
            "large": ("おおきい", "おおきな", "おおがた の", "きょだいな", "おおぶりな", "おおきめ の",
                      "でっかい")}
JA_THINGS = ("もの", "かたち", "ずけい", "ぶったい")
# Counters: native (ひとつ...) and with 個 (いっこ...).
JA_NUMBERS = ({1: "ひとつ", 2: "ふたつ", 3: "みっつ", 4: "よっつ", 5: "いつつ", 6: "むっつ"},
              {1: "いっこ", 2: "にこ", 3: "さんこ", 4: "よんこ", 5: "ごこ", 6: "ろっこ"})
JA_EXACTLY = ("ちょうど", "ぴったり", "きっかり")
JA_TOTAL = ("ぜんぶ で", "あわせて", "ごうけい で", "みんな で")
JA_RELATIONS = {"left_of": ("ひだり", "ひだりがわ", "ひだりて"),
                "right_of": ("みぎ", "みぎがわ", "みぎて"),
                "above": ("うえ", "うえ の ほう", "うえがわ"), "below": ("した", "した の ほう", "したがわ"),
                "next_to": ("となり", "よこ", "そば", "わき")}
JA_WHERE = {("top", "left"): ("ひだりうえ の すみ", "ひだりうえ", "ひだり の うえ の かど"),
            ("top", "center"): ("うえ の ほう", "うえ の はし", "うえ の あたり"),
            ("top", "right"): ("みぎうえ の すみ", "みぎうえ", "みぎ の うえ の かど"),
            ("middle", "left"): ("ひだり がわ", "ひだり の はし", "ひだりはし"),
            ("middle", "center"): ("まんなか", "ちゅうおう", "ちゅうしん"),
            ("middle", "right"): ("みぎ がわ", "みぎ の はし", "みぎはし"),
            ("bottom", "left"): ("ひだりした の すみ", "ひだりした", "ひだり の した の かど"),
            ("bottom", "center"): ("した の ほう", "した の はし", "した の あたり"),
            ("bottom", "right"): ("みぎした の すみ", "みぎした", "みぎ の した の かど")}
JA_VERBS = ("あります", "みえます", "えがかれて います", "かかれて います", "おかれて います",
            "うつって います", "そんざい します", "みつかります", "ひょうじ されて います",
            "あるよう です", "みえて います", "でて います")
JA_OPENERS = ("", "", "この え には", "え の なか に", "ここ には", "がめん には",
              "くらい はいけい に", "はいいろ の はいけい に", "この しゃしん には", "この ずが には",
              "よく みると", "みたところ", "わたし には", "この がぞう には", "きゃんばす には",
              "わく の なか に", "どうやら", "めのまえ に", "この けしき には", "え を みると",
              "ごらん の とおり", "ちゅうい して みると", "この いらすと には", "この すけっち には",
              "この ばめん には", "ぱっと みると", "たぶん", "おそらく", "あきらかに",
              "わたし の め には", "ほら", "ええと", "じつは", "みて ください",
              "この ずひょう には", "かみ の うえ に", "ひとめ みると", "さて", "ごらん ください", "この もよう には")
JA_ENDS = ("", "", "", "よ", "ね")  # Sentence-final particles of spoken Japanese.
JA_AND = (" そして ", " そして ", " また ", " それから ", " さらに ", " それと ", " それに ", " おまけに ")


def _ja_noun(m: Mention, rng) -> str:
    words = []
    if m.size:
        words.append(_pick(rng, JA_SIZES[m.size]))
    if m.color:
        words.append(_pick(rng, JA_COLORS[m.color]))
    if m.shape:
        words.append(_pick(rng, JA_SHAPES[m.shape]))
    else:
        words.append("かたち" if m.color is None else _pick(rng, JA_THINGS))
    return " ".join(words)


def render_ja(meaning: Meaning, rng) -> str:
    def np_clause(m, rng, oblique=False):
        noun = _ja_noun(m, rng)
        if oblique:
            return noun, False
        verb = _pick(rng, JA_VERBS)
        if m.count is not None:
            total = _pick(rng, JA_TOTAL) + " " if m.color is None and m.shape is None else ""
            exactly = _pick(rng, JA_EXACTLY) + " " if rng.random() < 0.3 else ""
            number = _pick(rng, JA_NUMBERS)[m.count]
            return f"{noun} が {total}{exactly}{number} {verb}", m.count > 1
        where = f"{_pick(rng, JA_WHERE[m.where])} に " if m.where else ""
        return f"{where}{noun} が {verb}", False

    def relate(subject, rel, reference, rng):
        noun = subject.rsplit(" が ", 1)[0]
        return f"{reference} の {_pick(rng, JA_RELATIONS[rel])} に {noun} が {_pick(rng, JA_VERBS)}"

    phrases, _ = _clauses(meaning, rng, np_clause, relate, oblique=True)
    opener = _pick(rng, JA_OPENERS)
    body = phrases[0] + "".join(_pick(rng, JA_AND) + p for p in phrases[1:])
    return " ".join(p for p in (opener, body, _pick(rng, JA_ENDS)) if p)


RENDERERS = {"en": render_en, "hi": render_hi, "ja": render_ja}


def render(meaning: Meaning, language: str, rng: np.random.Generator) -> str:
    """The caption of `meaning` in `language` (one of LANGUAGES); synonyms drawn from rng."""
    if language not in RENDERERS:
        raise ValueError(f"spoken_shapes 2.0 has no grammar for language {language!r}; "
                         f"choose one of {LANGUAGES}.")
    return RENDERERS[language](meaning, rng)
