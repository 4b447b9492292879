"""Cross-lingual keyword spotting (Kamper & Roth 2018) on `spoken_shapes` 2.0.0: an English text
keyword retrieves Hindi (or Japanese) spoken utterances, with an English visual tagger as the pivot.

    python -m vgs_jax.main --config=configs/shapes_kws_crosslingual.py --workdir=runs/shapes_kws_hi
    python -m vgs_jax.evaluate --workdir=runs/shapes_kws_hi

The recipe of `configs/shapes_kws.py` (read its docstring: Kamper's keyword CNN on speech, the pixel
CNN as the visual tagger, `objectives.tags.visual_tag_loss`, jointly trained) with the speech in
another language: the speech model hears `spoken_shapes/<size>_hi:2.0.0` (`language=ja`: `_ja`) and
learns the sigmoid outputs of a tagger whose targets are the 17 English keywords said in the English
caption of the same meaning (`kws.tagger_language="en"`, read from `<size>:2.0.0`, built on first use
too; `vgs_jax/kws/pivot.py`). `evaluate` scores each English keyword against the Hindi utterances:
exact relevance = its Hindi translation is said, semantic = the image shows it.

Choices where the paper and notes are silent or do not fit, listed:
- Direction: Kamper & Roth retrieve English utterances with German text keywords (survey notes D);
  here English keywords retrieve Hindi or Japanese utterances, the languages spoken_shapes 2.0.0 has.
- Kamper's taggers are pretrained on other image-caption corpora; here the English tagger learns from
  the English captions of the training images themselves (2.0.0 renders each meaning in every
  language: parallel captions), jointly with the speech model, as in `shapes_kws.py`.
- Exact relevance needs translations of the keywords: the plainest lexicon entry of each concept in
  the target language, in every inflection the captions use (`kws.keywords.Keyword.forms_in`);
  synonyms count as semantic only, as "crimson" does for "red" in English.
- Vocabulary, features, optimizer, steps: as `shapes_kws.py` (17 concept words, not 1000 words).
`:tiny` shrinks everything for tests; `:language=ja` spots in Japanese.
"""

from vgs_jax import config_lib
from vgs_jax import configs
from vgs_jax.kws import recipe

LANGUAGES = ("hi", "ja")


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, language="hi")
    if arg.language not in LANGUAGES:
        raise ValueError(f"configs/shapes_kws_crosslingual.py: language={arg.language!r}; choose one of "
                         f"{LANGUAGES} (English keywords retrieve speech in that language).")
    config = configs.spoken_shapes_config(tiny=arg.tiny, v2=True)
    size, version = config.dataset.name.split(":")
    config.dataset.name = f"{size}_{arg.language}:{version}"
    recipe.set_keyword_spotting(config, vocabulary="spoken_shapes", num_keywords=17, tiny=arg.tiny,
                                tagger_language="en")
    return config
