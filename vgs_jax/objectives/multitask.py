"""The multi-task objective of configs with text tasks (a `text` section): a weighted sum of

    speech_image  the config's retrieval loss (`objectives.registry`) on speech and image embeddings
    asr           the masked CTC loss of the speech -> text head (`objectives.ctc`), over the batch rows
                  whose transcription is available (`text_units`: config.text.fraction)
    text_image    the same retrieval loss on text-encoder embeddings of the available transcriptions

with `config.text.weights`. A task of weight 0 is not computed. The pipeline set-ups are weightings:
pip_ind trains asr and text_image (speech_image 0), pip_seq trains speech_image on a model that
retrieves from recognised text (`models.text_heads`, retrieval_from="recognised_text").
"""

from typing import Callable

from vgs_jax import text_units
from vgs_jax.objectives import ctc
from vgs_jax.objectives import registry

TASKS = ("speech_image", "asr", "text_image")


def task_weights(config) -> dict[str, float]:
    """{task: weight} from config.text.weights; ValueError for unknown, missing or negative weights."""
    weights = dict(config.text.weights)
    if set(weights) != set(TASKS) or any(not w >= 0 for w in weights.values()) or not any(weights.values()):
        raise ValueError(f"config.text.weights={weights}: give exactly the tasks {TASKS}, each >= 0, not all 0.")
    return {k: float(v) for k, v in weights.items()}


def make_multitask_loss_fn(retrieval_loss_fn: Callable, config) -> Callable:
    """`retrieval_loss_fn` (from `registry.make_loss_fn`) unchanged when the config has no `text`
    section; else fn(model, speech, image, batch, key) -> (loss, metrics) of the module docstring, with
    metrics "<task>_loss" for the computed tasks and "transcribed" (rows with a transcription)."""
    if not config.get("text"):
        return retrieval_loss_fn
    text_units.check_config(config)
    weights = task_weights(config)
    if weights["text_image"] and registry.get_objective(config.loss.name).inputs != registry.EMBEDDINGS:
        raise ValueError(f"config.text.weights.text_image > 0 needs an embedding loss; loss.name="
                         f"{config.loss.name!r} is not one.")

    def loss_fn(model, speech, image, batch, key):
        available = batch["example_mask"] & batch[text_units.AVAILABLE_KEY]
        total, metrics = 0.0, {}
        if weights["speech_image"]:
            loss, metrics = retrieval_loss_fn(model, speech, image, batch, key)
            metrics["speech_image_loss"] = loss
            total = total + weights["speech_image"] * loss
        if weights["asr"]:
            loss, count = ctc.ctc_loss(speech["ctc_logits"], speech["ctc_mask"], batch[text_units.IDS_KEY],
                                       batch[text_units.LEN_KEY], available)
            metrics.update(asr_loss=loss, transcribed=count)
            total = total + weights["asr"] * loss
        if weights["text_image"]:
            text = model.encode_text(batch[text_units.IDS_KEY], batch[text_units.LEN_KEY])
            loss, _ = retrieval_loss_fn(model, text, image, {**batch, "example_mask": available}, key)
            metrics["text_image_loss"] = loss
            total = total + weights["text_image"] * loss
        return total, metrics

    return loss_fn
