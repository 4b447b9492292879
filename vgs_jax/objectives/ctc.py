"""Connectionist temporal classification (CTC) for the speech -> text head: loss and greedy decoding.

Class 0 is the CTC blank; text units are 1..V (`vgs_jax.text_units`), and label value 0 is only
ever padding. The loss is optax's forward algorithm (`optax.ctc_loss`), masked per example so that
utterances without a transcription (the low-resource set-up, `config.text.fraction`) and padding
rows add neither loss nor gradient.
"""

import jax
import jax.numpy as jnp
import optax

BLANK = 0


def ctc_loss(logits: jax.Array, logit_mask: jax.Array, labels: jax.Array, label_len: jax.Array,
             example_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean over the examples of `example_mask` of each one's CTC negative log-likelihood divided by its
    label length (a per-unit loss, on the scale of the retrieval losses).

    Args:
      logits: [B, T, V + 1] float (class 0 = blank); logit_mask: [B, T] bool, True on valid frames.
      labels: [B, N] int32 in 1..V, right-padded (anything beyond `label_len`); label_len: [B] int32.
      example_mask: [B] bool, False for rows that must not count (no transcription, padding rows).
    Returns:
      (loss float32 scalar, 0 when no row counts; count: float32 number of rows that count).
    """
    if logits.ndim != 3 or labels.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"ctc_loss: logits {logits.shape} must be [B, T, V+1] and labels {labels.shape} "
                         "[B, N] with the same B.")
    use = example_mask & (label_len > 0)
    n = labels.shape[1]
    # Rows that do not count get an empty label sequence: their (unused) loss stays finite.
    label_len = jnp.where(use, label_len, 0)
    label_pad = (jnp.arange(n)[None, :] >= label_len[:, None]).astype(jnp.float32)
    logit_pad = (~logit_mask).astype(jnp.float32)
    per_example = optax.ctc_loss(logits.astype(jnp.float32), logit_pad, labels, label_pad, blank_id=BLANK)
    per_unit = per_example / jnp.maximum(label_len, 1).astype(jnp.float32)
    count = use.sum().astype(jnp.float32)
    loss = jnp.where(use, per_unit, 0.0).sum() / jnp.maximum(count, 1.0)
    return loss, count


def greedy_decode(logits: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Best path decoding: the argmax unit of each valid frame, repeats collapsed, blanks removed.

    Args:
      logits: [B, T, V + 1]; mask: [B, T] bool (True on valid frames).
    Returns:
      (ids [B, T] int32, the decoded units left-aligned, 0 beyond each length; lengths [B] int32).
    """
    best = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    previous = jnp.pad(best, ((0, 0), (1, 0)), constant_values=BLANK)[:, :-1]
    keep = mask & (best != BLANK) & (best != previous)
    lengths = keep.sum(axis=1).astype(jnp.int32)
    position = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, best.shape[1])  # dropped frames: out of range
    rows = jnp.broadcast_to(jnp.arange(best.shape[0])[:, None], best.shape)
    ids = jnp.zeros_like(best).at[rows, position].set(best, mode="drop")
    return ids, lengths
