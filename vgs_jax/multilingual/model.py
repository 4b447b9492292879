"""The multilingual dual encoder: one image tower and one speech tower per language, one embedding space.

`config.multilingual` (beside the usual `config.model`, which describes every tower):

    languages: tuple of str     the spoken languages, e.g. ("en", "hi"); the first is the one the train
                                step's `batch["audio"]` holds (`vgs_jax.multilingual.data`)
    shared_speech: bool         True: one speech tower for every language (shared weights);
                                False: one tower per language, same architecture, own initialisation

`MultilingualEncoder` is a `DualEncoder` whose `encode_speech` runs the tower of `language` (default: the
model's `language` attribute, static, so each language gets its own graph definition and a
`dual_encoder.Template` of it evaluates that language with the single-language code:
`language_templates`). Parameters: `speech_encoder` (the first language's tower, or the shared one),
`extra_speech_encoders` (the other languages' towers, in order), `image_encoder`, `log_temperature`.
"""

from flax import nnx
import jax
import ml_collections

from vgs_jax.models import dual_encoder
from vgs_jax.models import registry


class MultilingualEncoder(dual_encoder.DualEncoder):
    """A DualEncoder with one speech tower per language (`towers[tower_of[i]]` speaks `languages[i]`)."""

    def __init__(self, towers: list[nnx.Module], image_encoder: nnx.Module, *, languages: tuple[str, ...],
                 tower_of: tuple[int, ...], **dual_kwargs):
        super().__init__(towers[0], image_encoder, **dual_kwargs)
        for extra in towers[1:]:
            if extra.out_features != self.embed_dim or extra.capabilities != towers[0].capabilities:
                raise ValueError("MultilingualEncoder: every language's speech tower must have the first "
                                 "tower's out_features and capabilities (build them from one config.model).")
        if len(languages) != len(tower_of) or sorted(set(tower_of)) != list(range(len(towers))):
            raise ValueError(f"MultilingualEncoder: tower_of={tower_of} must give each of {languages} a tower "
                             f"index in 0..{len(towers) - 1} and use every tower.")
        self.extra_speech_encoders = nnx.List(towers[1:])
        self.languages = tuple(languages)
        self.tower_of = tuple(tower_of)
        self.language = self.languages[0]

    def speech_tower(self, language: str) -> nnx.Module:
        """The speech tower of `language` (one of `languages`)."""
        if language not in self.languages:
            raise ValueError(f"language {language!r} is not one of the model's {self.languages}.")
        index = self.tower_of[self.languages.index(language)]
        return self.speech_encoder if index == 0 else self.extra_speech_encoders[index - 1]

    def encode_speech(self, features: jax.Array, mask: jax.Array, *, key: jax.Array | None = None,
                      language: str | None = None) -> dict:
        """`DualEncoder.encode_speech` through the tower of `language` (default `self.language`)."""
        return dual_encoder.speech_outputs(self.speech_tower(language or self.language), features, mask, key=key)


def check_languages(ml_config) -> tuple[str, ...]:
    """config.multilingual.languages as a tuple: non-empty, no repeats (ValueError naming the field)."""
    languages = tuple(ml_config.languages)
    if not languages or len(set(languages)) != len(languages) or not all(isinstance(x, str) for x in languages):
        raise ValueError(f"config.multilingual.languages={languages!r} must be a non-empty tuple of distinct "
                         "language names, e.g. ('en', 'hi').")
    return languages


def build_model(config: ml_collections.ConfigDict, *, num_features: int, rngs: nnx.Rngs) -> MultilingualEncoder:
    """The model of `config.model` (every tower) and `config.multilingual` (languages, shared_speech)."""
    languages = check_languages(config.multilingual)
    speech_cfg = config.model.speech
    if any(speech_cfg.get("vq_on", ()) or ()):
        raise ValueError("config.model.speech.vq_on: quantisers are not supported by multilingual models; "
                         "set every position to False.")
    dual = dual_encoder.build_dual_encoder(config.model, num_features=num_features, rngs=rngs)
    shared = bool(config.multilingual.shared_speech)
    dtype = registry.lookup(dual_encoder.COMPUTE_DTYPES, config.model.get("dtype", "float32"), "dtype")
    extras = [] if shared else [
        registry.build_speech_encoder(config.model.speech_encoder, speech_cfg, num_features, dtype=dtype,
                                      rngs=rngs, remat=bool(config.model.get("remat", False)))
        for _ in languages[1:]]
    return MultilingualEncoder(
        [dual.speech_encoder] + extras, dual.image_encoder, languages=languages,
        tower_of=tuple(0 if shared else i for i in range(len(languages))), similarity=dual.similarity,
        temperature_init=float(config.model.temperature_init), logit_bias_init=config.model.get("logit_bias_init"))


def language_templates(template: dual_encoder.Template) -> dict[str, dual_encoder.Template]:
    """{language: Template of the same parameters whose model speaks that language} (same param tree, same
    model state), for the single-language evaluation and inference code."""
    model = template.merge(template.initial_params)
    out = {}
    for language in model.languages:
        model.language = language
        out[language] = dual_encoder.Template(model).with_model_state(template.model_state)
    return out
