"""Validation of a training config before any work starts (no data read, nothing written)."""

import math
import os

import ml_collections


class ConfigValueError(ValueError):
    """A config field has a value training cannot use."""


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_training_config(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigValueError listing every field with an unusable value and what to use."""
    problems = []

    def need(ok: bool, field: str, what: str):
        if not ok:
            problems.append(f"--config.{field}={_get(config, field)!r}: {what}")

    for field in ("batch_size", "eval_batch_size", "log_every_steps", "eval_every_steps",
                  "checkpoint_every_steps", "keep_checkpoints"):
        need(_positive_int(_get(config, field)), field, "must be an integer >= 1")
    steps = config.num_train_steps
    need(isinstance(steps, int) and (steps >= 1 or steps == -1), "num_train_steps",
         "must be >= 1, or -1 to train for num_epochs")
    if steps == -1:
        need(_positive_int(config.num_epochs), "num_epochs", "must be an integer >= 1 (or set num_train_steps)")
    max_frames = config.features.max_frames
    need(max_frames is None or _positive_int(max_frames), "features.max_frames", "must be >= 1 (or None)")
    for field in ("optimizer.lr_max", "optimizer.lr_min"):
        value = _get(config, field)
        need(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, field,
             "must be a finite number >= 0")
    for field in ("optimizer.weight_decay", "optimizer.grad_clip_norm", "loss.margin"):
        value = _get(config, field)
        need(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, field,
             "must be a finite number >= 0")
    speech = config.model.get("speech") or {}
    weights = speech.get("weights", "") if hasattr(speech, "get") else ""
    need(not weights or os.path.exists(weights), "model.speech.weights",
         "no such checkpoint; download it (e.g. wav2vec_small.pt, or a Hugging Face folder with config.json and "
         "model.safetensors) on a machine with network access and copy it there")
    if problems:
        raise ConfigValueError("Invalid config: " + "; ".join(problems) + ".")


def _get(config: ml_collections.ConfigDict, dotted: str):
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value
