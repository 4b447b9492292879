"""The keyword-spotting part of a config (Kamper et al. 2017), shared by `configs/*kws*.py`."""
import ml_collections

from vgs_jax.models import kws_cnn


def set_keyword_spotting(config: ml_collections.ConfigDict, *, vocabulary: str, num_keywords: int, tiny: bool,
                         tagger_targets: str = "text", tagger_language: str = "", tagger_weights: str = "") -> None:
    """Adds `kws` to `config` (vocabulary, the tagger's targets, the tagger's language for cross-lingual
    spotting ("": the speech's own), a pretrained tagger's weights file (`kws.tagger_file`)), Kamper's
    keyword CNN as the speech tower (`tiny`: widths 8/16/32, hidden 32) and `loss.name="visual_tags"`."""
    config.kws = ml_collections.ConfigDict(dict(
        vocabulary=vocabulary, tagger_targets=tagger_targets, tagger_language=tagger_language,
        tagger_weights=tagger_weights))
    config.model.speech_encoder = "kamper_cnn"
    config.model.speech = ml_collections.ConfigDict(dict(
        num_keywords=num_keywords,
        widths=(8, 16, 32) if tiny else kws_cnn.KAMPER_WIDTHS,
        kernels=kws_cnn.KAMPER_KERNELS,
        pools=kws_cnn.KAMPER_POOLS,
        hidden=(32,) if tiny else kws_cnn.KAMPER_HIDDEN,
    ))
    config.loss.name = "visual_tags"
