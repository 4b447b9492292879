"""Pipeline baselines (Higy et al. 2020, platalea's `pip_ind` / `pip_seq`) on `spoken_shapes`: speech -> text
(CTC recogniser), then text -> image; retrieval from the recognised text.

    python -m vgs_jax.main --config=configs/shapes_pipeline.py --workdir=runs/shapes_pip_ind
    python -m vgs_jax.main --config=configs/shapes_pipeline.py:pip=seq --workdir=runs/shapes_pip_seq \
        --config.init_from=runs/shapes_pip_ind
    python -m vgs_jax.evaluate --workdir=runs/shapes_pip_ind

The model (`models.text_heads`, retrieval_from="recognised_text") embeds an utterance as the text
encoder's embedding of the CTC head's greedy transcription, so `evaluate` scores the whole pipeline
(and reports the recogniser's character/phone error rate).

- `pip=ind` (independent): the recogniser (configs/shapes_gru.py's conv + BiGRU encoder with a CTC head)
  and the text -> image model (text encoder + image CNN) are trained at once on the ground-truth
  transcriptions, weights asr 1, text_image 1, speech_image 0. They share no parameter, so this is two
  independent trainings in one run (except for the shared gradient-norm clip).
- `pip=seq` (sequential): the text -> image model is trained on the recogniser's transcriptions of the
  training speech (weights speech_image 1 only: the retrieval loss through recognised text; no gradient
  reaches the recogniser). Start it from a trained recogniser with `--config.init_from=` a `pip=ind` run.

Arguments: `tiny`, `v2`, `units=chars|phones`, `fraction=F` (share of training utterances with a
transcription: the recogniser and the ind text -> image model learn from those only).

Differences from platalea's pipelines (anchor notes §1.11): a CTC recogniser with greedy decoding (not
an attention decoder with beam search); `pip_seq`'s text -> image model starts from the `ind` run's text
encoder (warm start) rather than from scratch; the rest as in configs/shapes_mtl_asr.py.
"""

from vgs_jax import config_lib
from vgs_jax import configs

WEIGHTS = {"ind": {"speech_image": 0.0, "asr": 1.0, "text_image": 1.0},
           "seq": {"speech_image": 1.0, "asr": 0.0, "text_image": 0.0}}


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False, units="chars", fraction=1.0, pip="ind")
    if arg.pip not in WEIGHTS:
        raise ValueError(f"configs/shapes_pipeline.py: pip={arg.pip!r}; choose one of {sorted(WEIGHTS)}.")
    return configs.spoken_shapes_text_config(tiny=arg.tiny, v1=arg.v1, v2=arg.v2, units=arg.units, fraction=arg.fraction,
                                             weights=WEIGHTS[arg.pip], retrieval_from="recognised_text")
