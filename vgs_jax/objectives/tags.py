"""Keyword prediction from visual tags (Kamper et al. 2017): the speech model learns the tagger's soft labels.

The image tower is the visual tagger (image -> one logit per keyword), the speech tower the keyword
CNN (`models.kws_cnn`). Per example, with sigmoid cross-entropy `bce(logits, p)` summed over the V
keywords,

    loss = bce(speech_logits, stop_gradient(sigmoid(image_logits)))     (the speech model, Kamper 2017)
         + bce(image_logits, keyword_targets)                            (the tagger)

averaged over the batch's real rows. The tagger learns from the targets of training images only (a
caption's bag of keywords, or the scene's concepts: `kws.keywords`); the speech model sees no
transcription, only the tagger's probabilities for the paired image. Kamper trained the tagger first
on another corpus; here both train together (the speech term ignores the tagger's gradient), so one
run of the train loop does both.
"""
import jax
import jax.numpy as jnp
import optax

TARGETS_KEY = "keyword_targets"
"""The batch field of the tagger's targets, float32 [B, V] (added by the train iterator, `kws.keywords`)."""


def tag_inputs(speech: dict, image: dict, batch: dict) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(speech logits, image logits, keyword targets) from the dual encoder's tower outputs and the batch."""
    if "logits" not in speech or "logits" not in image:
        raise ValueError("loss.name='visual_tags' needs pooled speech and image towers (their unnormalised "
                         "outputs are the keyword logits), e.g. speech_encoder='kamper_cnn', image_encoder='conv'.")
    if TARGETS_KEY not in batch:
        raise ValueError(f"loss.name='visual_tags' needs batch[{TARGETS_KEY!r}]; the train iterator adds it when "
                         "the config has a `kws` section (see configs/shapes_kws.py).")
    return speech["logits"], image["logits"], batch[TARGETS_KEY]


def summed_sigmoid_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """logits, targets (probabilities) [B, V] -> [B] float32: sum over keywords of the binary cross-entropy."""
    return optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32), targets.astype(jnp.float32)).sum(-1)


def visual_tag_loss(speech_logits: jax.Array, image_logits: jax.Array, targets: jax.Array, *, mask: jax.Array,
                    tagger_weight: float = 1.0, oracle_tagger: bool = False) -> jax.Array:
    """speech_logits, image_logits, targets [B, V]; mask [B] bool (False: padding row) -> float32 scalar.

    oracle_tagger: the speech model learns `targets` instead of the tagger's outputs (a perfect tagger;
    only meaningful with scene targets, `kws.tagger_targets="scene"`, which `kws.keywords` checks).
    """
    if not speech_logits.shape == image_logits.shape == targets.shape:
        raise ValueError(f"visual_tag_loss: speech logits {speech_logits.shape}, image logits {image_logits.shape} "
                         f"and keyword targets {targets.shape} must all be [batch, keywords].")
    soft_labels = targets if oracle_tagger else jax.lax.stop_gradient(jax.nn.sigmoid(image_logits.astype(jnp.float32)))
    per_example = (summed_sigmoid_cross_entropy(speech_logits, soft_labels)
                   + tagger_weight * summed_sigmoid_cross_entropy(image_logits, targets))
    mask = mask.astype(jnp.float32)
    return jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def visual_tag_loss_on_mesh(speech_logits, image_logits, targets, *, mask, mesh, **kwargs):
    """`visual_tag_loss` for `loss.chunked=True`: it pairs no examples (no B x B scores), so the sharded
    batch needs no ring and this is the same loss (`mesh` unused)."""
    del mesh
    return visual_tag_loss(speech_logits, image_logits, targets, mask=mask, **kwargs)
