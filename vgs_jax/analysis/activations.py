"""Frame-level activations of a trained speech encoder (and of its random initialisation).

`load_models` restores a checkpoint and its saved config from a workdir (as
`evaluation.evaluate_checkpoint` does) and also builds the same model at random initialisation
(`nnx.Rngs(config.seed)`), the baseline analyses must report (sota-and-metrics.md D.3).
`extract` runs the speech encoder's `frame_outputs` (`inference.frame_outputs`; encoders that
declare per-layer frame outputs in their `capabilities`) over the first N captions of a split and
keeps, per utterance, the valid frames of every layer ("conv", "gru_0" / "rnn_0" / "layer_0", ...;
DAVEnet "conv1".."conv5", ResDAVEnet "conv1", "layer1".."layer4"), the pooled vector ("pooled":
attention pooling, or DAVEnet's L2-normalised mean), the frame-level attention of the pooling (the
mean over dimensions of the vectorial attention weights, see `attention_words`; None for encoders
that declare no attention, i.e. DAVEnet/ResDAVEnet), the frame times and the alignments.
The "random" model is the initial parameters with the initial model state (fresh BatchNorm
statistics and codebooks), the trained one the checkpoint's.
`load_or_extract` caches the result in `workdir/analysis/activations_<which>_<split>.npz` and
reuses it when its key matches.

`extract_wav_list` does the same for a list of WAV files (one path per line; no alignments):
`python -m vgs_jax.analyze --workdir=DIR --wav_list=FILE` writes
`<output_dir>/wav_activations_<trained|random>.npz` with every layer and every frame's time.
WAVs are read with soundfile, averaged to mono and resampled to 16 kHz
(`scipy.signal.resample_poly`) when needed; a missing, unreadable or empty file raises an error
naming it.

The .npz layout (`save`): ``layer/<name>`` the frames of all utterances concatenated
``[sum T_i, D]``, ``lengths [N]``, ``frame_times [sum T_i]`` (seconds, same layout),
``attention [sum T_i]``, ``pooled [N, D]``, ``times`` = (frame_start, frame_step), and JSON
``meta`` and ``key``.

Frame times (seconds): feature frame t of the ``platalea_mfcc`` recipe covers samples
[160 t - 120, 160 t + 280), so its centre is 0.01 t + 0.005 s (the centred recipes: 0.01 t).
Frame j of the layers is centred on feature frame ``stride j + (kernel - 1) / 2`` of the encoder's
declared `capabilities.frame_clock` (a conv front end's kernel and stride; every layer after the
conv shares the conv's frames), i.e. at ``(stride j + (kernel - 1) / 2) * 0.01 + feature_offset``
s. DAVEnet and ResDAVEnet declare kernel 1, stride 1: their `frame_outputs` repeat every stage
back to the 10 ms input rate. Analysis runs on one host (arrays are gathered with `np.asarray`).
"""

import dataclasses
import json
import os
from typing import Sequence

import scipy.signal
import soundfile

import ml_collections
import numpy as np

from vgs_jax import audio_features
from vgs_jax import data_sources
from vgs_jax import evaluation
from vgs_jax import inference
from vgs_jax import input_pipeline
from vgs_jax.models import capabilities

WHICH = ("trained", "random")
CACHE_VERSION = 3  # 3: "random" uses the initial model state
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
    pooled: ``[N, D]`` float32, the encoder's pooled output (attention, or DAVEnet's mean).
    frame_step, frame_start: frame j of utterance i is centred at ``frame_start + j * frame_step`` s.
    meta: per utterance {"caption_id", "speaker_id", "text", "phones": [(phone, start, end)],
      "words": [(word, start, end)]} with times in seconds and phones without stress marks; fields
      the corpus lacks are left out (for WAV lists: {"path", "num_samples", "sample_rate"}, no alignments).
    key: what the activations were computed from (checkpoint, split, sizes), for the cache.
    attention: per utterance ``[T_i]`` float32, the pooling's frame weights (sum to 1), or None
      (encoders without attention pooling).
    """

    frames: dict[str, list[np.ndarray]]
    pooled: np.ndarray
    frame_step: float
    frame_start: float
    meta: list[dict]
    key: dict
    attention: list[np.ndarray] | None = None

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


def load_models(workdir: str, checkpoint: str | int = "best", *, require_frame_outputs: bool = True):
    """Restores `checkpoint` of `workdir`; returns (step, config, template, {"trained", "random"} params).

    With `require_frame_outputs`, a speech encoder that declares no per-layer frame outputs raises
    ValueError.
    """
    step, config, template, trained = evaluation.restore_model(workdir, checkpoint)
    if require_frame_outputs and not template.speech_capabilities.frame_outputs:
        raise ValueError(f"Layer activations need a speech encoder with per-layer frame outputs; the run in "
                         f"{workdir} uses {config.model.speech_encoder!r}, which declares none.")
    return step, config, template, {"trained": trained, "random": template.initial_params}


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
    """Caption id plus whichever of speaker, text and phone/word alignments the first `n` examples
    have (see `Activations.meta`; `data_fields` says which analyses need which)."""
    meta = []
    for i in range(n):
        ex = source[i]
        m = {"caption_id": int(ex["caption_id"])}
        if "speaker_id" in ex:
            m["speaker_id"] = int(ex["speaker_id"])
        if "text" in ex:
            m["text"] = ex["text"].decode() if isinstance(ex["text"], bytes) else str(ex["text"])
        if "phones" in ex:
            m["phones"] = _intervals(ex["phones"], "phone", clean=True)
        if "words" in ex:
            m["words"] = _intervals(ex["words"], "word", clean=False)
        meta.append(m)
    return meta


def extract(template, params: dict, config: ml_collections.ConfigDict, *, split: str,
            max_utterances: int, key: dict, batch_size: int | None = None,
            model_state: dict | None = None, source: Sequence[dict] | None = None) -> Activations:
    """Runs `frame_outputs` of the speech encoder over the first `max_utterances` captions of `split`
    (with `model_state`, default the template's, e.g. `template.initial_model_state` for "random";
    `source`: the split's examples, default `config.dataset`'s, e.g. one language's view of a multilingual run)."""
    if max_utterances < 2:
        raise ValueError(f"max_utterances must be >= 2, got {max_utterances}.")
    data = config.dataset
    source = data_sources.open_config_split(data, split) if source is None else source
    n = min(max_utterances, len(source))
    head = _Head(source, n)
    mesh = input_pipeline.data_mesh()
    # Any batch size: make_eval_batches pads it with masked rows (input_pipeline.padded_batch_size).
    batch_size = batch_size or config.eval_batch_size
    featurizer = audio_features.Featurizer.from_recipe(config.features.recipe)
    collected = _Collected()
    for batch in input_pipeline.make_eval_batches(
            head, batch_size=batch_size, featurizer=featurizer, max_frames=config.features.max_frames,
            bucket_boundaries=config.features.bucket_boundaries, image_key=data.image_key):
        sharded = input_pipeline.shard_batch(
            {k: batch[k] for k in ("audio", "audio_mask")}, mesh)
        out = inference.frame_outputs(template, params, sharded["audio"], sharded["audio_mask"],
                                      model_state=model_state)
        rows = np.flatnonzero(batch["example_mask"])
        collected.add(out, rows, [f"caption_id={batch['caption_id'][r]}" for r in rows])
    return collected.activations(template, config, meta=read_metadata(source, n), key=key)


class _Collected:
    """Valid frames, pooled vectors and attention of utterances, gathered batch by batch."""

    def __init__(self):
        self.frames: dict[str, list[np.ndarray]] = {}
        self.pooled, self.attention = [], []

    def add(self, out: dict, rows, names: Sequence[str]) -> None:
        """Keeps rows `rows` of `inference.frame_outputs`' output (`names`: what errors call them)."""
        out = {k: np.asarray(v) for k, v in out.items()}
        lengths = out["mask"].sum(axis=1)
        for r, what in zip(rows, names):
            if lengths[r] < 1:
                raise ValueError(f"{what} is shorter than the conv kernel; it has no frames to analyse.")
            for name, value in out.items():
                if name not in ("mask", "pooled", "attention"):
                    self.frames.setdefault(name, []).append(value[r, :lengths[r]].astype(np.float32))
            self.pooled.append(out["pooled"][r].astype(np.float32))
            if "attention" in out:
                self.attention.append(out["attention"][r, :lengths[r]].astype(np.float32))

    def activations(self, template, config, *, meta: list[dict], key: dict) -> "Activations":
        return Activations(frames=self.frames, pooled=np.stack(self.pooled), attention=self.attention or None,
                           **frame_times(template.speech_capabilities.frame_clock, config.features.recipe),
                           meta=meta, key=key)


def frame_times(clock: capabilities.FrameClock, recipe: str) -> dict[str, float]:
    """{"frame_step", "frame_start"} seconds of layers on `clock` over features of `recipe`."""
    return dict(
        frame_step=clock.stride * audio_features.frame_seconds(recipe),
        frame_start=float(layer_frame_times(1, kernel=clock.kernel, stride=clock.stride,
                                            hop=audio_features.frame_seconds(recipe),
                                            feature_offset=feature_frame_offset(recipe))[0]))


def save(path: str, acts: Activations) -> None:
    """Writes `acts` to an .npz (atomically): ragged layers as concatenated frames plus lengths."""
    arrays = {f"layer/{name}": np.concatenate(value) for name, value in acts.frames.items()}
    arrays["lengths"] = np.array([len(f) for f in next(iter(acts.frames.values()))], np.int64)
    arrays["frame_times"] = np.concatenate([acts.frame_times(i) for i in range(len(arrays["lengths"]))])
    if acts.attention is not None:
        arrays["attention"] = np.concatenate(acts.attention)
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
        meta = [{**m, **{k: [tuple(x) for x in m[k]] for k in ("phones", "words") if k in m}}
                for m in json.loads(str(z["meta"]))]
        start, step = (float(v) for v in z["times"])
        attention = np.split(z["attention"], cuts) if "attention" in z.files else None
        return Activations(frames=frames, pooled=z["pooled"], frame_step=step, frame_start=start,
                           meta=meta, key=json.loads(str(z["key"])), attention=attention)


def cache_path(workdir: str, which: str, split: str, language: str | None = None) -> str:
    suffix = f"_{language}" if language else ""
    return os.path.join(workdir, "analysis", f"activations_{which}_{split}{suffix}.npz")


def load_or_extract(workdir: str, *, checkpoint: str | int = "best", split: str = "validation",
                    max_utterances: int = 200, batch_size: int | None = None, models: tuple | None = None,
                    source: Sequence[dict] | None = None, language: str | None = None
                    ) -> tuple[int, ml_collections.ConfigDict, dict[str, Activations], dict[str, bool]]:
    """Trained and random-init activations of `split`, from the cache when its key matches.

    `models`: what `load_models(workdir, checkpoint)` returned, to avoid restoring twice.
    `source`, `language`: a multilingual run's view of `split` in `language` (`models` then holds that
    language's template); the cache file and key name the language.
    Returns (step, config, {"trained": acts, "random": acts}, {"trained": reused, "random": reused}).
    """
    step, config, template, params = models or load_models(workdir, checkpoint)
    out, reused = {}, {}
    for which in WHICH:
        key = {"version": CACHE_VERSION, "which": which, "step": int(step), "split": split,
               "max_utterances": int(max_utterances), "dataset": config.dataset.name,
               "model": config.model.to_dict(), "features": config.features.to_dict(), "seed": config.seed}
        if language:
            key["language"] = language
        key = json.loads(json.dumps(key, sort_keys=True))  # tuples -> lists, as read back
        path = cache_path(workdir, which, split, language)
        if os.path.exists(path):
            cached = load(path)
            if cached.key == key:
                out[which], reused[which] = cached, True
                continue
        state = template.initial_model_state if which == "random" else None
        out[which] = extract(template, params[which], config, split=split, max_utterances=max_utterances,
                             key=key, batch_size=batch_size, model_state=state, source=source)
        reused[which] = False
        save(path, out[which])
    return step, config, out, reused


def read_wav(path: str) -> np.ndarray:
    """A WAV (or any soundfile format) as int16 ``[n]`` mono at 16 kHz; errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"WAV file {path!r} does not exist; fix the path in the --wav_list file.")
    try:
        data, rate = soundfile.read(path, dtype="float64", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
        raise ValueError(f"Cannot read audio file {path!r} ({e}); is it a valid WAV?") from e
    if data.shape[0] == 0:
        raise ValueError(f"WAV file {path!r} has no samples; remove it from the list.")
    x = data.mean(axis=1)
    if rate != audio_features.SAMPLE_RATE:
        g = np.gcd(int(rate), audio_features.SAMPLE_RATE)
        x = scipy.signal.resample_poly(x, audio_features.SAMPLE_RATE // g, int(rate) // g)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def read_wav_list(list_path: str) -> list[str]:
    """Paths of a WAV list file: one per line, blank lines and lines starting with '#' skipped;
    relative paths are relative to the list's folder."""
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"WAV list {list_path!r} does not exist.")
    base = os.path.dirname(os.path.abspath(list_path))
    with open(list_path) as f:
        paths = [os.path.join(base, line.strip()) for line in f if line.strip() and not line.startswith("#")]
    if not paths:
        raise ValueError(f"WAV list {list_path!r} names no files; write one path per line.")
    return paths


def extract_wavs(template, params: dict, config: ml_collections.ConfigDict, paths: Sequence[str], *,
                 key: dict, batch_size: int = 16, pad_multiple: int = 64,
                 model_state: dict | None = None) -> Activations:
    """`frame_outputs` of every file in `paths` (see `read_wav`); meta holds path and length, no alignments.
    `model_state` as in `extract`."""
    featurizer = audio_features.Featurizer.from_recipe(config.features.recipe)
    waves = [read_wav(p) for p in paths]  # read all first: a bad file fails before any compute
    feats = []
    for path, wave in zip(paths, waves):
        if len(wave) < audio_features.WINDOW:
            raise ValueError(f"WAV file {path!r} is {len(wave)} samples at 16 kHz, shorter than one 25 ms "
                             "analysis window; remove it from the list.")
        feats.append(featurizer(wave))
    collected = _Collected()
    for lo in range(0, len(feats), batch_size):
        chunk = feats[lo:lo + batch_size]
        audio, mask = inference.pad_features(chunk, featurizer, rows=batch_size, multiple=pad_multiple)
        out = inference.frame_outputs(template, params, audio, mask, model_state=model_state)
        collected.add(out, range(len(chunk)), [f"WAV file {p!r}" for p in paths[lo:lo + batch_size]])
    meta = [{"path": os.path.abspath(p), "num_samples": int(len(w)), "sample_rate": audio_features.SAMPLE_RATE}
            for p, w in zip(paths, waves)]
    return collected.activations(template, config, meta=meta, key=key)


def extract_wav_list(workdir: str, wav_list: str, *, checkpoint: str | int = "best",
                     output_dir: str | None = None) -> dict[str, str]:
    """Trained and random-init activations of the files in `wav_list`, written to
    ``<output_dir>/wav_activations_<which>.npz`` (default `workdir/analysis`); returns the paths."""
    paths = read_wav_list(wav_list)
    for path in paths:  # fail on a bad file before restoring anything
        read_wav(path)
    step, config, template, params = load_models(workdir, checkpoint)
    output_dir = output_dir or os.path.join(workdir, "analysis")
    out = {}
    for which in WHICH:
        key = {"version": CACHE_VERSION, "which": which, "step": int(step), "wav_list": os.path.abspath(wav_list)}
        state = template.initial_model_state if which == "random" else None
        acts = extract_wavs(template, params[which], config, paths, key=key, model_state=state)
        out[which] = os.path.join(output_dir, f"wav_activations_{which}.npz")
        save(out[which], acts)
    return out
