"""The survey's early word-region embedders (survey-systems.md B.1, B.2) over `segment_view` inputs.

* `HG2015Embedder` (Harwath & Glass 2015): word segments by an affine map + ReLU, regions (the
  whole image and its object boxes) by an affine map, both to `embed_dim`; a caption-image score
  is survey eq. (3), `score_matrix`, which is exactly `matchmap`'s FRAGMENT reduction with the
  regions as the image's cells and the words as the caption's frames.
* `Synnaeve2014Embedder` (Synnaeve et al. 2014): two MLP branches (Linear -> ReLU -> Linear), one
  for word segments and one for image fragments, compared by cosine (the coscos² loss).

Inputs are already features (flattened filterbank segments, flattened pixel crops): the papers'
pre-trained CNN/RCNN features are not available offline, so `hidden` > 0 puts one Linear + ReLU
layer in front of HG2015's affine maps as their stand-in (0: the affine maps alone).
"""
import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.objectives import matchmap
from vgs_jax.objectives.similarity import l2_normalize
from vgs_jax.models.pooling import torch_uniform_init


def _linear(n_in: int, n_out: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(n_in, n_out, kernel_init=torch_uniform_init(n_in), bias_init=torch_uniform_init(n_in),
                      rngs=rngs)


def _check_dims(**dims):
    bad = {k: v for k, v in dims.items() if int(v) < 1}
    if bad:
        raise ValueError(f"fragment embedders: sizes must be positive ints; got {bad}.")


class _Branch(nnx.Module):
    """[..., n_in] -> [..., n_out]: optional Linear(n_in, hidden) + ReLU, then Linear, then optional ReLU."""

    def __init__(self, n_in: int, n_out: int, *, hidden: int, out_relu: bool, rngs: nnx.Rngs):
        self.hidden = _linear(n_in, hidden, rngs) if hidden else None
        self.out = _linear(hidden or n_in, n_out, rngs)
        self.out_relu = out_relu

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.hidden is not None:
            x = jax.nn.relu(self.hidden(x))
        y = self.out(x)
        return jax.nn.relu(y) if self.out_relu else y


class HG2015Embedder(nnx.Module):
    """Words: (hidden ReLU layer) + affine + ReLU; regions: (hidden ReLU layer) + affine."""

    def __init__(self, word_dim: int, region_dim: int, *, embed_dim: int = 64, hidden: int = 0, rngs: nnx.Rngs):
        _check_dims(word_dim=word_dim, region_dim=region_dim, embed_dim=embed_dim, hidden=hidden or 1)
        self.word = _Branch(word_dim, embed_dim, hidden=hidden, out_relu=True, rngs=rngs)
        self.region = _Branch(region_dim, embed_dim, hidden=hidden, out_relu=False, rngs=rngs)

    def score_matrix(self, words: jax.Array, word_mask: jax.Array, regions: jax.Array,
                     region_mask: jax.Array, chunk_size: int | None = None) -> jax.Array:
        """Survey eq. (3) for every caption x image pair: words [Ba, W, Dw] (mask [Ba, W]), regions
        [Bi, R, Dr] (mask [Bi, R]) -> float32 [Ba, Bi], S[u, i] = sum over valid regions t of i of
        max(0, max over valid words w of u of <e_w, e_t>). `chunk_size`: pairs per block, as in
        `matchmap.matchmap_scores` (None: all at once)."""
        e_words = self.word(words)
        e_regions = self.region(regions)
        return matchmap.matchmap_scores(e_regions[:, :, None, :], region_mask[:, :, None], e_words, word_mask,
                                        simtype="FRAGMENT", chunk_size=chunk_size,
                                        precision=jax.lax.Precision.HIGHEST)


class Synnaeve2014Embedder(nnx.Module):
    """Two ReLU MLPs: word segments [..., Dw] and fragments [..., Df] -> [..., embed_dim] each."""

    def __init__(self, word_dim: int, fragment_dim: int, *, hidden: int = 128, embed_dim: int = 64,
                 rngs: nnx.Rngs):
        _check_dims(word_dim=word_dim, fragment_dim=fragment_dim, hidden=hidden, embed_dim=embed_dim)
        self.word = _Branch(word_dim, embed_dim, hidden=hidden, out_relu=False, rngs=rngs)
        self.fragment = _Branch(fragment_dim, embed_dim, hidden=hidden, out_relu=False, rngs=rngs)

    def cosines(self, words: jax.Array, fragments: jax.Array) -> jax.Array:
        """cos(word_i, fragment_j) for all pairs: [A, Dw], [B, Df] -> float32 [A, B]."""
        return jnp.matmul(l2_normalize(self.word(words)), l2_normalize(self.fragment(fragments)).T,
                          precision=jax.lax.Precision.HIGHEST)
