"""Gelderloos & Chrupała (2016): phoneme embeddings, stacked residual GRUs, last state -> image vector.

ids [B, T] (0 = padding) -> embedding [B, T, E] -> GRU layer 1 [B, T, H] -> GRU layers 2..depth, each
adding its input back (residual) -> the top layer's state at each caption's last phoneme [B, H] ->
Linear -> predicted image vector [B, D]. GRU layers are `recurrent_layers.GRULayer` (PyTorch layout
and init). Parameters: V*E + (3H*E + 3H*H + 6H) + (depth-1)*(6H*H + 6H) + H*D + D.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models.recurrent_layers import GRULayer


class PhonemeGRU(nnx.Module):
    """Phoneme string -> image vector regressor with per-layer states for the analyses."""

    def __init__(self, vocab_size: int, out_dim: int, *, embed_dim: int = 256, hidden: int = 1024,
                 depth: int = 3, rngs: nnx.Rngs):
        if vocab_size < 2 or out_dim < 1 or embed_dim < 1 or hidden < 1 or depth < 1:
            raise ValueError(f"PhonemeGRU needs vocab_size >= 2 (padding + 1 phoneme) and positive sizes; got "
                             f"vocab_size={vocab_size}, out_dim={out_dim}, embed_dim={embed_dim}, hidden={hidden}, "
                             f"depth={depth}.")
        self.embed = nnx.Embed(vocab_size, embed_dim, rngs=rngs)
        self.grus = nnx.List([GRULayer(embed_dim if i == 0 else hidden, hidden, rngs=rngs) for i in range(depth)])
        self.to_image = nnx.Linear(hidden, out_dim, rngs=rngs)

    def layer_states(self, ids: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        """{"embedding": [B, T, E], "gru_0".."gru_{depth-1}": [B, T, H]} (zero at padding)."""
        x = self.embed(ids) * mask[..., None]
        out = {"embedding": x}
        for i, gru in enumerate(self.grus):
            h = gru(x, mask)
            x = h if i == 0 else h + x
            out[f"gru_{i}"] = x
        return out

    def __call__(self, ids: jax.Array, mask: jax.Array) -> jax.Array:
        """ids int [B, T], prefix mask bool [B, T] -> predicted image vectors [B, D]."""
        top = self.layer_states(ids, mask)[f"gru_{len(self.grus) - 1}"]
        return self.to_image(last_state(top, mask))


def last_state(states: jax.Array, mask: jax.Array) -> jax.Array:
    """[B, T, H] states and prefix mask [B, T] -> each sequence's state at its last valid step [B, H]."""
    last = jnp.maximum(jnp.sum(mask, axis=1) - 1, 0)
    return jnp.take_along_axis(states, last[:, None, None], axis=1)[:, 0]
