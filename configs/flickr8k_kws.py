"""Keyword spotting from visual tags on Flickr8K Audio Captions (Kamper et al. 2017).

    python -m vgs_jax.main --config=configs/flickr8k_kws.py --workdir=runs/flickr8k_kws
    python -m vgs_jax.evaluate --workdir=runs/flickr8k_kws
    python -m vgs_jax.main --config=configs/flickr8k_kws.py:tagger_weights=pretrained/flickr8k_tagger.npz \
        --workdir=runs/flickr8k_kws_pretrained

Kamper's keyword CNN on speech (`models.kws_cnn`: convs 64x9, 256x10, 1024x11, max-pools 3, 3 and over
time, 4096 hidden) learns, with summed sigmoid cross-entropy (`objectives.tags.visual_tag_loss`), the
sigmoid outputs of a visual tagger for the paired image over a vocabulary of the 1000 most frequent
content words of the training captions (`kws.vocabulary="caption_words"`, `vgs_jax/kws/keywords.py`).
The tagger is a linear layer over the precomputed ResNet-152 vectors of the images (as
`flickr8k_gru.py`) trained on the Flickr8K training captions' words (`kws.tagger_targets="text"`); the
speech model sees no transcription. `evaluate` reports exact (the word is spoken) and semantic (the
word is in any caption of the image) P@10, P@N and EER per keyword and averaged.

Needs the `flickr8k_audio` dataset (manual download) and its ResNet-152 image vectors (README, "Real
corpora"); without them training stops at once with a message naming the files and folder it needs.

Choices where the paper and notes are silent or do not fit, listed:
- Tagger: Kamper's is VGG-16 pretrained on ImageNet and trained on MSCOCO + Flickr30k captions (never
  Flickr8K); here a linear tagger on ResNet-152 vectors learns from Flickr8K's training captions, jointly
  with the speech model (the speech term stops its gradient, as with a frozen tagger).
- Vocabulary: the 1000 most frequent words of the training captions (counted once per caption), minus a
  closed-class stop list and non-alphabetic tokens; Kamper counted MSCOCO + Flickr30k captions.
- Semantic relevance: Kamper et al. (2019) had people judge it; here a keyword is semantically relevant
  when any caption of the utterance's image says it.
- Optimiser: Adam at 1e-4, constant, 25 epochs, batch 32 (the batch size is not in the notes);
  features: platalea's 39-d MFCCs (Kamper: MFCC + deltas, CMVN). Utterances are not padded to 800 frames.
`:tagger_weights=PATH` uses a pretrained tagger instead (`vgs_jax/kws/tagger_file.py`: a NumPy .npz of
keywords [V], kernel [2048, V], bias [V] over the same ResNet-152 vectors; the vocabulary is its
keywords, its sigmoid outputs are the speech model's targets, `loss.oracle_tagger=True`), as Kamper's
tagger was fixed; loading the config stops with a message naming the file when it is missing.
`:tiny` shrinks the model and keeps 4 keywords (the builder's dummy data has few words).
"""

from vgs_jax import config_lib
from vgs_jax import configs
from vgs_jax.kws import recipe
from vgs_jax.kws import tagger_file


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, tagger_weights="")
    config = configs.platalea_corpus_config("flickr8k_audio")
    if arg.tagger_weights:  # Kamper's fixed tagger: its outputs are the speech model's targets
        recipe.set_keyword_spotting(config, vocabulary="tagger_file", tiny=arg.tiny, tagger_targets="pretrained",
                                    num_keywords=len(tagger_file.load(arg.tagger_weights).keywords),
                                    tagger_weights=arg.tagger_weights)
        config.loss.oracle_tagger = True
    else:
        recipe.set_keyword_spotting(config, vocabulary="caption_words", num_keywords=4 if arg.tiny else 1000,
                                    tiny=arg.tiny)
    config.optimizer.schedule = "constant"
    config.optimizer.lr_max = 1e-4
    config.num_epochs = 25
    if arg.tiny:
        config.batch_size = 8
        config.num_train_steps = 2
    return config
