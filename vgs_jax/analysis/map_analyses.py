"""Runs the matchmap, VQ-unit and semantic analyses on a restored checkpoint, trained vs random init.

The array-level modules (`localization`, `lexicon`, `vq_units`, `heatmaps`, `semantics`) take
callables; `ModelFns` builds them from a checkpoint's `Template` and parameters (jitted once per
template; batches are padded to a fixed size and the time axis to a multiple of `pad_frames`
so few shapes compile). "random" is the same model at initialisation: `template.initial_params`
with `template.initial_model_state` (fresh BatchNorm statistics and codebooks).

Applicability (an entry is ``{"not_applicable": reason}`` otherwise, never an error):

* ``localization``, ``lexicon``: frame-map speech and image towers
  (`dual_encoder.FRAME_MAP_SPEECH_ENCODERS` / `FRAME_MAP_IMAGE_ENCODERS`) and a corpus with
  object boxes and word alignments (spoken_shapes). ``heatmaps``: frame-map towers and word
  alignments; PNGs go to ``<output_dir>/heatmaps_<trained|random>/``.
* ``vq_units``: a ResDAVEnet with quantisers and phone/word alignments; one report per
  quantiser ``quantK``.
* ``semantics``: every model; relatedness of retrieved captions (`semantics.retrieval_relatedness`)
  and, with `MapSettings.sick_data_dir`, the spoken_sick correlation.

The per-layer analyses of `vgs_jax.analysis.suite` (probes, ABX, RSA, boundaries, word presence)
also apply to DAVEnet/ResDAVEnet runs: their `frame_outputs` repeat every stage back to the 10 ms
input rate. The attention analysis does not (they mean-pool, so it reports not applicable).

Frame times. Feature frame t is centred at ``0.01 t + o`` s (o = `activations.feature_frame_offset`).
Each halving (max-pool k3/s2/p1 or stride-2 conv with k//2 padding) centres output frame j on
input frame 2j, so frame j at position K of a ResDAVEnet (K = 1 after conv1, 2..5 after
layer1..layer4; the final map is position 5, 16x) is centred at ``r j 0.01 + o``, r = 2^(K-1).
The part-C modules place frame j at ``[j, j + 1) * shift + offset``, so ``shift = 0.01 r`` and
``offset = o - shift / 2`` (negative). `vq_units` refuses negative offsets, so its examples' phone
and word times are shifted by ``-offset`` instead and it gets offset 0 (the same frame-to-time map).
"""

import dataclasses
import functools
import logging
import os
import time
from typing import Sequence

import jax
import numpy as np

from vgs_jax import audio_features
from vgs_jax import input_pipeline
from vgs_jax.analysis import activations as activations_lib
from vgs_jax.analysis import data_fields
from vgs_jax.analysis import heatmaps
from vgs_jax.analysis import lexicon
from vgs_jax.analysis import localization
from vgs_jax.analysis import semantics
from vgs_jax.analysis import vq_units
from vgs_jax.models import dual_encoder
from vgs_jax.models.davenet import NUM_HALVINGS, downsampled_lengths

MAP_ANALYSES = ("localization", "lexicon", "vq_units", "heatmaps", "semantics")
WHICH = ("trained", "random")


@dataclasses.dataclass(frozen=True)
class MapSettings:
    """Sizes and inputs of the map analyses."""

    batch_size: int = 16
    pad_frames: int = 64
    lexicon_clusters: int = 20
    heatmap_examples: int = 4
    semantics_k: int = 5
    sick_data_dir: str | None = None
    sick_split: str = "test"
    max_sick_pairs: int = 500
    word_vectors: str | None = None
    seed: int = 0

    def __post_init__(self):
        for name in ("batch_size", "pad_frames", "lexicon_clusters", "heatmap_examples", "semantics_k",
                     "max_sick_pairs"):
            if getattr(self, name) < 1:
                raise ValueError(f"MapSettings.{name} must be >= 1, got {getattr(self, name)}.")
        if self.sick_data_dir is not None and not os.path.isdir(self.sick_data_dir):
            raise ValueError(f"sick_data_dir {self.sick_data_dir!r} is not a folder; give the TFDS data_dir "
                             "holding a built spoken_sick.")


def is_frame_map(config) -> bool:
    """Whether both towers of `config.model` produce maps (matchmaps are defined)."""
    return (config.model.speech_encoder in dual_encoder.FRAME_MAP_SPEECH_ENCODERS
            and config.model.image_encoder in dual_encoder.FRAME_MAP_IMAGE_ENCODERS)


def quantiser_positions(config) -> list[int]:
    """1-based positions (1 after conv1, 2..5 after layer1..4) of a ResDAVEnet's enabled quantisers."""
    if config.model.speech_encoder != "resdavenet":
        return []
    return [k + 1 for k, on in enumerate(config.model.speech.get("vq_on", ())) if on]


def frame_clock(recipe: str, position: int = NUM_HALVINGS + 1) -> tuple[float, float]:
    """(frame_shift, frame_offset) seconds of a map at `position` (see the module docstring)."""
    if not 1 <= position <= NUM_HALVINGS + 1:
        raise ValueError(f"position must be in [1, {NUM_HALVINGS + 1}], got {position}.")
    shift = 0.01 * 2 ** (position - 1)
    return shift, activations_lib.feature_frame_offset(recipe) - shift / 2


@functools.cache
def _jitted(template):
    def merge(params, state):
        return template.merge(params, state)

    @jax.jit
    def speech(params, state, features, mask):
        out = merge(params, state).encode_speech(features, mask)
        return {k: out[k] for k in ("embedding", "map", "map_mask") if k in out}

    @jax.jit
    def image(params, state, images):
        out = merge(params, state).encode_image(images)
        return out["map"], out["map_mask"]

    @jax.jit
    def codes(params, state, features, mask):
        _, _, aux = merge(params, state).speech_encoder.encode(features, mask)
        return {k: v["codes"] for k, v in aux.items() if k.startswith("quant")}

    return speech, image, codes


class ModelFns:
    """The callables of the part-C `run_*` functions for one set of parameters (eval mode)."""

    def __init__(self, template, params, model_state, recipe: str, settings: MapSettings):
        self.params, self.state, self.settings = params, model_state, settings
        self._speech, self._image, self._codes = _jitted(template)
        self.pad_value = audio_features.pad_value(recipe)

    def _pad(self, x: np.ndarray, mask: np.ndarray | None = None):
        """Pads the batch to a multiple of batch_size with copies of row 0 (and time to pad_frames)."""
        b = x.shape[0]
        rows = -(-b // self.settings.batch_size) * self.settings.batch_size
        take = np.concatenate([np.arange(b), np.zeros(rows - b, np.int64)])
        if mask is None:
            return x[take]
        t = -(-x.shape[1] // self.settings.pad_frames) * self.settings.pad_frames
        xp = np.full((b, t, x.shape[2]), self.pad_value, np.float32)
        mp = np.zeros((b, t), bool)
        xp[:, :x.shape[1]], mp[:, :x.shape[1]] = x, mask
        return xp[take], mp[take]

    def _run_speech(self, features, mask) -> dict:
        b = len(features)
        x, m = self._pad(np.asarray(features, np.float32), np.asarray(mask, bool))
        return {k: np.asarray(v)[:b] for k, v in self._speech(self.params, self.state, x, m).items()}

    def audio_maps(self, features, mask):
        """features [B, T, F] f32, mask [B, T] bool -> (maps [B, T', D] f32, mask [B, T'] bool)."""
        out = self._run_speech(features, mask)
        return out["map"], out["map_mask"]

    def image_maps(self, images):
        """images uint8 [B, S, S, 3] -> (maps [B, H, W, D] f32, mask [B, H, W] bool)."""
        b = len(images)
        fmap, fmask = self._image(self.params, self.state, self._pad(np.asarray(images)))
        return np.asarray(fmap)[:b], np.asarray(fmask)[:b]

    def embed(self, features, mask):
        """features [B, T, F] f32, mask [B, T] bool -> [B, E] f32 unit-norm utterance embeddings."""
        return self._run_speech(features, mask)["embedding"]

    def codes_fn(self, position: int):
        """`run_vq_units`' callable for quantiser `position`: -> (codes [B, T_K] int32, mask [B, T_K] bool)."""
        def fn(features, mask):
            b = len(features)
            x, m = self._pad(np.asarray(features, np.float32), np.asarray(mask, bool))
            codes = np.asarray(self._codes(self.params, self.state, x, m)[f"quant{position}"])[:b]
            lengths = np.asarray(downsampled_lengths(np.asarray(mask).sum(axis=1), position - 1))
            return codes, np.arange(codes.shape[1])[None, :] < lengths[:, None]
        return fn


def model_fns(template, trained_params, config, settings: MapSettings) -> dict[str, ModelFns]:
    """{"trained", "random"} -> ModelFns (random: initial params and initial model state)."""
    recipe = config.features.recipe
    return {"trained": ModelFns(template, trained_params, template.model_state, recipe, settings),
            "random": ModelFns(template, template.initial_params, template.initial_model_state, recipe, settings)}


def load_examples(config, split: str, max_utterances: int) -> list[dict]:
    """The first `max_utterances` examples of `split` of the run's dataset (all fields)."""
    data = config.dataset
    source = input_pipeline.open_config_split(data, split)
    return [source[i] for i in range(min(max_utterances, len(source)))]


def _shifted(field, key: str, delta: float) -> dict:
    return {key: field[key], "start": np.asarray(field["start"], np.float64) + delta,
            "end": np.asarray(field["end"], np.float64) + delta}


def applicability(name: str, config, examples: Sequence[dict]) -> str | None:
    """Why analysis `name` cannot run on this model/corpus, or None when it can."""
    if name == "vq_units" and not quantiser_positions(config):
        return f"speech encoder {config.model.speech_encoder!r} has no quantisers (config.model.speech.vq_on)"
    if name in ("localization", "lexicon", "heatmaps"):
        if not is_frame_map(config):
            return (f"needs frame-map towers (speech {sorted(dual_encoder.FRAME_MAP_SPEECH_ENCODERS)}, image "
                    f"{sorted(dual_encoder.FRAME_MAP_IMAGE_ENCODERS)}); this run has "
                    f"{config.model.speech_encoder!r} + {config.model.image_encoder!r}")
        if config.dataset.image_key != "image":
            return f"the run reads precomputed image vectors ({config.dataset.image_key!r}), not pixels"
    missing = data_fields.missing_fields(name, examples[0] if examples else {})
    return data_fields.not_applicable_reason(missing, "the corpus") if missing else None


def _run_one(name, fns: ModelFns, config, examples, settings: MapSettings, output_dir, which) -> dict | list:
    featurize = input_pipeline.make_featurizer(config.features.recipe)
    shift, offset = frame_clock(config.features.recipe)
    common = dict(featurize=featurize, batch_size=settings.batch_size)
    maps = dict(frame_shift=shift, frame_offset=offset, **common)
    if name == "localization":
        return localization.run_localization(fns.audio_maps, fns.image_maps, examples, **maps)
    if name == "lexicon":
        return lexicon.run_lexicon(fns.audio_maps, fns.image_maps, examples, num_clusters=settings.lexicon_clusters,
                                   seed=settings.seed, **maps)
    if name == "heatmaps":
        return heatmaps.run_heatmaps(fns.audio_maps, fns.image_maps, examples,
                                     os.path.join(output_dir, f"heatmaps_{which}"),
                                     max_examples=settings.heatmap_examples, **maps)
    if name == "vq_units":
        out = {}
        for k in quantiser_positions(config):
            shift, offset = frame_clock(config.features.recipe, k)
            views = [{"audio": ex["audio"], "phones": _shifted(ex["phones"], "phone", -offset),
                      "words": _shifted(ex["words"], "word", -offset)} for ex in examples]
            out[f"quant{k}"] = {**vq_units.run_vq_units(fns.codes_fn(k), views, frame_shift=shift, **common),
                                "frame_shift": shift}
        return out
    sick = None
    if settings.sick_data_dir:
        source = input_pipeline.open_split("spoken_sick", settings.sick_split, data_dir=settings.sick_data_dir)
        sick = [source[i] for i in range(min(settings.max_sick_pairs, len(source)))]
    return semantics.run_semantics(fns.embed, sick_examples=sick, caption_examples=examples,
                                   word_vectors_path=settings.word_vectors,
                                   k=min(settings.semantics_k, len(examples) - 1), seed=settings.seed, **common)


def run_map_analyses(fns: dict[str, ModelFns], config, examples: Sequence[dict], analyses: Sequence[str],
                     output_dir: str, settings: MapSettings = MapSettings()) -> dict:
    """{analysis: entry} for each name of `analyses` in MAP_ANALYSES (others ignored).

    entry: {"not_applicable": reason}, or {"trained": report, "random": report, "seconds": s} plus
    "frame_shift"/"frame_offset" (s) for the matchmap analyses and "sick" (a note) for semantics when
    no spoken_sick data was given. A part-C ValueError (e.g. no word named an object) becomes
    {"error": message} for that model.
    """
    out = {}
    for name in (a for a in MAP_ANALYSES if a in analyses):
        reason = applicability(name, config, examples)
        if reason:
            out[name] = {"not_applicable": reason}
            continue
        clock, entry = time.perf_counter(), {}
        for which in WHICH:
            try:
                entry[which] = _run_one(name, fns[which], config, examples, settings, output_dir, which)
            except ValueError as e:
                logging.warning("%s (%s) failed: %s", name, which, e)
                entry[which] = {"error": str(e)}
        if name in ("localization", "lexicon", "heatmaps"):
            entry["frame_shift"], entry["frame_offset"] = frame_clock(config.features.recipe)
        if name == "semantics" and not settings.sick_data_dir:
            entry["sick"] = "not run: pass --sick_data_dir (a TFDS data_dir with spoken_sick built)"
        entry["seconds"] = round(time.perf_counter() - clock, 2)
        out[name] = entry
    return out


def _pct(x) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def format_map_analyses(entries: dict) -> str:
    """A few lines per map analysis: "trained/random" numbers (percent unless marked)."""
    lines = []
    for name, entry in entries.items():
        if "not_applicable" in entry:
            lines.append(f"{name}: not applicable ({entry['not_applicable']})")
            continue
        t, r = entry["trained"], entry["random"]
        errors = [x["error"] for x in (t, r) if isinstance(x, dict) and "error" in x]
        if errors:
            lines.append(f"{name}: error ({errors[0]})")
        elif name == "localization":
            lines.append(f"localization: accuracy {_pct(t['accuracy'])}/{_pct(r['accuracy'])}, chance "
                         f"{_pct(t['chance'])} ({t['n']} words)")
        elif name == "lexicon":
            lines.append(f"lexicon: word purity {_pct(t['word_purity'])}/{_pct(r['word_purity'])}, NMI "
                         f"{_pct(t['word_nmi'])}/{_pct(r['word_nmi'])}; object purity {_pct(t['object_purity'])}/"
                         f"{_pct(r['object_purity'])} ({len(t['clusters'])} clusters, "
                         f"{t['num_groundings']} groundings)")
        elif name == "heatmaps":
            where = os.path.dirname(os.path.dirname(t[0])) if t else "-"
            lines.append(f"heatmaps: {len(t)} + {len(r)} PNGs in {where}/heatmaps_<trained|random>")
        elif name == "vq_units":
            for q in t:
                a, b = t[q], r[q]
                lines.append(f"vq_units {q}: phone purity {_pct(a['phones']['purity'])}/"
                             f"{_pct(b['phones']['purity'])}, "
                             f"NMI {_pct(a['phones']['nmi'])}/{_pct(b['phones']['nmi'])}, words F1>=.5 "
                             f"{a['words']['words_detected']}/{b['words']['words_detected']}, bitrate "
                             f"{a['bitrate']['lossy_rle']:.0f}/{b['bitrate']['lossy_rle']:.0f} bit/s")
        elif name == "semantics":
            a, b = t["retrieval"], r["retrieval"]
            lines.append(f"semantics: relatedness top-{a['k']} {a['top_k']:.3f}/{b['top_k']:.3f}, random "
                         f"{a['random_k']:.3f}/{b['random_k']:.3f}, bottom {a['bottom_k']:.3f}/{b['bottom_k']:.3f}")
            if "sick" in t:
                lines.append(f"semantics SICK: Pearson {t['sick']['pearson']:.3f}/{r['sick']['pearson']:.3f}, "
                             f"Spearman {t['sick']['spearman']:.3f}/{r['sick']['spearman']:.3f} "
                             f"({t['sick']['n']} pairs)")
    return "\n".join(lines)
