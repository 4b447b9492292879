"""Embedding-cache ("gradient cache") training: a contrastive batch larger than fits in memory.

Gao et al. (2021), "Scaling deep contrastive learning batch size under memory limited setup".
With `config.train.embedding_cache_chunks = K > 1` the train step

1. embeds the global batch in K sub-batches WITHOUT keeping activations (a `lax.map` of the
   forward pass; only the towers' outputs [B, E] (and frame maps) are kept);
2. computes the loss on ALL B embeddings at once, and its gradient with respect to every
   embedding (and directly to the model's learned temperature / logit bias);
3. runs the forward pass again sub-batch by sub-batch, each time back-propagating that
   sub-batch's slice of the embedding gradient (`jax.vjp`), and sums the parameter gradients.

Peak activation memory is that of one sub-batch of B / K examples, but every anchor still sees
all B - 1 negatives, so the gradient equals the full-batch gradient (tested). Sub-batch k takes
rows k, k + K, k + 2K, ... so each sub-batch stays spread over all devices.

Plain gradient accumulation (summing gradients of K independent losses on B / K examples) is
NOT equivalent for contrastive losses: each loss would only see B / K - 1 negatives, a different
and easier objective. Randomness: sub-batch k's forward passes both use
`fold_in(key, k)` for jitter and dropout, so the second pass recomputes exactly the first pass's
embeddings. Models with mutable state (BatchNorm statistics, VQ codebooks) are refused: their
train-mode forward pass depends on the sub-batch (batch statistics), so the gradient could not
equal the full-batch one.
"""

import jax
import jax.numpy as jnp
from flax import nnx

TOWER_KEYS = ("embedding", "map", "map_mask")
"""Per-example tower outputs the objectives read (vq_* outputs come with model state: refused)."""


def check_supported(chunks, *, model_state: dict, batch_size: int, padded_batch_size: int | None = None) -> None:
    """ValueError unless `chunks` sub-batches can reproduce the full-batch gradient.

    `padded_batch_size`: the rows of a step's batch (config.batch_size padded to a multiple of the
    devices, `input_pipeline.padded_batch_size`); both must be divisible by `chunks`.
    """
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ValueError(f"config.train.embedding_cache_chunks must be an integer >= 1 (1 = off); got {chunks!r}.")
    if chunks == 1:
        return
    if jax.tree.leaves(model_state):
        raise ValueError(
            "config.train.embedding_cache_chunks > 1 needs a model without mutable state, but this model has "
            f"{sorted(model_state)} state (BatchNorm statistics or VQ codebooks, computed from the sub-batch "
            "in train mode, so the gradient would not equal the full-batch one). Set "
            "train.embedding_cache_chunks=1, or use loss.chunked=True to bound the loss's memory instead.")
    if batch_size % chunks:
        raise ValueError(f"config.batch_size={batch_size} is not divisible by "
                         f"config.train.embedding_cache_chunks={chunks}; choose a divisor.")
    if padded_batch_size is not None and padded_batch_size % chunks:
        raise ValueError(f"config.batch_size={batch_size} is padded to {padded_batch_size} rows (a multiple of the "
                         f"device count), which config.train.embedding_cache_chunks={chunks} does not divide; "
                         "choose a batch size that is a multiple of the device count, or another K.")


def _split(x: jax.Array, chunks: int) -> jax.Array:
    """[B, ...] -> [K, B / K, ...]; sub-batch k holds rows k, k + K, ..."""
    return jnp.swapaxes(x.reshape((x.shape[0] // chunks, chunks) + x.shape[1:]), 0, 1)


def _merge(x: jax.Array) -> jax.Array:
    """Inverse of `_split`: [K, B / K, ...] -> [B, ...] in the original row order."""
    return jnp.swapaxes(x, 0, 1).reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def cached_value_and_grad(params, batch: dict, *, template, model_state, loss_fn, image_key: str, chunks: int,
                          k_jitter, k_dropout, k_loss):
    """((loss, metrics), grads) of the step's loss at the global batch, embedding K sub-batches.

    Args:
      params: the model's parameter dict; model_state: its (empty) state dict.
      batch: the global batch dict (leading dim B, divisible by `chunks`).
      template: `dual_encoder.Template`; loss_fn: `registry.make_loss_fn`'s function.
      image_key: the batch key of the image input; chunks: K.
      k_jitter, k_dropout, k_loss: the step's keys (sub-batch k uses fold_in(key, k) for the first two).
    """
    size = batch["audio"].shape[0]
    if size % chunks:
        raise ValueError(f"the batch of {size} examples is not divisible by embedding_cache_chunks={chunks}.")
    subs = {k: _split(batch[k], chunks) for k in ("audio", "audio_mask", image_key, "example_mask")}

    def towers(p, sub, k):
        """float and non-float per-example outputs of one sub-batch's train-mode forward pass."""
        model = template.merge(p, model_state, train=True)
        nnx.reseed(model, default=jax.random.fold_in(k_dropout, k))
        speech = model.encode_speech(sub["audio"], sub["audio_mask"], key=jax.random.fold_in(k_jitter, k))
        image = model.encode_image(sub[image_key], sub["example_mask"])
        outs = {side: {key: out[key] for key in TOWER_KEYS if key in out}
                for side, out in (("speech", speech), ("image", image))}
        is_float = lambda x: jnp.issubdtype(x.dtype, jnp.floating)
        floats = {side: {k: v for k, v in out.items() if is_float(v)} for side, out in outs.items()}
        others = {side: {k: v for k, v in out.items() if not is_float(v)} for side, out in outs.items()}
        return floats, others

    index = jnp.arange(chunks)
    floats, others = jax.lax.map(lambda xs: towers(params, xs[0], xs[1]), (subs, index))
    floats, others = jax.tree.map(_merge, floats), jax.tree.map(_merge, others)
    floats, others = jax.lax.stop_gradient(floats), jax.lax.stop_gradient(others)

    def loss_of(p, f):
        outs = {side: {**f[side], **others[side]} for side in f}
        return loss_fn(template.merge(p, model_state, train=True), outs["speech"], outs["image"], batch, k_loss)

    (loss, metrics), (direct, d_floats) = jax.value_and_grad(loss_of, argnums=(0, 1), has_aux=True)(params, floats)
    d_subs = jax.tree.map(lambda x: _split(x, chunks), d_floats)

    def backward(acc, xs):
        sub, d_sub, k = xs
        _, vjp = jax.vjp(lambda p: towers(p, sub, k)[0], params)
        (g,) = vjp(d_sub)
        return jax.tree.map(jnp.add, acc, g), None

    grads, _ = jax.lax.scan(backward, direct, (subs, d_subs, index))
    return (loss, metrics), grads
