"""AVLNet's masked margin softmax (MMS) loss (Ilharco et al. 2019; Rouditchenko et al. 2020).

For a similarity matrix S [B, B] (rows audio, columns video, diagonal = positive pairs), margin d and
temperature t: logits L = (S - d I) / t; the loss is the mean over valid rows i of
-log softmax(L[i, :])[i] plus the mean over valid columns j of -log softmax(L[:, j])[j], the padding
rows and columns (mask False) left out of every softmax. AVLNet: cosine S, d = 0.001, t = 1.
"""
import jax
import jax.numpy as jnp

from vgs_jax.objectives.losses import check_temperature
from vgs_jax.objectives.pairs import check_scalar
from vgs_jax.objectives.pairs import count
from vgs_jax.objectives.pairs import valid_mask


def masked_margin_softmax_loss(sim, *, margin: float = 0.001, temperature: float = 1.0, mask=None) -> jax.Array:
    """sim float [B, B], optional mask bool [B] -> float32 scalar (module docstring)."""
    if jnp.ndim(sim) != 2 or jnp.shape(sim)[0] != jnp.shape(sim)[1]:
        raise ValueError(f"sim must be a square [batch, batch] matrix (audio x video); got shape {jnp.shape(sim)}.")
    check_scalar("margin", margin)
    check_temperature(temperature)
    batch = jnp.shape(sim)[0]
    valid = valid_mask(batch, mask)
    eye = jnp.eye(batch, dtype=bool)
    logits = (jnp.asarray(sim, jnp.float32) - margin * eye) / temperature
    allowed = (valid[:, None] & valid[None, :]) | eye  # a padding row keeps only itself: finite, then dropped
    masked = jnp.where(allowed, logits, -jnp.inf)
    pos = jnp.diagonal(logits)
    rows = jax.nn.logsumexp(masked, axis=1) - pos
    cols = jax.nn.logsumexp(masked, axis=0) - pos
    n = count(valid)
    return jnp.sum(jnp.where(valid, rows, 0.0)) / n + jnp.sum(jnp.where(valid, cols, 0.0)) / n
