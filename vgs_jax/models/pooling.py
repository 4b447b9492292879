"""Pooling of frame sequences into one vector: platalea's vectorial attention and a masked mean.

Also holds `torch_uniform_init`, the PyTorch default initialiser (uniform in +-1/sqrt(fan_in)) that the
platalea-style modules use so that freshly initialised models match the reference's statistics.
"""
import jax
import jax.numpy as jnp
from flax import nnx


def torch_uniform_init(fan_in: int) -> nnx.initializers.Initializer:
    """PyTorch's default init for Linear/Conv/GRU weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Args:
      fan_in: number of inputs feeding one output unit (Linear: in_features; Conv1d: in_channels*kernel;
        GRU: hidden size, PyTorch's choice for every GRU tensor).
    Returns:
      an initializer `init(key, shape, dtype=float32) -> Array`.
    """
    if fan_in <= 0:
        raise ValueError(f"torch_uniform_init: fan_in must be positive, got {fan_in}.")
    bound = 1.0 / float(fan_in) ** 0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


def check_h_mask(h: jax.Array, mask: jax.Array, where: str) -> None:
    if h.ndim != 3:
        raise ValueError(f"{where}: h must be [batch, time, features], got shape {h.shape}.")
    if mask.shape != h.shape[:2]:
        raise ValueError(
            f"{where}: mask shape {mask.shape} must equal h's [batch, time] = {h.shape[:2]}; "
            "pass the boolean frame mask that goes with h.")


def mean_pool(h: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of the valid frames of each sequence.

    Args:
      h: [B, T, D] float frames.
      mask: [B, T] bool, True at valid frames.
    Returns:
      [B, D] float32; a sequence with no valid frame gives zeros.
    """
    check_h_mask(h, mask, "mean_pool")
    m = mask.astype(jnp.float32)[..., None]
    total = jnp.sum(h.astype(jnp.float32) * m, axis=1)
    count = jnp.sum(m, axis=1)
    return total / jnp.maximum(count, 1.0)


class VectorialAttentionPooling(nnx.Module):
    """Platalea's attention pooling: a separate softmax over time for every feature dimension.

    logits = W2 tanh(W1 h_t + b1) + b2  (per frame, per dimension), alpha = softmax_t(logits),
    output = sum_t alpha_t * h_t. W1 is orthogonally initialised as in platalea; the biases and W2
    use PyTorch's default init.

    With `mask_padding=True` (our default) padded frames get zero attention, so an utterance's
    embedding does not depend on how much padding its batch has. `mask_padding=False` reproduces the
    reference: the softmax runs over all T positions and padded positions hold zero vectors (we zero
    `h` at padded positions before pooling, as PyTorch's `pad_packed_sequence` does), so they absorb
    attention mass without contributing; the result then depends on the batch's padded length.
    """

    def __init__(self, in_features: int, hidden: int = 128, *, mask_padding: bool = True,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        if in_features <= 0 or hidden <= 0:
            raise ValueError(
                f"VectorialAttentionPooling: in_features ({in_features}) and hidden ({hidden}) must be positive.")
        self.in_features = in_features
        self.hidden = hidden
        self.mask_padding = mask_padding
        self.hidden_layer = nnx.Linear(
            in_features, hidden, kernel_init=nnx.initializers.orthogonal(),
            bias_init=torch_uniform_init(in_features), dtype=dtype, rngs=rngs)
        self.out_layer = nnx.Linear(
            hidden, in_features, kernel_init=torch_uniform_init(hidden),
            bias_init=torch_uniform_init(hidden), dtype=dtype, rngs=rngs)

    def weights(self, h: jax.Array, mask: jax.Array) -> jax.Array:
        """Attention weights alpha, [B, T, D] float32, summing to 1 over time (0 for all-padding rows)."""
        check_h_mask(h, mask, "VectorialAttentionPooling")
        if h.shape[-1] != self.in_features:
            raise ValueError(
                f"VectorialAttentionPooling: h has {h.shape[-1]} features, the module was built for "
                f"{self.in_features}.")
        h = jnp.where(mask[..., None], h, 0)
        logits = self.out_layer(jnp.tanh(self.hidden_layer(h))).astype(jnp.float32)
        if not self.mask_padding:
            return jax.nn.softmax(logits, axis=1)
        neg = jnp.finfo(jnp.float32).min
        alpha = jax.nn.softmax(jnp.where(mask[..., None], logits, neg), axis=1)
        # A row with no valid frame would otherwise spread weight uniformly over padding.
        return alpha * mask[..., None]

    def __call__(self, h: jax.Array, mask: jax.Array) -> jax.Array:
        """Pool frames h [B, T, D] with mask [B, T] bool -> [B, D] float32."""
        alpha = self.weights(h, mask)
        h = jnp.where(mask[..., None], h, 0).astype(jnp.float32)
        return jnp.sum(alpha * h, axis=1)
