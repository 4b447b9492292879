"""Training configs (`--config=configs/NAME.py[:arg]`); installed with vgs_jax as `vgs_jax.configs`.

This package file holds the recipe builders the config files share (`from vgs_jax import configs`):
each returns a `config_lib.base_config()` set up for one family of corpora and models, which a
config file then finishes.
"""

import ml_collections

from vgs_jax import config_lib


def platalea_corpus_config(dataset_name: str) -> ml_collections.ConfigDict:
    """platalea's recipe (`base_config`) on a manual-download corpus with precomputed image vectors
    (Flickr8K Audio, SpokenCOCO); built from the manual dir on first use, or names what is missing."""
    config = config_lib.base_config()
    config.dataset.name = dataset_name
    config.dataset.build_if_missing = True
    config.dataset.image_key = "image_features"
    config.dataset.eval_split = "validation"
    config.model.image_encoder = "linear"
    config.model.image.input_dim = 2048
    return config


def places_config(*, language: str = "english") -> ml_collections.ConfigDict:
    """DAVEnet-family data set-up (anchor §2.1, §2.8, §3.1): Places audio captions with pixels,
    40-d log-mel spectrograms capped at 2048 frames; each config then sets model and optimizer."""
    config = config_lib.base_config()
    config.dataset.name = f"places_audio/{language}"
    config.dataset.build_if_missing = True  # builds from the manual dir, or names the missing files
    config.dataset.image_key = "image"
    config.features.recipe = "davenet_logmel"
    config.features.max_frames = 2048
    config.features.bucket_boundaries = (512, 1024, 1536, 2048)
    config.model.similarity = "MISA"
    config.loss.name = "sampled_impostor_hinge"
    config.loss.margin = 1.0
    config.eval_every_steps = 5000
    config.checkpoint_every_steps = 5000
    return config


def vq_positions(vq: str) -> tuple[bool, ...]:
    """"23" -> (False, True, True, False, False): ResDAVEnet-VQ quantiser positions 1-5 as flags."""
    if set(vq) - set("12345"):
        raise ValueError(f"vq={vq!r} must be digits 1-5 (quantiser positions: 1 after conv1, 2-5 after "
                         "layer1-layer4), e.g. vq=23.")
    return tuple(str(i) in vq for i in range(1, 6))


def places_resdavenet_config(*, tiny: bool, vq: str) -> ml_collections.ConfigDict:
    """configs/places_resdavenet*.py: the ResDAVEnet(-VQ) recipe (anchor §3) with quantisers at the
    positions named by the digits of `vq`."""
    config = places_config()
    config.seed = 8675309
    config.model.speech_encoder = "resdavenet"
    config.model.speech = ml_collections.ConfigDict(dict(
        widths=(8, 8, 16, 16, 16) if tiny else (128, 256, 256, 512, 1024),
        depths=(1, 1, 1, 1) if tiny else (2, 2, 2, 2),
        kernel=9,
        vq_on=vq_positions(vq),
        codebook_size=16 if tiny else 1024,
        vq_decay=0.99,
        vq_epsilon=1e-8,
        commitment_cost=1.0,
        vq_init="normal",
        jitter=0.12,
        jitter_mode="reference",
        length_rounding="floor",
    ))
    config.model.image_encoder = "resnet50"
    config.model.image = ml_collections.ConfigDict(dict(freeze_trunk=False, weights=""))
    config.model.similarity = "pooled_dot"
    config.loss.name = "semihard_hinge"
    config.loss.margin = 1.0
    config.loss.reference_quirk = True
    config.optimizer.name = "adam"
    config.optimizer.lr_max = 2e-4
    config.optimizer.weight_decay = 5e-7
    config.optimizer.schedule = "step"
    config.optimizer.decay_epochs = 3
    config.optimizer.decay_factor = 0.95
    config.batch_size = 64
    config.num_epochs = 150
    if tiny:
        config.batch_size = 8
        config.num_train_steps = 2
    return config



def spoken_shapes_name(*, tiny: bool, v1: bool = False, v2: bool = False) -> str:
    """"spoken_shapes/tiny:2.0.0" or ".../small:2.0.0" (the builder's default version, `v2`), or
    ":1.0.0" with the config argument `v1` (the README's older results, the test suite's short audio).
    Always pinned, so a workdir's config.json names the data it was trained on even after the
    builder's default version moves on."""
    if v1 and v2:
        raise ValueError("Config arguments v1 and v2 both given; pick one spoken_shapes version (or "
                         "neither for the default, 2.0.0).")
    return ("spoken_shapes/tiny" if tiny else "spoken_shapes/small") + (":1.0.0" if v1 else ":2.0.0")


def spoken_shapes_config(*, tiny: bool, v1: bool = False, v2: bool = False) -> ml_collections.ConfigDict:
    """Shared set-up of the `configs/shapes_*.py` family: data, image CNN, loss, optimizer, length.

    Sized to train in minutes on 2 CPU cores on `spoken_shapes/small` (generated on first use);
    `tiny` shrinks everything to seconds on `spoken_shapes/tiny` for tests. Each config then sets
    its speech encoder in `config.model`. The data version: see `spoken_shapes_name` (2.0.0's test
    splits also report the oracle ceiling, see vgs_jax/ceiling.py).
    """
    config = config_lib.base_config()
    config.dataset.name = spoken_shapes_name(tiny=tiny, v1=v1, v2=v2)
    config.dataset.build_if_missing = True  # generated locally, no download
    config.features.bucket_boundaries = (256, 512) if tiny else (160, 224, 288, 384, 512)
    config.features.max_frames = 512  # utterances are 1-4 s
    config.model.image_encoder = "conv"
    config.model.image.channels = (8, 16) if tiny else (16, 32, 64, 64)
    config.loss.name = "platalea_hinge"
    config.loss.exclude_same_image = True
    config.num_epochs = 4
    config.optimizer.schedule = "warmup_cosine"
    config.optimizer.lr_max = 1e-3
    config.optimizer.lr_min = 1e-5
    config.optimizer.warmup_steps = 2 if tiny else 100
    config.log_every_steps = 2 if tiny else 50
    config.eval_every_steps = 3 if tiny else 500
    config.checkpoint_every_steps = 3 if tiny else 500
    if tiny:
        config.batch_size = 8
        config.eval_batch_size = 16
        config.num_train_steps = 6
    return config


def spoken_shapes_multilingual_config(arg, *, languages: str) -> ml_collections.ConfigDict:
    """configs/shapes_multilingual_{mono,bi,tri}.py: shapes_gru's recipe on spoken_shapes 2.0.0 `<size>_multi`
    with one speech tower per language (`vgs_jax.multilingual`). `arg`: the config argument string; its
    `languages` (default `languages`) joins language codes with "+", e.g. "en+hi".

    Choices, where Harwath et al. 2018a, Havard et al. 2019a and Ohishi et al. 2020a are silent or differ:
    - Towers: shapes_gru's platalea GRU per language (Harwath 2018a: DAVEnet per language; Havard 2019a: RHN
      GRUs), separate weights (`shared=true`: one tower for all languages); one image CNN.
    - Terms: every language-image pair and every language-language pair, each weight 1.0
      (`--config.multilingual.weights.<A>_<B>=...` changes one, 0 drops it); each term is the shapes recipe's
      platalea hinge with captions of one image not each other's negatives; language-language terms compare
      pooled embeddings by cosine.
    - Parallel captions: row n is meaning n of an image in every language (spoken_shapes' captions are
      translations, so A-B pairs are aligned); `expansion=true` makes every caption of the same image in the
      other language a positive (Ohishi 2020a's pair expansion, `objective.expanded_hinge_loss`).
    - Batches of 32 rows (each row one caption per language); the first language's validation speech->image
      R@10 picks the best checkpoint; 39-d MFCCs for every language.
    """
    arg = config_lib.parse_arg(arg, tiny=False, size="small", languages=languages, shared=False, expansion=False)
    config = spoken_shapes_config(tiny=arg.tiny, v2=True)
    config.dataset.name = f"spoken_shapes/{'tiny' if arg.tiny else arg.size}_multi:2.0.0"
    speech = config.model.speech
    speech.conv_stride = 3
    speech.hidden = 16 if arg.tiny else 128
    speech.num_layers = 1 if arg.tiny else 2
    speech.attention_hidden = 8 if arg.tiny else 64
    names = tuple(arg.languages.split("+"))
    terms = [f"{a}_image" for a in names] + [f"{a}_{b}" for i, a in enumerate(names) for b in names[i + 1:]]
    config.multilingual = ml_collections.ConfigDict(dict(
        languages=names, shared_speech=arg.shared, layout="grouped", renames={},
        weights={term: 1.0 for term in terms}, pair_expansion=arg.expansion))
    return config


def spoken_shapes_text_config(*, tiny: bool, v1: bool, v2: bool, units: str, fraction: float, weights: dict,
                              retrieval_from: str, language: str = "") -> ml_collections.ConfigDict:
    """configs/shapes_mtl_asr.py and shapes_pipeline.py: configs/shapes_gru.py's model and data with the
    text tasks of `vgs_jax.objectives.multitask` (`config.text`, `config.model.text`): a CTC head on the
    last GRU layer, a 1-layer BiGRU text encoder, platalea's ASR/MTL gradient clipping (norm 2.0).
    `language`: the text side's language ("" = the caption's own; else its translation, `text_units`)."""
    from vgs_jax import text_units  # pylint: disable=import-outside-toplevel (configs import little)
    config = spoken_shapes_config(tiny=tiny, v1=v1, v2=v2)
    speech = config.model.speech  # as configs/shapes_gru.py
    speech.conv_stride = 3
    speech.hidden = 16 if tiny else 128
    speech.num_layers = 1 if tiny else 2
    speech.attention_hidden = 8 if tiny else 64
    config.text = ml_collections.ConfigDict(dict(
        units=units, max_len=(128 if units == "chars" else 80) * (2 if v1 else 3) // 2, fraction=fraction,
        weights=ml_collections.ConfigDict(weights), language=language))
    config.model.text = ml_collections.ConfigDict(dict(
        vocab_size=len(text_units.vocabulary(units, language)), layer=f"gru_{speech.num_layers - 1}",
        embedding_dim=16 if tiny else 64, num_layers=1, attention_hidden=8 if tiny else 64,
        retrieval_from=retrieval_from))
    config.optimizer.grad_clip_norm = 2.0
    return config
