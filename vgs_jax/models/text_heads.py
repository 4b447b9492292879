"""Auxiliary text tasks on a dual encoder: a CTC speech -> text head, a text encoder into the shared
space, and retrieval from recognised text (the pipeline models of Higy et al. 2020).

`config.model.text` (present only in configs with text tasks; `build_dual_encoder` then returns a
`TextTasksDualEncoder`):

    vocab_size: int         text units V (`vgs_jax.text_units`); the CTC head has V + 1 classes (0 = blank)
    layer: str              the speech encoder's frame output the CTC head reads, e.g. "gru_1" (platalea_gru)
                            (one of its `capabilities.frame_outputs`)
    embedding_dim: int      text encoder: unit embedding width
    num_layers: int         text encoder: BiGRU layers (hidden = embedding space / 2)
    attention_hidden: int   text encoder: vectorial attention pooling's hidden width
    retrieval_from: str     "speech": the speech tower's pooled output is the speech embedding (multi-task);
                            "recognised_text": the text encoder's embedding of the CTC head's greedy
                            transcription is (pipeline: speech -> text -> image)
"""

import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models.dual_encoder import DualEncoder
from vgs_jax.models.pooling import VectorialAttentionPooling
from vgs_jax.models.recurrent_layers import BiGRU
from vgs_jax.objectives import ctc
from vgs_jax.objectives.similarity import l2_normalize

RETRIEVAL_FROM = ("speech", "recognised_text")


class TextEncoder(nnx.Module):
    """platalea's text encoder shape: unit embedding -> stacked BiGRU -> vectorial attention pooling.

    ids [B, L] int32 (0 = padding), lengths [B] -> [B, out_features] float32 (not normalised).
    An empty text (length 0, e.g. nothing recognised) reads one padding unit.
    """

    def __init__(self, vocab_size: int, out_features: int, *, embedding_dim: int, num_layers: int,
                 attention_hidden: int, dtype=jnp.float32, rngs: nnx.Rngs):
        if out_features % 2 or num_layers < 1:
            raise ValueError(f"TextEncoder: out_features ({out_features}) must be even (a BiGRU of "
                             f"out_features/2) and num_layers ({num_layers}) >= 1.")
        self.out_features = out_features
        self.embed = nnx.Embed(vocab_size + 1, embedding_dim, rngs=rngs)
        self.rnns = nnx.List([BiGRU(embedding_dim if i == 0 else out_features, out_features // 2, dtype=dtype,
                                    rngs=rngs) for i in range(num_layers)])
        self.pool = VectorialAttentionPooling(out_features, attention_hidden, dtype=dtype, rngs=rngs)

    def __call__(self, ids: jax.Array, lengths: jax.Array) -> jax.Array:
        lengths = jnp.maximum(lengths, 1)
        mask = jnp.arange(ids.shape[1])[None, :] < lengths[:, None]
        h = self.embed(jnp.where(mask, ids, 0))
        for rnn in self.rnns:
            h = rnn(h, mask)
        return self.pool(h, mask)


def frame_width(encoder: nnx.Module, layer: str, num_features: int) -> int:
    """Channel width of `encoder.frame_outputs(...)[layer]`, from shapes only (no computation)."""
    graphdef, state = nnx.split(encoder)
    x = jax.ShapeDtypeStruct((1, 64, num_features), jnp.float32)
    m = jax.ShapeDtypeStruct((1, 64), jnp.bool_)
    out = jax.eval_shape(lambda s, x, m: nnx.merge(graphdef, s).frame_outputs(x, m)[layer], state, x, m)
    return out.shape[-1]


class TextTasksDualEncoder(DualEncoder):
    """A `DualEncoder` with a CTC head on one speech layer and a text encoder into the shared space.

    `encode_speech` adds "ctc_logits" [B, T', V + 1] and "ctc_mask" [B, T'] (the layer's frame mask);
    with retrieval_from="recognised_text" its "embedding" is the text encoder's embedding of the
    greedy CTC transcription (no gradient reaches the recogniser through it).
    """

    def __init__(self, speech_encoder: nnx.Module, image_encoder: nnx.Module, *, num_features: int,
                 vocab_size: int, layer: str, embedding_dim: int, num_layers: int, attention_hidden: int,
                 retrieval_from: str = "speech", dtype=jnp.float32, rngs: nnx.Rngs, **dual_kwargs):
        super().__init__(speech_encoder, image_encoder, **dual_kwargs)
        caps = speech_encoder.capabilities
        if caps.has_map:
            raise ValueError("config.model.text: the CTC head needs a pooling speech tower (e.g. platalea_gru); "
                             f"{type(speech_encoder).__name__} returns a frame map.")
        if layer not in caps.frame_outputs:
            raise ValueError(f"config.model.text.layer={layer!r} is not a frame output of "
                             f"{type(speech_encoder).__name__}; choose one of {list(caps.frame_outputs)}.")
        if retrieval_from not in RETRIEVAL_FROM:
            raise ValueError(f"config.model.text.retrieval_from={retrieval_from!r}; choose one of {RETRIEVAL_FROM}.")
        self.asr_layer = layer
        self.retrieval_from = retrieval_from
        self.ctc_head = nnx.Linear(frame_width(speech_encoder, layer, num_features), vocab_size + 1, dtype=dtype,
                                   rngs=rngs)
        self.text_encoder = TextEncoder(vocab_size, self.embed_dim, embedding_dim=embedding_dim,
                                        num_layers=num_layers, attention_hidden=attention_hidden, dtype=dtype,
                                        rngs=rngs)

    def encode_speech(self, features: jax.Array, mask: jax.Array, *, key: jax.Array | None = None) -> dict:
        """features [B, T, F], mask [B, T] -> "embedding" [B, E] unit norm, "logits" [B, E] (before
        normalisation), "ctc_logits" [B, T', V + 1] float32, "ctc_mask" [B, T'] bool."""
        del key
        frames = self.speech_encoder.frame_outputs(features, mask)
        ctc_logits = self.ctc_head(frames[self.asr_layer]).astype(jnp.float32)
        if self.retrieval_from == "speech":
            logits = frames["pooled"]
        else:
            ids, lengths = ctc.greedy_decode(ctc_logits, frames["mask"])
            logits = self.text_encoder(ids, lengths)
        return {"embedding": l2_normalize(logits), "logits": logits, "ctc_logits": ctc_logits,
                "ctc_mask": frames["mask"]}

    def encode_text(self, ids: jax.Array, lengths: jax.Array) -> dict:
        """ids [B, L] int32 (units 1..V, 0 padding), lengths [B] -> {"embedding" [B, E] unit norm, "logits"}."""
        logits = self.text_encoder(ids, lengths)
        return {"embedding": l2_normalize(logits), "logits": logits}


def from_config(speech_encoder: nnx.Module, image_encoder: nnx.Module, text_config, *, num_features: int, dtype,
                rngs: nnx.Rngs, **dual_kwargs) -> TextTasksDualEncoder:
    """The towers in a `TextTasksDualEncoder` whose text parts are `config.model.text`'s fields; `dual_kwargs`
    are `DualEncoder`'s (similarity, temperature_init, logit_bias_init)."""
    fields = dict(text_config)
    allowed = {"vocab_size", "layer", "embedding_dim", "num_layers", "attention_hidden", "retrieval_from"}
    unknown, missing = sorted(set(fields) - allowed), sorted(allowed - set(fields) - {"retrieval_from"})
    if unknown or missing:
        raise ValueError(f"config.model.text: unknown fields {unknown}, missing fields {missing}; valid fields: "
                         f"{sorted(allowed)}.")
    return TextTasksDualEncoder(speech_encoder, image_encoder, num_features=num_features, dtype=dtype, rngs=rngs,
                                **fields, **dual_kwargs)
