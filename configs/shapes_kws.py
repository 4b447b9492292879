"""Keyword spotting from visual tags (Kamper et al. 2017, 2019) on `spoken_shapes`.

    python -m vgs_jax.main --config=configs/shapes_kws.py --workdir=runs/shapes_kws
    python -m vgs_jax.evaluate --workdir=runs/shapes_kws

A visual tagger (the pixel CNN, image -> 17 keyword logits: 7 shapes, 8 colours, 2 sizes) and
Kamper's keyword CNN on speech (`models.kws_cnn`, the recipe's widths 64/256/1024, kernels 9/10/11,
pools 3/3/all, one hidden layer of 4096) train together with `objectives.tags.visual_tag_loss`: the
speech model learns the tagger's sigmoid outputs for the paired image (summed sigmoid cross-entropy);
the tagger learns the keywords of the training captions' text. No transcription of the speech is used
for the speech model. `evaluate` reports exact and semantic keyword spotting (P@10, P@N, EER) beside
a random baseline and an oracle bag of words from the transcripts.

Choices where the paper and notes are silent or do not fit, listed:
- The tagger is trained here, jointly, from the training captions' text (`kws.tagger_targets="text"`;
  "scene" uses the scene metadata instead), not pretrained on another corpus (Kamper: MSCOCO +
  Flickr30k, 1000 words); the speech term stops the tagger's gradient, as with a frozen tagger.
- Vocabulary: spoken_shapes' 17 concept words, not the 1000 most frequent caption words.
- The loss sums over keywords and averages over the batch (the recipe's script averages both).
- Adam at 1e-3 with warm-up + cosine over 4 epochs of `small` (Kamper: Adam 1e-4, 25 epochs), so it
  trains in minutes on CPUs; features platalea's 39-d MFCCs (Kamper: MFCC + deltas with CMVN, VAD).
- Utterances are not padded to 800 frames: the final max-pool runs over each utterance's frames.
- `loss.oracle_tagger=True` (with `kws.tagger_targets="scene"`) replaces the tagger's outputs by the
  scene's concepts: a perfect visual tagger (not Kamper's recipe; a check of everything but the tagger),
  so the speech model's targets are right from step 1. The joint run is still below random at step 200
  of the README's run; not for want of a tagger: with the learning test's settings the joint tagger
  ranks test images well above random from step 40 while the speech model learning its soft outputs
  stays below random until ~step 200 (README). With the oracle, `:tiny` at widths 32/64/128,
  hidden 128, constant Adam 1e-3, 120 steps of 32 on spoken_shapes/quick spots clearly above random
  (tests/kws_learning_test.py), where the joint run does not.
`:tiny` shrinks everything for tests. The data is spoken_shapes 2.0.0 by default (synonyms and partial
captions, so exact and semantic spotting differ more); `:v1` pins 1.0.0, which the README's table used.
"""

from vgs_jax import config_lib
from vgs_jax import configs
from vgs_jax.kws import recipe


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False)
    config = configs.spoken_shapes_config(tiny=arg.tiny, v1=arg.v1, v2=arg.v2)
    recipe.set_keyword_spotting(config, vocabulary="spoken_shapes", num_keywords=17, tiny=arg.tiny)
    return config
