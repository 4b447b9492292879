"""Frame-level activations of a trained speech encoder (and of its random initialisation).

`load_models` restores a checkpoint and its saved config from a workdir (as
`evaluation.evaluate_checkpoint` does) and also builds the same model at random initialisation
(`nnx.Rngs(config.seed)`), the baseline analyses must report (sota-and-metrics.md D.3).
`extract` runs `PlataleaSpeechEncoder.frame_outputs` over the first N captions of a split and
keeps, per utterance, the valid frames of every layer ("conv", "gru_0", ...), the attention-pooled
vector ("pooled"), the frame times and the alignments. `load_or_extract` caches the result in
`workdir/analysis/activations_<which>_<split>.npz` and reuses it when its key matches.

Frame times (seconds): feature frame t of the ``platalea_mfcc`` recipe covers samples
[160 t - 120, 160 t + 280), so its centre is 0.01 t + 0.005 s (the centred recipes: 0.01 t).
Frame j after the conv covers feature frames [stride j, stride j + kernel), so its centre is
``(stride j + (kernel - 1) / 2) * 0.01 + feature_offset``. Every layer after the conv shares the
conv's frames. Analysis runs on one host (arrays are gathered with `np.asarray`).
"""

import dataclasses
import functools
import json
import os
from typing import Sequence

import jax
import ml_collections
import numpy as np

from vgs_jax import audio_features
from vgs_jax import evaluation
from vgs_jax import input_pipeline

WHICH = ("trained", "random")
CACHE_VERSION = 1
_STRESS = str.maketrans("", "", "ˈˌ")


def feature_frame_offset(recipe: str) -> float:
    """Centre of feature frame 0 in seconds (frame t is centred at 0.01 t + this)."""
    if recipe not in audio_features.RECIPES:
        raise ValueError(f"Unknown feature recipe {recipe!r}; choose one of {sorted(audio_features.RECIPES)}.")
    # platalea_mfcc frames start WINDOW/2 - HOP/2 samples before 160 t, so they are centred HOP/2 after it.
    centre = audio_features.HOP // 2 if recipe == "platalea_mfcc" else 0
    return centre / audio_features.SAMPLE_RATE


def layer_frame_times(num_frames: int, *, kernel: int, stride: int, hop: float = 0.01,
                      feature_offset: float = 0.0) -> np.ndarray:
    """Centres in seconds ``[num_frames]`` (float64) of the frames after a VALID conv.

    Frame j covers feature frames [stride j, stride j + kernel); feature frame t is centred
    at ``hop * t + feature_offset`` seconds.
    """
    if num_frames < 0 or kernel < 1 or stride < 1 or hop <= 0:
        raise ValueError(f"layer_frame_times: need num_frames >= 0, kernel >= 1, stride >= 1, hop > 0; got "
                         f"{num_frames}, {kernel}, {stride}, {hop}.")
    j = np.arange(num_frames, dtype=np.float64)
    return (stride * j + (kernel - 1) / 2.0) * hop + feature_offset


def clean_phone(phone: str) -> str:
    """IPA phone label without stress marks (``"ˈɛ"`` -> ``"ɛ"``), as the analyses use it."""
    return phone.translate(_STRESS)


@dataclasses.dataclass
class Activations:
    """Extracted activations of one model on the first N captions of a split.

    frames: layer name -> list of N arrays ``[T_i, D_layer]`` float32 (valid frames only).
    pooled: ``[N, D]`` float32, the encoder's attention-pooled output.
    frame_step, frame_start: frame j of utterance i is centred at ``frame_start + j * frame_step`` s.
    meta: per utterance {"caption_id", "speaker_id", "text", "phones": [(phone, start, end)],
      "words": [(word, start, end)]} with times in seconds and phones without stress marks.
    key: what the activations were computed from (checkpoint, split, sizes), for the cache.
    """

    frames: dict[str, list[np.ndarray]]
    pooled: np.ndarray
    frame_step: float
    frame_start: float
    meta: list[dict]
    key: dict

    @property
    def layers(self) -> list[str]:
        return list(self.frames)

    def frame_times(self, i: int) -> np.ndarray:
        """Centres in seconds ``[T_i]`` of utterance i's frames."""
        n = len(next(iter(self.frames.values()))[i])
        return self.frame_start + self.frame_step * np.arange(n, dtype=np.float64)

    def mean_pooled(self, layer: str) -> np.ndarray:
        """``[N, D]`` float64: each utterance's mean over its valid frames of `layer`."""
        if layer == "pooled":
            return self.pooled.astype(np.float64)
        return np.stack([f.astype(np.float64).mean(axis=0) for f in self.frames[layer]])


def load_models(workdir: str, checkpoint: str | int = "best"):
    """Restores `checkpoint` of `workdir`; returns (step, config, template, {"trained", "random"} params)."""
    step, config, template, trained = evaluation.restore_model(workdir, checkpoint)
    if config.model.speech_encoder != "platalea_gru":
        raise ValueError(f"Analysis needs the 'platalea_gru' speech encoder (frame_outputs); the run in "
                         f"{workdir} uses {config.model.speech_encoder!r}.")
    return step, config, template, {"trained": trained, "random": template.initial_params}


@functools.cache
def _frame_fn(template):
    @jax.jit
    def run(params, audio, mask):
        return template.merge(params).speech_encoder.frame_outputs(audio, mask)

    return run


class _Head(Sequence):
    """The first `n` examples of a random-access source."""

    def __init__(self, source, n: int):
        self.source, self.n = source, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.source[i]


def _intervals(field: dict, name: str, *, clean: bool) -> list[tuple[str, float, float]]:
    out = []
    for label, start, end in zip(field[name], field["start"], field["end"]):
        label = label.decode() if isinstance(label, bytes) else str(label)
        out.append((clean_phone(label) if clean else label, float(start), float(end)))
    return out


def read_metadata(source: Sequence[dict], n: int) -> list[dict]:
    """Alignments, speaker and text of the first `n` examples (see `Activations.meta`)."""
    meta = []
    for i in range(n):
        ex = source[i]
        for key in ("phones", "words", "speaker_id", "text"):
            if key not in ex:
                raise KeyError(f"example {i} has no {key!r}; analysis needs a corpus with alignments "
                               f"(e.g. spoken_shapes); keys present: {sorted(ex)}.")
        text = ex["text"]
        meta.append({"caption_id": int(ex["caption_id"]), "speaker_id": int(ex["speaker_id"]),
                     "text": text.decode() if isinstance(text, bytes) else str(text),
                     "phones": _intervals(ex["phones"], "phone", clean=True),
                     "words": _intervals(ex["words"], "word", clean=False)})
    return meta


def extract(template, params: dict, config: ml_collections.ConfigDict, *, split: str,
            max_utterances: int, key: dict, batch_size: int | None = None) -> Activations:
    """Runs `frame_outputs` of the speech encoder over the first `max_utterances` captions of `split`."""
    if max_utterances < 2:
        raise ValueError(f"max_utterances must be >= 2, got {max_utterances}.")
    data = config.dataset
    source = input_pipeline.open_split(data.name, split, data_dir=data.data_dir)
    n = min(max_utterances, len(source))
    head = _Head(source, n)
    mesh = input_pipeline.data_mesh()
    batch_size = batch_size or config.eval_batch_size
    batch_size = -(-batch_size // mesh.size) * mesh.size
    run = _frame_fn(template)
    frames: dict[str, list[np.ndarray]] = {}
    pooled = []
    for batch in input_pipeline.make_eval_batches(
            head, batch_size=batch_size, featurize=input_pipeline.make_featurizer(config.features.recipe),
            max_frames=config.features.max_frames, bucket_boundaries=config.features.bucket_boundaries,
            pad_value=audio_features.pad_value(config.features.recipe), image_key=data.image_key):
        sharded = input_pipeline.shard_batch(
            {k: batch[k] for k in ("audio", "audio_mask")}, mesh)
        out = {k: np.asarray(v) for k, v in run(params, sharded["audio"], sharded["audio_mask"]).items()}
        lengths = out["mask"].sum(axis=1)
        for r in np.flatnonzero(batch["example_mask"]):
            if lengths[r] < 1:
                raise ValueError(f"caption_id={batch['caption_id'][r]} is shorter than the conv kernel; "
                                 "it has no frames to analyse.")
            for name, value in out.items():
                if name not in ("mask", "pooled"):
                    frames.setdefault(name, []).append(value[r, :lengths[r]].astype(np.float32))
            pooled.append(out["pooled"][r].astype(np.float32))
    speech = config.model.speech
    return Activations(
        frames=frames, pooled=np.stack(pooled),
        frame_step=speech.conv_stride * audio_features.HOP / audio_features.SAMPLE_RATE,
        frame_start=float(layer_frame_times(1, kernel=speech.conv_kernel, stride=speech.conv_stride,
                                            feature_offset=feature_frame_offset(config.features.recipe))[0]),
        meta=read_metadata(source, n), key=key)


def save(path: str, acts: Activations) -> None:
    """Writes `acts` to an .npz (atomically): ragged layers as concatenated frames plus lengths."""
    arrays = {f"layer/{name}": np.concatenate(value) for name, value in acts.frames.items()}
    arrays["lengths"] = np.array([len(f) for f in next(iter(acts.frames.values()))], np.int64)
    arrays["pooled"] = acts.pooled
    arrays["times"] = np.array([acts.frame_start, acts.frame_step])
    arrays["meta"] = np.array(json.dumps(acts.meta))
    arrays["key"] = np.array(json.dumps(acts.key, sort_keys=True))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load(path: str) -> Activations:
    """Reads what `save` wrote."""
    with np.load(path) as z:
        lengths = z["lengths"]
        cuts = np.cumsum(lengths)[:-1]
        frames = {k.removeprefix("layer/"): np.split(z[k], cuts) for k in z.files if k.startswith("layer/")}
        meta = [{**m, "phones": [tuple(p) for p in m["phones"]], "words": [tuple(w) for w in m["words"]]}
                for m in json.loads(str(z["meta"]))]
        start, step = (float(v) for v in z["times"])
        return Activations(frames=frames, pooled=z["pooled"], frame_step=step, frame_start=start,
                           meta=meta, key=json.loads(str(z["key"])))


def cache_path(workdir: str, which: str, split: str) -> str:
    return os.path.join(workdir, "analysis", f"activations_{which}_{split}.npz")


def load_or_extract(workdir: str, *, checkpoint: str | int = "best", split: str = "validation",
                    max_utterances: int = 200, batch_size: int | None = None
                    ) -> tuple[int, ml_collections.ConfigDict, dict[str, Activations], dict[str, bool]]:
    """Trained and random-init activations of `split`, from the cache when its key matches.

    Returns (step, config, {"trained": acts, "random": acts}, {"trained": reused, "random": reused}).
    """
    step, config, template, params = load_models(workdir, checkpoint)
    out, reused = {}, {}
    for which in WHICH:
        key = {"version": CACHE_VERSION, "which": which, "step": int(step), "split": split,
               "max_utterances": int(max_utterances), "dataset": config.dataset.name,
               "model": config.model.to_dict(), "features": config.features.to_dict(), "seed": config.seed}
        key = json.loads(json.dumps(key, sort_keys=True))  # tuples -> lists, as read back
        path = cache_path(workdir, which, split)
        if os.path.exists(path):
            cached = load(path)
            if cached.key == key:
                out[which], reused[which] = cached, True
                continue
        out[which] = extract(template, params[which], config, split=split, max_utterances=max_utterances,
                             key=key, batch_size=batch_size)
        reused[which] = False
        save(path, out[which])
    return step, config, out, reused
