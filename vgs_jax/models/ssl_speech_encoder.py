"""Self-supervised speech front ends as speech towers: wav2vec 2.0 / HuBERT (`wav2vec2.Wav2Vec2Model`) with
the heads of FaST-VGS, VG-HuBERT and SpeechCLIP; registered as "wav2vec2" and "hubert" (same module).

Input: the `raw` feature recipe (waveform [B, N, 1], prefix mask). Fields (`config.model.speech`):
- size: "base" / "large" (the published shapes, `wav2vec2.PRESETS`) or "custom"; any of `conv_dim,
  conv_kernel, conv_stride` (channels, kernels, strides of the conv stack: three tuples of one length,
  Hugging Face's names), `conv_bias, feat_norm, hidden, num_layers, num_heads, ff_dim, layer_norm_first`
  overrides the preset (e.g. num_layers=8 keeps the first 8 layers of a 12-layer checkpoint, as FaST-VGS's
  `--layer_use 7`).
- weights: a local checkpoint (Hugging Face folder / .safetensors / .bin, or fairseq .pt; `ssl_weights`);
  "" = random init (training from scratch).
- freeze: "none" (fine-tuned), "feature_extractor" (the conv stack frozen: FaST-VGS's feature_grad_mult 0),
  "all" (the whole SSL model frozen: SpeechCLIP). Frozen parts get stop_gradient and an optimizer mask
  (`trainable_mask`), so neither gradients nor weight decay move them.
- layers: "last" (last_hidden_state) or "weighted": a learned softmax-weighted sum of the L + 1 hidden
  states (SpeechCLIP's weighted sum; the last one after the pre-LN model's final LayerNorm, i.e.
  transformers 4's list), weights initialised equal, no per-layer normalisation.
- pooling: "mean" (masked mean), "vectorial" (platalea's attention, `attention_hidden`), "cls_parallel"
  (SpeechCLIP parallel / FaST-VGS / VG-HuBERT: a learned CLS vector prepended to the frames, `head_layers`
  post-LN Transformer layers of the SSL model's width, heads and feed-forward, the CLS output), or
  "cls_cascaded" (SpeechCLIP cascaded, simplified: `num_keywords` learned keyword tokens prepended and run
  through the same head; their outputs then go through `head_layers` more layers with a second CLS
  token, standing in for CLIP's text encoder; SpeechCLIP's BatchNorm and vector quantisation onto CLIP's
  sub-word embeddings are left out, as the toolkit has no CLIP).
- out_features: > 0 adds a Linear projection to that width (FaST-VGS / SpeechCLIP project into the
  image space); 0 returns the SSL width.
- normalize_waveform: zero mean / unit variance per utterance over its valid samples (eps 1e-7, as the
  HF feature extractor's do_normalize and FaST-VGS; VG-HuBERT does not normalise).
- dropout, pos_kernel, pos_groups, remat: see `wav2vec2.Wav2Vec2Model`.
- ssl_clusters: > 0 adds HuBERT's masked-prediction head for the self-supervised term of
  `objectives.masked_prediction` (`config.loss.ssl_weight`): a learned mask embedding [hidden] (uniform
  [0, 1) init, as HF / fairseq), a Linear `final_proj` hidden -> `ssl_head_dim` (HuBERT: 256) and one
  embedding [ssl_head_dim] per k-means cluster (uniform [0, 1) init, as fairseq's label_embs_concat). 0: no
  head.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from vgs_jax.models import capabilities as caps
from vgs_jax.models import ssl_weights
from vgs_jax.models import wav2vec2
from vgs_jax.models.pooling import VectorialAttentionPooling, mean_pool, torch_uniform_init
from vgs_jax.models.recurrent_layers import check_x_mask

POOLINGS = ("mean", "vectorial", "cls_parallel", "cls_cascaded")
FREEZE = ("none", "feature_extractor", "all")
LAYERS = ("last", "weighted")
_SHAPE_FIELDS = ("conv_layers", "conv_bias", "feat_norm", "hidden", "num_layers", "num_heads", "ff_dim",
                 "layer_norm_first")


def _choice(value, choices, field):
    if value not in choices:
        raise ValueError(f"SSLSpeechEncoder: config.model.speech.{field}={value!r}; choose one of {choices}.")


def normalize_waveform(wave: jax.Array, mask: jax.Array) -> jax.Array:
    """wave [B, N], mask [B, N] -> (wave - mean) / sqrt(var + 1e-7) over each row's valid samples, 0 at padding."""
    m = mask.astype(jnp.float32)
    count = jnp.maximum(jnp.sum(m, axis=1, keepdims=True), 1.0)
    mean = jnp.sum(wave * m, axis=1, keepdims=True) / count
    var = jnp.sum(jnp.square(wave - mean) * m, axis=1, keepdims=True) / count
    return jnp.where(mask, (wave - mean) * jax.lax.rsqrt(var + 1e-7), 0.0)


class TokenHead(nnx.Module):
    """`num_tokens` learned tokens (N(0, 0.02)) prepended to frames [B, T, d], `num_layers` post-LN layers;
    returns the tokens' outputs [B, num_tokens, d]."""

    def __init__(self, hidden: int, num_heads: int, ff_dim: int, *, num_tokens: int, num_layers: int,
                 dropout: float, dtype, rngs: nnx.Rngs):
        if num_tokens < 1 or num_layers < 1:
            raise ValueError(f"TokenHead: num_tokens ({num_tokens}) and head_layers ({num_layers}) must be >= 1.")
        self.tokens = nnx.Param(0.02 * jax.random.normal(rngs.params(), (num_tokens, hidden)))
        self.layers = nnx.List([wav2vec2.EncoderLayer(hidden, num_heads, ff_dim, layer_norm_first=False,
                                                      dropout=dropout, dtype=dtype, rngs=rngs)
                                for _ in range(num_layers)])

    def __call__(self, h: jax.Array, mask: jax.Array) -> jax.Array:
        b, k = h.shape[0], self.tokens.shape[0]
        x = jnp.concatenate([jnp.broadcast_to(self.tokens[...], (b, k, h.shape[-1])), h.astype(jnp.float32)], 1)
        m = jnp.concatenate([jnp.ones((b, k), bool), mask], axis=1)
        for layer in self.layers:
            x = layer(x, m)
        return x[:, :k]


class SSLSpeechEncoder(nnx.Module):
    """wav2vec 2.0 / HuBERT -> (weighted) layer features -> pooling -> optional projection: [B, out_features]."""

    def __init__(self, in_features: int, *, size: str = "base", conv_dim=None, conv_kernel=None, conv_stride=None,
                 conv_bias=None, feat_norm=None,
                 hidden=None, num_layers=None, num_heads=None, ff_dim=None, layer_norm_first=None,
                 pos_kernel: int = 128, pos_groups: int = 16, dropout: float = 0.0, weights: str = "",
                 freeze: str = "none", layers: str = "last", pooling: str = "mean", head_layers: int = 1,
                 num_keywords: int = 8, attention_hidden: int = 128, out_features: int = 0,
                 normalize_waveform: bool = False, ssl_clusters: int = 0, ssl_head_dim: int = 256,
                 remat: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        if weights:
            ssl_weights.check_exists(weights)  # before building: a missing file stops at once
        if in_features != 1:
            raise ValueError(f"SSLSpeechEncoder reads raw waveforms: got {in_features} features per frame; set "
                             "config.features.recipe='raw' (and max_frames / bucket_boundaries in samples).")
        _choice(size, ("base", "large", "custom"), "size")
        _choice(freeze, FREEZE, "freeze")
        _choice(layers, LAYERS, "layers")
        _choice(pooling, POOLINGS, "pooling")
        conv = (conv_dim, conv_kernel, conv_stride)
        if any(c is not None for c in conv) and (any(c is None for c in conv) or len({len(c) for c in conv}) != 1):
            raise ValueError(f"SSLSpeechEncoder: conv_dim {conv_dim}, conv_kernel {conv_kernel} and conv_stride "
                             f"{conv_stride} must be given together, as tuples of one length.")
        conv_layers = tuple(zip(*conv)) if conv_dim is not None else None
        overrides = dict(conv_layers=conv_layers, conv_bias=conv_bias, feat_norm=feat_norm, hidden=hidden,
                         num_layers=num_layers, num_heads=num_heads, ff_dim=ff_dim, layer_norm_first=layer_norm_first)
        fields = dict(wav2vec2.PRESETS.get(size, {}))
        fields.update({k: v for k, v in overrides.items() if v is not None})
        if set(_SHAPE_FIELDS) - set(fields):
            missing = sorted(set(_SHAPE_FIELDS) - set(fields))
            raise ValueError(f"SSLSpeechEncoder: size='custom' needs every shape field; missing {missing}"
                             f"{' (conv_dim, conv_kernel, conv_stride)' if 'conv_layers' in missing else ''}.")
        self.freeze, self.layers, self.pooling, self.normalize = freeze, layers, pooling, bool(normalize_waveform)
        def build(rngs):
            return wav2vec2.Wav2Vec2Model(**fields, pos_kernel=pos_kernel, pos_groups=pos_groups, dropout=dropout,
                                          remat=remat, dtype=dtype, rngs=rngs)

        if weights and dropout == 0:  # all parameters come from the checkpoint: skip the random init
            self.ssl = nnx.eval_shape(lambda: build(nnx.Rngs(0)))
        else:
            self.ssl = build(rngs)
        if weights:
            ssl_weights.load_into(self.ssl, weights)
        d, n = fields["hidden"], fields["num_layers"]
        self.layer_weights = nnx.Param(jnp.zeros((n + 1,), jnp.float32)) if layers == "weighted" else None
        head = dict(num_layers=head_layers, dropout=dropout, dtype=dtype, rngs=rngs)
        self.pool = (VectorialAttentionPooling(d, attention_hidden, dtype=dtype, rngs=rngs)
                     if pooling == "vectorial" else None)
        self.head = (TokenHead(d, fields["num_heads"], fields["ff_dim"],
                               num_tokens=num_keywords if pooling == "cls_cascaded" else 1, **head)
                     if pooling.startswith("cls") else None)
        self.text_head = (TokenHead(d, fields["num_heads"], fields["ff_dim"], num_tokens=1, **head)
                          if pooling == "cls_cascaded" else None)
        self.proj = (nnx.Linear(d, out_features, kernel_init=torch_uniform_init(d), bias_init=torch_uniform_init(d),
                                dtype=dtype, rngs=rngs) if out_features > 0 else None)
        self.out_features = out_features if out_features > 0 else d
        self.num_ssl_layers = n
        if ssl_clusters < 0 or (ssl_clusters and ssl_head_dim < 1):
            raise ValueError(f"SSLSpeechEncoder: ssl_clusters ({ssl_clusters}) must be >= 0 and ssl_head_dim "
                             f"({ssl_head_dim}) >= 1.")
        if ssl_clusters and freeze == "all":
            raise ValueError("SSLSpeechEncoder: ssl_clusters > 0 (a masked-prediction head) with freeze='all' trains "
                             "nothing it predicts from; set freeze='none' or 'feature_extractor', or ssl_clusters=0.")
        self.ssl_clusters = ssl_clusters
        if ssl_clusters:
            self.mask_embedding = nnx.Param(jax.random.uniform(rngs.params(), (d,)))
            self.final_proj = nnx.Linear(d, ssl_head_dim, kernel_init=torch_uniform_init(d),
                                         bias_init=torch_uniform_init(d), dtype=dtype, rngs=rngs)
            self.label_embeddings = nnx.Param(jax.random.uniform(rngs.params(), (ssl_clusters, ssl_head_dim)))

    from_config = classmethod(caps.speech_from_config)

    @property
    def capabilities(self) -> caps.Capabilities:
        """Pooled; frame outputs "conv", "input", "layer_0".., "features" (what pooling reads) on the
        waveform's sample clock (stride 320, kernel 400 for the published conv stack)."""
        stride, kernel = wav2vec2.receptive_field(self.ssl.conv_layers)
        names = ("conv", "input", *(f"layer_{i}" for i in range(self.num_ssl_layers)), "features")
        return caps.Capabilities(output=caps.POOLED, frame_outputs=names, frame_clock=caps.FrameClock(stride, kernel),
                                 attention="vectorial" if self.pooling == "vectorial" else None)

    def _conv(self, features: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """features [B, N, 1], mask [B, N] -> (conv frames [B, T, C], frame mask [B, T]); stop_gradient if frozen."""
        check_x_mask(features, mask, "SSLSpeechEncoder", 1)
        wave = features[..., 0].astype(jnp.float32)
        if self.normalize:
            wave = normalize_waveform(wave, mask)
        conv, m = self.ssl.features(wave, mask)
        if conv.shape[1] == 0:
            _, kernel = wav2vec2.receptive_field(self.ssl.conv_layers)
            raise ValueError(f"SSLSpeechEncoder: the batch has {features.shape[1]} samples, fewer than the conv "
                             f"stack's receptive field ({kernel}); pad the batch to at least {kernel} samples.")
        return (conv if self.freeze == "none" else jax.lax.stop_gradient(conv)), m

    def frame_mask(self, mask: jax.Array) -> jax.Array:
        """Waveform prefix mask [B, N] -> the conv frames' prefix mask [B, T]."""
        t = mask.shape[1]
        for _, k, s in self.ssl.conv_layers:  # static: conv_output_length in Python ints
            t = max((t - k) // s + 1, 0)
        lengths = wav2vec2.conv_output_length(jnp.sum(mask, axis=1), self.ssl.conv_layers)
        return jnp.arange(t)[None, :] < lengths[:, None]

    def masked_prediction(self, features: jax.Array, mask: jax.Array, time_mask: jax.Array) -> dict[str, jax.Array]:
        """HuBERT's masked pass: features [B, N, 1], mask [B, N], time_mask [B, T] bool (frames to mask, e.g.
        `objectives.masked_prediction.span_mask` of `frame_mask(mask)`) -> "projected" [B, T, ssl_head_dim] (the
        last layer through final_proj), "label_embeddings" [ssl_clusters, ssl_head_dim], "mask" [B, T]."""
        if not self.ssl_clusters:
            raise ValueError("SSLSpeechEncoder.masked_prediction needs the head: set config.model.speech.ssl_clusters "
                             "> 0 (the number of k-means clusters of the targets).")
        conv, m = self._conv(features, mask)
        if time_mask.shape != m.shape:
            raise ValueError(f"SSLSpeechEncoder.masked_prediction: time_mask {time_mask.shape} must match the conv "
                             f"frames {m.shape} (use frame_mask(mask)).")
        _, last = self.ssl.hidden_states(conv, m, time_mask=time_mask & m, mask_embedding=self.mask_embedding[...])
        return {"projected": self.final_proj(last).astype(jnp.float32),
                "label_embeddings": self.label_embeddings[...], "mask": m}

    def frame_outputs(self, features: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        """features [B, N, 1] float32 waveform, mask [B, N] bool -> "conv" [B, T, C], "input" and "layer_i"
        [B, T, hidden] (HF's hidden_states), "features" [B, T, hidden], "pooled" [B, out_features], "mask" [B, T]."""
        conv, m = self._conv(features, mask)
        hook = (lambda i, h: jax.lax.stop_gradient(h)) if self.freeze == "all" else None
        states, last = self.ssl.hidden_states(conv, m, stop_after=hook)
        if self.layers == "weighted":
            w = jax.nn.softmax(self.layer_weights[...])
            h = jnp.einsum("l,lbtd->btd", w, jnp.stack(states[:-1] + [last]))
        else:
            h = last
        out = {"conv": conv, **{("input" if i == 0 else f"layer_{i - 1}"): s for i, s in enumerate(states)},
               "features": h, "mask": m}
        if self.pooling == "mean":
            pooled = mean_pool(h, m)
        elif self.pooling == "vectorial":
            pooled = self.pool(h, m)
        elif self.pooling == "cls_parallel":
            pooled = self.head(h, m)[:, 0]
        else:
            keywords = self.head(h, m)
            pooled = self.text_head(keywords, jnp.ones(keywords.shape[:2], bool))[:, 0]
        out["pooled"] = pooled if self.proj is None else self.proj(pooled).astype(jnp.float32)
        return out

    def __call__(self, features: jax.Array, mask: jax.Array) -> jax.Array:
        """features [B, N, 1] raw waveform, prefix mask [B, N] bool -> [B, out_features] float32."""
        return self.frame_outputs(features, mask)["pooled"]

    @staticmethod
    def trainable_mask(params, freeze: str):
        """Pytree of bools shaped like this encoder's params: False under "ssl/feature_extractor" (freeze=
        "feature_extractor") or "ssl" ("all"), True elsewhere. An optax mask."""
        _choice(freeze, FREEZE, "freeze")
        frozen = {"none": None, "feature_extractor": ("ssl", "feature_extractor"), "all": ("ssl",)}[freeze]

        def leaf(path, _):
            keys = tuple(getattr(k, "key", getattr(k, "name", None)) for k in path)
            return frozen is None or keys[:len(frozen)] != frozen

        return jax.tree_util.tree_map_with_path(leaf, params)
