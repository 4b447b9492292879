"""Multi-task speech-image + speech->text (Chrupała 2019; Pasad et al. 2019; Higy et al. 2020, platalea's
`mtl_asr`) on `spoken_shapes`.

    python -m vgs_jax.main --config=configs/shapes_mtl_asr.py --workdir=runs/shapes_mtl_asr
    python -m vgs_jax.evaluate --workdir=runs/shapes_mtl_asr

configs/shapes_gru.py's dual encoder plus a CTC head (`models.text_heads`) on its last BiGRU layer, trained
jointly: loss = 1.0 x retrieval (platalea hinge) + 1.0 x CTC (`config.text.weights`; `text_image` > 0
adds the text -> image task on the transcriptions). `evaluate` reports the character (or phone) error
rate of the head's greedy transcription beside retrieval.

Arguments: `tiny`, `v2` (spoken_shapes 2.0.0), `units=chars|phones` (CTC targets: lowercased caption
characters, or the builder's phones without stress marks), `fraction=F` (share of training utterances
with a transcription; the others train retrieval only: Pasad et al.'s low-resource set-up),
`text_image=W` (weight of the text -> image task, default 0), `asr=W` (weight of the CTC task, default 1),
`language=hi|ja|en` (translations as the text side, spoken_shapes 2.0.0 only: each English utterance's text is
the parallel caption of the same meaning in that language, read from `<size>_hi:2.0.0` etc., characters of that
language as units; `vgs_jax.text_units`), e.g. the text -> image task on Hindi translations:

    python -m vgs_jax.main --config=configs/shapes_mtl_asr.py:language=hi,asr=0,text_image=1 --workdir=runs/shapes_mtl_hi

With `language` the CTC head (asr > 0) learns to emit the translation's characters from English speech: CTC
assumes a monotonic alignment, which a translation does not have (Hindi is verb-final, Japanese
postpositional), so its error rate measures that mismatch as much as learning; the text -> image task has no
such assumption.

Differences from platalea's `mtl_asr` recipe (anchor notes §1.11):
- Speech -> text is CTC with greedy decoding, not an attention encoder-decoder with beam search; the
  error rate is per character (or phone), not per word.
- The tasks are one weighted sum and one Adam optimizer per step, not alternating batches with an
  optimizer and scheduler per task.
- The CTC head is a linear layer on the shared encoder's last BiGRU layer (2 x 128 units, conv stride 3),
  not task-specific 1-layer BiGRU tops over a shared 4-layer BiGRU of 768 units.
- Batch 32, warm-up + cosine at 1e-3 over 4 epochs (platalea: batch 8, cyclic 2e-4, 32 epochs); the
  gradient-norm clip at 2.0 is platalea's.
"""

from vgs_jax import config_lib
from vgs_jax import configs


def get_config(arg=None):
    arg = config_lib.parse_arg(arg, tiny=False, v1=False, v2=False, units="chars", fraction=1.0, text_image=0.0,
                               asr=1.0, language="")
    if arg.language and arg.v1:
        raise ValueError(f"configs/shapes_mtl_asr.py: language={arg.language!r} needs parallel captions, which "
                         "spoken_shapes 1.0.0 (v1) does not have; drop v1 (the default data is 2.0.0).")
    return configs.spoken_shapes_text_config(
        tiny=arg.tiny, v1=arg.v1, v2=arg.v2, units=arg.units, fraction=arg.fraction,
        weights={"speech_image": 1.0, "asr": arg.asr, "text_image": arg.text_image}, retrieval_from="speech",
        language=arg.language)
