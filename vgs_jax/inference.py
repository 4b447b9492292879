"""One inference path: batching utterances and running the trained model, for evaluation and analyses.

Batches. `pad_features` is the one padding rule for utterances outside the input pipeline: frames
beyond an utterance's length and padding rows hold the featurizer's pad value
(`audio_features.Featurizer.pad_value`) with a False mask. `feature_batches` featurises examples
into such batches.

Model calls. Every function takes a `dual_encoder.Template` and parameters (and optionally a
model state; default the template's) and runs one jitted function whose static arguments are the
template's graph definition and what to compute. Nothing is cached on the template object: two
templates of the same model share the compiled code, and no parameters are kept alive.
The model runs in eval mode (BatchNorm running averages, no jitter or dropout).
"""

import functools
import math
from typing import Callable, Iterator, Sequence

from flax import nnx
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from vgs_jax import audio_features
from vgs_jax import input_pipeline
from vgs_jax.models import dual_encoder

EMBEDDING = ("embedding",)
MAPS = ("embedding", "map", "map_mask")


# ---- Batching --------------------------------------------------------------------------------


def pad_features(features: Sequence[np.ndarray], featurizer: audio_features.Featurizer, *,
                 rows: int | None = None, multiple: int = 1, power_of_two: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Utterances [T_i, F] -> (audio float32 [rows, T, F], mask bool [rows, T]).

    T is the longest T_i rounded up to a multiple of `multiple` (with `power_of_two`: `multiple`
    times a power of two, so few shapes compile); `rows` (default len(features)) >= len(features).
    Frames past each length and the rows past len(features) hold `featurizer.pad_value`.
    """
    rows = len(features) if rows is None else rows
    if rows < len(features) or multiple < 1:
        raise ValueError(f"pad_features: need rows ({rows}) >= {len(features)} utterances and multiple "
                         f"({multiple}) >= 1.")
    longest = max((len(f) for f in features), default=0)
    if power_of_two:
        t = multiple * 2 ** max(0, math.ceil(math.log2(max(longest, 1) / multiple)))
    else:
        t = -(-longest // multiple) * multiple
    audio = np.full((rows, t, featurizer.num_features), featurizer.pad_value, np.float32)
    mask = np.zeros((rows, t), bool)
    for r, f in enumerate(features):
        audio[r, :len(f)], mask[r, :len(f)] = f, True
    return audio, mask


def unpad(audio: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """The utterances of a padded batch (prefix `mask` [B, T]): a list of [T_i, F] arrays."""
    return [a[:n] for a, n in zip(np.asarray(audio, np.float32), np.asarray(mask, bool).sum(axis=1))]


def feature_batches(examples: Sequence[dict], featurizer: audio_features.Featurizer, batch_size: int = 16,
                    *, audio_key: str = "audio") -> Iterator[dict]:
    """Yields {"features" float32 [B, T, F], "mask" bool [B, T], "examples"} for consecutive groups of
    up to `batch_size` examples, featurised from ``ex[audio_key]`` and padded to the group's longest."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for lo in range(0, len(examples), batch_size):
        chunk = [examples[i] for i in range(lo, min(lo + batch_size, len(examples)))]
        feats = [np.asarray(featurizer(np.asarray(ex[audio_key])), np.float32) for ex in chunk]
        features, mask = pad_features(feats, featurizer)
        yield {"features": features, "mask": mask, "examples": chunk}


def _pad_rows(x: np.ndarray, rows: int) -> np.ndarray:
    """x [B, ...] with zero rows appended up to `rows` (images: every tower works per example)."""
    return np.concatenate([x, np.zeros((rows - len(x),) + x.shape[1:], x.dtype)]) if rows > len(x) else x


# ---- Jitted model calls ----------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("graphdef", "fn", "keys"))
def _run(params, model_state, rest, *args, graphdef: nnx.GraphDef, fn: Callable, keys: tuple[str, ...]):
    return fn(dual_encoder.merge_model(graphdef, params, model_state, rest), *args, keys=keys)


def _call(template: dual_encoder.Template, fn: Callable, params, model_state, *args, keys=()):
    state = template.model_state if model_state is None else model_state
    return _run(params, state, template.rest, *args, graphdef=template.graphdef, fn=fn, keys=tuple(keys))


def _speech_outputs(model, audio, mask, *, keys):
    out = model.encode_speech(audio, mask)
    return {k: out[k] for k in keys if k in out}


def _image_outputs(model, images, *, keys):
    out = model.encode_image(images)
    return {k: out[k] for k in keys if k in out}


def _pair_outputs(model, audio, mask, images, *, keys):
    return _speech_outputs(model, audio, mask, keys=keys), _image_outputs(model, images, keys=keys)


def _frame_outputs(model, audio, mask, *, keys):
    del keys
    encoder = model.speech_encoder
    caps = encoder.capabilities
    out = encoder.frame_outputs(audio, mask)
    if caps.attention is not None:  # the pooling reads the last frame output
        weights = encoder.pool.weights(out[caps.frame_outputs[-1]], out["mask"])
        # vectorial: [B, T', D], one softmax per dimension -> mean over D (sums to 1); scalar: [B, T']
        out["attention"] = weights.mean(axis=-1) if caps.attention == "vectorial" else weights
    return out


def _quantizer_codes(model, audio, mask, *, keys):
    _, _, aux = model.speech_encoder.encode(audio, mask)
    return {k: aux[k]["codes"] for k in keys}


def encode_speech(template, params, audio, mask, *, model_state=None, keys: Sequence[str] = EMBEDDING) -> dict:
    """audio [B, T, F] float32, mask [B, T] bool -> {k: `encode_speech`'s output k for k in `keys`
    the tower has} ("embedding" [B, E]; frame-map towers: "map" [B, T', E], "map_mask" [B, T'])."""
    return _call(template, _speech_outputs, params, model_state, audio, mask, keys=keys)


def encode_image(template, params, images, *, model_state=None, keys: Sequence[str] = EMBEDDING) -> dict:
    """images (pixels [B, H, W, 3] uint8 or features [B, D]) -> {k: `encode_image`'s output k}."""
    return _call(template, _image_outputs, params, model_state, images, keys=keys)


def encode_pair(template, params, audio, mask, images, *, model_state=None,
                keys: Sequence[str] = EMBEDDING) -> tuple[dict, dict]:
    """`encode_speech` and `encode_image` of one batch in one call (evaluation)."""
    return _call(template, _pair_outputs, params, model_state, audio, mask, images, keys=keys)


def frame_outputs(template, params, audio, mask, *, model_state=None) -> dict:
    """The speech encoder's `frame_outputs` (layers named by its `capabilities.frame_outputs`,
    "pooled", "mask" [B, T']) plus, for attention pooling, "attention" [B, T'] float32 (the frame
    weights, summing to 1; the mean over dimensions of vectorial weights)."""
    if not template.speech_capabilities.frame_outputs:
        raise ValueError("frame_outputs: the speech encoder declares no per-layer frame outputs.")
    return _call(template, _frame_outputs, params, model_state, audio, mask)


def quantizer_codes(template, params, audio, mask, *, model_state=None) -> dict:
    """{"quantK": codes [B, T_K] int32} of every quantiser the speech encoder declares."""
    names = tuple(name for name, _ in template.speech_capabilities.quantizers)
    return _call(template, _quantizer_codes, params, model_state, audio, mask, keys=names)


# ---- Utterances, images and splits -----------------------------------------------------------


def embed_waveforms(template, params, waveforms: Sequence[np.ndarray], featurizer: audio_features.Featurizer,
                    *, batch_size: int = 32, pad_multiple: int = 64, model_state=None) -> np.ndarray:
    """[N, E] float32 speech embeddings of int16 waveforms, batched by length (time padded to
    `pad_multiple` times a power of two: few compilations). A waveform shorter than one analysis
    window (400 samples), or too short for one encoder frame, embeds as zeros."""
    empty = np.zeros((0, featurizer.num_features), np.float32)
    feats = [featurizer(w) if len(w) >= audio_features.WINDOW else empty for w in waveforms]
    order = np.argsort([len(f) for f in feats], kind="stable")
    out = None
    for lo in range(0, len(feats), batch_size):
        rows = order[lo:lo + batch_size]
        audio, mask = pad_features([feats[r] for r in rows], featurizer, rows=batch_size, multiple=pad_multiple,
                                   power_of_two=True)
        z = np.asarray(encode_speech(template, params, audio, mask, model_state=model_state)["embedding"])
        out = np.zeros((len(feats), z.shape[1]), np.float32) if out is None else out
        out[rows] = z[:len(rows)]
    return np.zeros((0, 0), np.float32) if out is None else out


def embed_images(template, params, images, *, batch_size: int = 64, model_state=None) -> np.ndarray:
    """[M, E] float32 unit-norm image embeddings of `images` (pixels [M, H, W, 3] or features [M, D])."""
    images = np.asarray(images)
    return np.concatenate([
        np.asarray(encode_image(template, params, images[lo:lo + batch_size], model_state=model_state)["embedding"])
        for lo in range(0, len(images), batch_size)])


class PaddedRunner:
    """Speech/image model calls on batches of any size: rows padded to a multiple of `batch_size`
    and time to a multiple of `pad_frames` (few shapes compile), outputs cut back to the input rows."""

    def __init__(self, template, params, model_state, featurizer: audio_features.Featurizer, *,
                 batch_size: int, pad_frames: int):
        self.template, self.params, self.state, self.featurizer = template, params, model_state, featurizer
        self.batch_size, self.pad_frames = batch_size, pad_frames

    def _rows(self, b: int) -> int:
        return -(-b // self.batch_size) * self.batch_size

    def _padded(self, features, mask) -> tuple[np.ndarray, np.ndarray]:
        utterances = unpad(features, mask)
        return pad_features(utterances, self.featurizer, rows=self._rows(len(utterances)), multiple=self.pad_frames)

    def speech(self, features, mask, keys: Sequence[str] = MAPS) -> dict[str, np.ndarray]:
        """features [B, T, F], prefix mask [B, T] -> {k: [B, ...] NumPy} (`encode_speech`)."""
        out = encode_speech(self.template, self.params, *self._padded(features, mask), model_state=self.state,
                            keys=keys)
        return {k: np.asarray(v)[:len(features)] for k, v in out.items()}

    def image(self, images, keys: Sequence[str] = MAPS) -> dict[str, np.ndarray]:
        """images [B, ...] -> {k: [B, ...] NumPy} (`encode_image`)."""
        images = np.asarray(images)
        out = encode_image(self.template, self.params, _pad_rows(images, self._rows(len(images))),
                           model_state=self.state, keys=keys)
        return {k: np.asarray(v)[:len(images)] for k, v in out.items()}

    def codes(self, features, mask) -> dict[str, np.ndarray]:
        """features [B, T, F], prefix mask [B, T] -> {"quantK": codes [B, T_K] int32} (`quantizer_codes`)."""
        out = quantizer_codes(self.template, self.params, *self._padded(features, mask), model_state=self.state)
        return {k: np.asarray(v)[:len(features)] for k, v in out.items()}


def _to_host(x: jax.Array) -> np.ndarray:
    """The whole global array as NumPy on every host (each host fed only its slice)."""
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def embed_split(template, params, source: Sequence[dict], *, batch_size: int,
                features_config: ml_collections.ConfigDict, image_key: str, mesh: jax.sharding.Mesh,
                featurizer: audio_features.Featurizer | None = None, with_maps: bool = False
                ) -> dict[str, np.ndarray]:
    """Embeds every example of `source` through the input pipeline's eval batches (featurised by
    `featurizer`, default `features_config.recipe`'s; bucketed as `features_config` says), sharded
    on `mesh`.

    Returns:
      dict with z_speech [N, E] (one row per caption, source order), z_image [M, E] (unique
      images, first-seen order), caption_image [N] (row of z_image for each caption),
      image_id [M] and caption_id [N]; with `with_maps` also speech_map [N, T', E] (zero-padded
      to the longest), speech_map_mask [N, T'], image_map [M, h, w, E], image_map_mask [M, h, w].
    """
    featurizer = featurizer or audio_features.Featurizer.from_recipe(features_config.recipe)
    keys = MAPS if with_maps else EMBEDDING
    speech, image, image_ids, caption_ids = [], [], [], []
    for batch in input_pipeline.make_eval_batches(
            source, batch_size=batch_size, featurizer=featurizer, max_frames=features_config.max_frames,
            bucket_boundaries=features_config.bucket_boundaries, image_key=image_key):
        sharded = input_pipeline.shard_batch(batch, mesh)
        out_speech, out_image = encode_pair(template, params, sharded["audio"], sharded["audio_mask"],
                                            sharded[image_key], keys=keys)
        valid = _to_host(sharded["example_mask"])
        speech.append({k: _to_host(v)[valid] for k, v in out_speech.items()})
        image.append({k: _to_host(v)[valid] for k, v in out_image.items()})
        image_ids.append(_to_host(sharded["image_id"])[valid])
        caption_ids.append(_to_host(sharded["caption_id"])[valid])
    image_ids = np.concatenate(image_ids)
    unique_ids, first, inverse = np.unique(image_ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # first-seen order
    rank_of = np.empty_like(order)
    rank_of[order] = np.arange(len(order))
    keep = first[order]
    out = {
        "z_speech": np.concatenate([b["embedding"] for b in speech]),
        "z_image": np.concatenate([b["embedding"] for b in image])[keep],
        "caption_image": rank_of[inverse],
        "image_id": unique_ids[order],
        "caption_id": np.concatenate(caption_ids),
    }
    if with_maps:
        frames = max(b["map"].shape[1] for b in speech)
        pad = lambda x: np.pad(x, [(0, 0), (0, frames - x.shape[1])] + [(0, 0)] * (x.ndim - 2))
        out["speech_map"] = np.concatenate([pad(b["map"]) for b in speech])
        out["speech_map_mask"] = np.concatenate([pad(b["map_mask"]) for b in speech])
        out["image_map"] = np.concatenate([b["map"] for b in image])[keep]
        out["image_map_mask"] = np.concatenate([b["map_mask"] for b in image])[keep]
    return out
