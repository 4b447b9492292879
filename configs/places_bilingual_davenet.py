"""Bilingual DAVEnet (Harwath et al. 2018a, "Vision as an interlingua") on Places English + Hindi captions.

    python -m vgs_jax.main --config=configs/places_bilingual_davenet.py --workdir=runs/places_bilingual_davenet
    python -m vgs_jax.evaluate --workdir=runs/places_bilingual_davenet --split=test

Data: `places_audio/bilingual`, built from the manual directory (PlacesAudio_400k_distro, PlacesHindi100k and
the Places images, see tfds_builders/places_audio/README.md); without it training stops with the builder's
message naming the missing folders. One example = one Hindi caption and an English caption of the same image.
Recipe: configs/places_davenet.py's DAVEnet (40-d log-mel capped at 2048 frames, DAVEnet speech towers, VGG16
image map, MISA matchmaps, sampled-impostor hinge margin 1, SGD momentum 0.9 lr 1e-3, weight decay 5e-7, lr x 0.1
every 40 epochs, batch 100, 100 epochs) with one speech tower per language.

Choices, where the paper and notes are silent or differ:
- Separate English and Hindi towers of the same architecture (`--config.multilingual.shared_speech=True`: one).
- Terms english-image, hindi-image, english-hindi, each weight 1.0; the two language-image terms score MISA
  matchmaps, the english-hindi term the cosine of the pooled embeddings (one matchmap per pair of utterances
  would compare two frame maps), each with the same sampled-impostor hinge.
- The English caption of a row is the builder's pick among the image's English captions (not a translation);
  `--config.multilingual.pair_expansion=True` (Ohishi et al. 2020a) needs loss.name='platalea_hinge'.
- The English speech->image validation R@10 picks the best checkpoint.
`:tiny` shrinks sizes for tests.
"""

import ml_collections

from vgs_jax.configs import places_davenet


def get_config(arg=None):
    config = places_davenet.get_config(arg)
    config.dataset.name = "places_audio/bilingual"
    config.multilingual = ml_collections.ConfigDict(dict(
        languages=("english", "hindi"), shared_speech=False, layout="fields",
        renames={"english": {"caption_id": "caption_id_english"}, "hindi": {"audio": "audio_hindi"}},
        weights={"english_image": 1.0, "hindi_image": 1.0, "english_hindi": 1.0}, pair_expansion=False))
    return config
