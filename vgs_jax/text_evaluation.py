"""Character / phone error rate of a model with a CTC text head (configs with a `text` section) on a
split: every utterance transcribed by greedy CTC decoding (`objectives.ctc`) and scored against its
transcription (`text_metrics.error_rate`). `evaluate` reports it beside retrieval.
"""

import numpy as np

from vgs_jax import audio_features
from vgs_jax import data_sources
from vgs_jax import evaluation
from vgs_jax import inference
from vgs_jax import input_pipeline
from vgs_jax import text_metrics
from vgs_jax import text_units
from vgs_jax.objectives import ctc

NAMES = {"chars": "CER", "phones": "PER"}
SHOWN_EXAMPLES = 3


def transcribe_split(template, params, source, *, config, batch_size: int, mesh) -> tuple[list, list]:
    """(references, hypotheses): lists of unit-symbol lists, one per example of `source`, in order."""
    vocab = text_units.config_vocabulary(config)
    featurizer = audio_features.Featurizer.from_recipe(config.features.recipe)
    references, hypotheses = [], []
    for batch in input_pipeline.make_eval_batches(
            source, batch_size=batch_size, featurizer=featurizer, max_frames=config.features.max_frames,
            bucket_boundaries=config.features.bucket_boundaries, image_key=config.dataset.image_key,
            example_fields=text_units.example_fields(config, training=False)):
        sharded = input_pipeline.shard_batch(batch, mesh)
        out = inference.encode_speech(template, params, sharded["audio"], sharded["audio_mask"],
                                      keys=("ctc_logits", "ctc_mask"))
        ids, lengths = (np.asarray(x) for x in ctc.greedy_decode(out["ctc_logits"], out["ctc_mask"]))
        for row in np.flatnonzero(batch["example_mask"]):
            references.append(text_units.decode(batch[text_units.IDS_KEY][row], batch[text_units.LEN_KEY][row],
                                                vocab))
            hypotheses.append(text_units.decode(ids[row], lengths[row], vocab))
    return references, hypotheses


def evaluate_checkpoint(workdir: str, *, checkpoint="latest", split: str = "test", batch_size: int | None = None
                        ) -> dict:
    """{"units", "metric" ("CER" or "PER"), "error_rate", "errors", "reference_units", "utterances",
    "examples": the first few (reference, hypothesis) strings} of `workdir`'s checkpoint on `split`."""
    _, config, template, params = evaluation.restore_model(workdir, checkpoint)
    if not config.get("text"):
        raise ValueError(f"{workdir}: its config has no `text` section, so the model has no text head to score.")
    source = data_sources.open_config_split(config.dataset, split)
    refs, hyps = transcribe_split(template, params, source, config=config,
                                  batch_size=batch_size or config.eval_batch_size, mesh=input_pipeline.data_mesh())
    joiner = "" if config.text.units == "chars" else " "
    return {"units": config.text.units, "metric": NAMES[config.text.units], **text_metrics.error_rate(refs, hyps),
            "examples": [(joiner.join(r), joiner.join(h)) for r, h in zip(refs[:SHOWN_EXAMPLES], hyps)]}


def format_results(results: dict) -> str:
    lines = [f"{results['metric']} {100 * results['error_rate']:.1f}% ({results['errors']} edits / "
             f"{results['reference_units']} {results['units']}, {results['utterances']} utterances, greedy CTC)"]
    lines += [f"  ref: {r}\n  hyp: {h}" for r, h in results["examples"]]
    return "\n".join(lines)
