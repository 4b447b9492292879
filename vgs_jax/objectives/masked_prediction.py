"""HuBERT-style masked prediction (Hsu et al. 2021), the self-supervised term added to the grounding loss.

With `config.loss.ssl_weight` = w > 0 the trainer's objective is `retrieval loss + w * L_ssl`:

- spans of `mask_length` frames are masked (fairseq's `compute_mask_indices`, "static"): per utterance of T
  valid frames, n = floor(mask_prob * T / mask_length + u), u ~ U[0, 1), at least `min_masks` (2), span
  starts drawn without replacement among the frames where a whole span fits (fairseq draws from the first
  T - mask_length; spans may overlap, so well under mask_prob of the frames end up masked); fairseq's
  trimming of every row to the batch's smallest masked count is left out;
- the masked frames' projected features are replaced by the encoder's learned mask embedding and the
  Transformer runs on them (`SSLSpeechEncoder.masked_prediction`, a second pass besides the grounding
  pass, which sees the unmasked input);
- L_ssl = mean over masked frames of -log softmax_k(cos(W o_t, e_k) / temperature)[z_t]: o_t the last
  layer, W `final_proj`, e_k the learned embedding of cluster k, z_t the frame's target, the k-means
  cluster of its MFCC frame (`vgs_jax.ssl_targets`; the MFCC frame whose centre is nearest the conv
  frame's); temperature 0.1 as HuBERT; unmasked frames are not predicted (HuBERT's pred_nomask_weight 0).
"""
import jax
import jax.numpy as jnp
import numpy as np

TARGETS_KEY = "ssl_targets"
"""The batch field of the k-means targets: int32 [B, L] at 10 ms (-1 past each utterance; `ssl_targets`)."""
TARGET_HOP = 160
"""Samples between target frames (the MFCC hop, 10 ms at 16 kHz)."""
SSL_ENCODERS = ("wav2vec2", "hubert")
HEAD_PARAMS = ("mask_embedding", "final_proj", "label_embeddings")
"""The head's parameters in `SSLSpeechEncoder` (ssl_clusters > 0); the grounding loss never reads them."""


def span_starts(key: jax.Array, frame_mask: jax.Array, *, mask_prob: float, mask_length: int,
                min_masks: int = 2) -> jax.Array:
    """frame_mask [B, T] prefix mask -> [B, T] bool: the span starts (see the module docstring)."""
    b, t = frame_mask.shape
    lengths = jnp.sum(frame_mask, axis=1)
    k_num, k_start = jax.random.split(key)
    fits = jnp.maximum(lengths - mask_length + 1, 0)  # starts s with s + mask_length <= T
    num = jnp.floor(mask_prob * lengths / mask_length + jax.random.uniform(k_num, (b,))).astype(jnp.int32)
    num = jnp.minimum(jnp.maximum(num, min_masks), fits)
    scores = jnp.where(jnp.arange(t)[None, :] < fits[:, None], jax.random.uniform(k_start, (b, t)), 2.0)
    rank = jnp.argsort(jnp.argsort(scores, axis=1), axis=1)  # a uniformly random order of the valid starts
    return rank < num[:, None]


def spans(starts: jax.Array, mask_length: int) -> jax.Array:
    """starts [B, T] bool -> [B, T] bool: frame t is masked when a start lies in (t - mask_length, t]."""
    c = jnp.cumsum(starts.astype(jnp.int32), axis=1)
    before = jnp.pad(c, ((0, 0), (mask_length, 0)))[:, :c.shape[1]]
    return c > before


def span_mask(key: jax.Array, frame_mask: jax.Array, *, mask_prob: float, mask_length: int) -> jax.Array:
    """frame_mask [B, T] -> time mask [B, T] bool of the masked frames (within the valid frames)."""
    if not 0.0 < mask_prob <= 1.0 or mask_length < 1:
        raise ValueError(f"masked prediction: loss.mask_prob ({mask_prob}) must be in (0, 1] and loss.mask_length "
                         f"({mask_length}) >= 1 (HuBERT: 0.8 and 10).")
    return spans(span_starts(key, frame_mask, mask_prob=mask_prob, mask_length=mask_length), mask_length)


def frame_targets(targets: jax.Array, num_frames: int, stride: int, kernel: int) -> jax.Array:
    """targets [B, L] (10 ms, -1 = none) -> [B, num_frames]: each conv frame (stride, kernel in samples) takes the
    target whose MFCC frame (centred at TARGET_HOP * j, librosa's center=True) is nearest its centre, stride * t +
    (kernel - 1) / 2 (`capabilities.FrameClock`)."""
    twice_centre = 2 * stride * jnp.arange(num_frames) + kernel - 1
    j = (twice_centre + TARGET_HOP) // (2 * TARGET_HOP)
    inside = j < targets.shape[1]
    return jnp.where(inside[None, :], targets[:, jnp.minimum(j, targets.shape[1] - 1)], -1)


def masked_prediction_loss(projected: jax.Array, label_embeddings: jax.Array, targets: jax.Array,
                           time_mask: jax.Array, *, temperature: float) -> tuple[jax.Array, jax.Array]:
    """projected [B, T, D], label_embeddings [K, D], targets [B, T] int (-1: none), time_mask [B, T] bool ->
    (mean cross-entropy over masked frames with a target, their top-1 accuracy); both 0 with no such frame."""
    def unit(x):
        return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-8)  # torch cosine_similarity's eps

    logits = jnp.einsum("btd,kd->btk", unit(projected.astype(jnp.float32)),
                        unit(label_embeddings.astype(jnp.float32))) / temperature
    use = time_mask & (targets >= 0)
    z = jnp.maximum(targets, 0)
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), z[..., None], axis=-1)[..., 0]
    count = jnp.maximum(jnp.sum(use), 1)
    correct = jnp.argmax(logits, axis=-1) == z
    return jnp.sum(jnp.where(use, nll, 0.0)) / count, jnp.sum(use & correct) / count


def ssl_loss(model, batch: dict, key: jax.Array, *, mask_prob: float, mask_length: int,
             temperature: float) -> tuple[jax.Array, dict]:
    """The masked-prediction term of a dual encoder whose speech tower is an `SSLSpeechEncoder` with a head ->
    (float32 scalar, {"ssl_loss", "ssl_accuracy", "ssl_masked_fraction"})."""
    encoder = model.speech_encoder
    if TARGETS_KEY not in batch:
        raise ValueError(f"loss.ssl_weight > 0 needs batch[{TARGETS_KEY!r}]; the train iterator adds it "
                         "(vgs_jax.ssl_targets) when config.loss.ssl_weight > 0.")
    frame_mask = encoder.frame_mask(batch["audio_mask"]) & batch["example_mask"][:, None]
    time_mask = span_mask(key, frame_mask, mask_prob=mask_prob, mask_length=mask_length)
    out = encoder.masked_prediction(batch["audio"], batch["audio_mask"], time_mask)
    stride, kernel = encoder.capabilities.frame_clock.stride, encoder.capabilities.frame_clock.kernel
    targets = frame_targets(batch[TARGETS_KEY], frame_mask.shape[1], stride, kernel)
    loss, accuracy = masked_prediction_loss(out["projected"], out["label_embeddings"], targets, time_mask,
                                            temperature=temperature)
    fraction = jnp.sum(time_mask) / jnp.maximum(jnp.sum(frame_mask), 1)
    return loss, {"ssl_loss": loss, "ssl_accuracy": accuracy, "ssl_masked_fraction": fraction}


def check_config(loss_config, model_config) -> None:
    """ValueError naming the field when loss.ssl_weight > 0 cannot run with this model."""
    if model_config.speech_encoder not in SSL_ENCODERS or not model_config.speech.get("ssl_clusters", 0):
        raise ValueError(f"loss.ssl_weight={loss_config.ssl_weight} (masked prediction) needs speech_encoder in "
                         f"{SSL_ENCODERS} with model.speech.ssl_clusters > 0 (the k-means cluster count, HuBERT "
                         f"100); got speech_encoder={model_config.speech_encoder!r}, ssl_clusters="
                         f"{model_config.speech.get('ssl_clusters', 0)}. Or set loss.ssl_weight=0.")
    for field in ("mask_prob", "mask_length", "ssl_temperature"):
        if field not in loss_config:
            raise ValueError(f"loss.ssl_weight > 0 needs loss.{field} (HuBERT: mask_prob 0.8, mask_length 10, "
                             "ssl_temperature 0.1).")
    if not np.isfinite(loss_config.ssl_temperature) or loss_config.ssl_temperature <= 0:
        raise ValueError(f"loss.ssl_temperature={loss_config.ssl_temperature} must be > 0 (HuBERT: 0.1).")
