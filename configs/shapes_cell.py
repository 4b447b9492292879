"""CELL (Roy & Pentland 2002) on `spoken_shapes` (survey-systems.md A.1; `python -m vgs_jax.cell`).

    python -m vgs_jax.cell --config=configs/shapes_cell.py:v1 --config.dataset.name=spoken_shapes/quick:1.0.0

Choices the paper and the notes leave open (paper: Roy & Pentland 2002, Cognitive Science 26):
- data: the recogniser trains on `recognizer_split` (train) phone alignments (the paper: TIMIT);
  CELL hears `split` (test), captions in stored order, each utterance with its own scene;
- features: the `mfcc` recipe (39: 13 MFCC + deltas, 10 ms frames); frames outside every aligned
  phone are silence;
- recogniser: 1 bidirectional GRU layer of 64 units -> Linear -> phones (the paper: a recurrent
  net), per-frame cross-entropy, Adam lr 3e-3, 300 steps of 16 utterances; `oracle=True` replaces
  it by the alignments (posterior 0.9 on the true phone: an ideal recogniser);
- Viterbi: one HMM state per phone, emission = log posterior, self-loop probability 0.9;
- candidates: 3-8 consecutive decoded phones with >= 1 vowel, not across silence;
- vision: boundary-pair histograms (8 distance x 6 normal-angle bins, `vgs_jax.cell_vision`),
  chi-square distance; shapes match at <= 0.07 (on the 671 objects of quick 1.0.0's first 300
  test captions: 100.0% of same-shape pairs and 0.0% of different-shape pairs);
- short-term memory: the last 5 utterance-scene pairs (the paper's buffer of recent pairs); forms
  match at Levenshtein <= 1 and normalised distance <= 0.25;
- long-term memory: MI between the word-form and shape events over all utterances heard, kept at
  >= 0.25 bits with >= 3 utterances holding both and a positive association; lexicon by
  decreasing MI without overlapping forms for a matching shape (`vgs_jax.cell_memory`);
- audio-only baseline: the same buffer and memory without vision, lexicon cut at CELL's size;
- metrics: boundary tolerance 30 ms; single word = >= 70% of the segment inside one word and
  >= 70% of that word covered.
`:tiny` reads spoken_shapes/tiny with a smaller, shorter recogniser; `:v1` pins 1.0.0.
"""

import ml_collections

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False)
    c = ml_collections.ConfigDict()
    c.system = "cell"
    c.seed = 0
    c.dataset = ml_collections.ConfigDict(dict(
        name=configs.spoken_shapes_name(tiny=arg.tiny, v1=arg.v1, v2=arg.v2), data_dir=config_lib.default_data_dir(),
        build_if_missing=True, recognizer_split="train", max_recognizer_captions=0, split="test",
        max_captions=0))  # 0: all
    c.features = ml_collections.ConfigDict(dict(recipe="mfcc"))
    c.recognizer = ml_collections.ConfigDict(dict(
        oracle=False, hidden=32 if arg.tiny else 64, layers=1, steps=40 if arg.tiny else 300,
        batch_size=16, lr=3e-3, stay=0.9, log_every=0 if arg.tiny else 50))
    c.candidates = ml_collections.ConfigDict(dict(min_phones=3, max_phones=8))
    c.memory = ml_collections.ConfigDict(dict(stm_size=5, form_distance=0.25, shape_distance=0.07,
                                              mi_threshold=0.25, min_together=3))
    c.metrics = ml_collections.ConfigDict(dict(boundary_tolerance_s=0.03, discovery_overlap=0.7))
    return c
