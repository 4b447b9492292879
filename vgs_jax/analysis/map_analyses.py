"""Runs the matchmap, VQ-unit and semantic analyses on a restored checkpoint, trained vs random init.

The array-level modules (`localization`, `lexicon`, `vq_units`, `heatmaps`, `semantics`) take
callables; `ModelFns` builds them from a checkpoint's `Template` and parameters
(`inference.PaddedRunner`: batches are padded to a multiple of `batch_size` rows and the time axis
to a multiple of `pad_frames` so few shapes compile). "random" is the same model at
initialisation: `template.initial_params` with `template.initial_model_state` (fresh BatchNorm
statistics and codebooks).

Applicability (an entry is ``{"not_applicable": reason}`` otherwise, never an error):

* ``localization``, ``lexicon``: speech and image towers that declare frame maps
  (`capabilities.has_map`) and a corpus with object boxes and word alignments (spoken_shapes).
  ``heatmaps``: frame-map towers and word alignments; PNGs go to
  ``<output_dir>/heatmaps_<trained|random>/``.
* ``vq_units``: a speech tower that declares quantisers (ResDAVEnet-VQ) and phone/word
  alignments; one report per quantiser ``quantK``.
* ``semantics``: every model; relatedness of retrieved captions (`semantics.retrieval_relatedness`)
  and, with `MapSettings.sick_data_dir`, the spoken_sick correlation.

The per-layer analyses of `vgs_jax.analysis.suite` (probes, ABX, RSA, boundaries, word presence)
also apply to DAVEnet/ResDAVEnet runs: their `frame_outputs` repeat every stage back to the 10 ms
input rate. The attention analysis does not (they mean-pool, so it reports not applicable).

Frame times. Feature frame t is centred at ``0.01 t + o`` s (o = `activations.feature_frame_offset`).
A map or quantiser declares its `FrameClock` (`capabilities.map_clock`, `capabilities.quantizers`):
frame j is centred on feature frame ``r j + (k - 1) / 2`` (stride r, kernel k; DAVEnet's halvings
centre output frame j on input frame 2j, so quantiser K of a ResDAVEnet (K = 1 after conv1, 2..5
after layer1..layer4; the final map is 16x) has r = 2^(K-1), k = 1), i.e. at
``(r j + (k - 1) / 2) 0.01 + o`` s. The part-C modules place frame j at
``[j, j + 1) * shift + offset``, so ``shift = 0.01 r`` and ``offset = o + 0.01 (k - 1) / 2 - shift / 2``
(negative for k = 1). `vq_units` refuses negative offsets, so its examples' phone
and word times are shifted by ``-offset`` instead and it gets offset 0 (the same frame-to-time map).
"""

import dataclasses
import logging
import os
import time
from typing import Sequence

import numpy as np

from vgs_jax import audio_features
from vgs_jax import data_sources
from vgs_jax import inference
from vgs_jax.analysis import activations as activations_lib
from vgs_jax.analysis import data_fields
from vgs_jax.analysis import heatmaps
from vgs_jax.analysis import lexicon
from vgs_jax.analysis import localization
from vgs_jax.analysis import semantics
from vgs_jax.analysis import vq_units
from vgs_jax.models.capabilities import FrameClock
from vgs_jax.models.conv_map_layers import downsampled_lengths

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


def is_frame_map(template) -> bool:
    """Whether both towers of the model declare frame maps (matchmaps are defined)."""
    return template.speech_capabilities.has_map and template.image_capabilities.has_map


def frame_clock(recipe: str, clock: FrameClock) -> tuple[float, float]:
    """(frame_shift, frame_offset) seconds of a map on `clock` (see the module docstring)."""
    shift = 0.01 * clock.stride
    return shift, activations_lib.feature_frame_offset(recipe) + 0.01 * (clock.kernel - 1) / 2 - shift / 2


class ModelFns:
    """The callables of the part-C `run_*` functions for one set of parameters (eval mode)."""

    def __init__(self, template, params, model_state, featurizer: audio_features.Featurizer,
                 settings: MapSettings):
        self.template, self.featurizer = template, featurizer
        self.runner = inference.PaddedRunner(template, params, model_state, featurizer,
                                             batch_size=settings.batch_size, pad_frames=settings.pad_frames)

    def audio_maps(self, features, mask):
        """features [B, T, F] f32, mask [B, T] bool -> (maps [B, T', D] f32, mask [B, T'] bool)."""
        out = self.runner.speech(features, mask)
        return out["map"], out["map_mask"]

    def image_maps(self, images):
        """images uint8 [B, S, S, 3] -> (maps [B, H, W, D] f32, mask [B, H, W] bool)."""
        out = self.runner.image(images)
        return out["map"], out["map_mask"]

    def embed(self, features, mask):
        """features [B, T, F] f32, mask [B, T] bool -> [B, E] f32 unit-norm utterance embeddings."""
        return self.runner.speech(features, mask)["embedding"]

    def codes_fn(self, name: str):
        """`run_vq_units`' callable for the quantiser `name` ("quantK"; `capabilities.quantizers`):
        -> (codes [B, T_K] int32, mask [B, T_K] bool)."""
        clock = dict(self.template.speech_capabilities.quantizers)[name]
        halvings = clock.stride.bit_length() - 1

        def fn(features, mask):
            codes = self.runner.codes(features, mask)[name]
            lengths = np.asarray(downsampled_lengths(np.asarray(mask).sum(axis=1), halvings))
            return codes, np.arange(codes.shape[1])[None, :] < lengths[:, None]
        return fn


def model_fns(template, trained_params, config, settings: MapSettings) -> dict[str, ModelFns]:
    """{"trained", "random"} -> ModelFns (random: initial params and initial model state)."""
    featurizer = audio_features.Featurizer.from_recipe(config.features.recipe)
    return {"trained": ModelFns(template, trained_params, template.model_state, featurizer, settings),
            "random": ModelFns(template, template.initial_params, template.initial_model_state, featurizer,
                               settings)}


def load_examples(config, split: str, max_utterances: int) -> list[dict]:
    """The first `max_utterances` examples of `split` of the run's dataset (all fields)."""
    data = config.dataset
    source = data_sources.open_config_split(data, split)
    return [source[i] for i in range(min(max_utterances, len(source)))]


def _shifted(field, key: str, delta: float) -> dict:
    return {key: field[key], "start": np.asarray(field["start"], np.float64) + delta,
            "end": np.asarray(field["end"], np.float64) + delta}


def applicability(name: str, template, config, examples: Sequence[dict]) -> str | None:
    """Why analysis `name` cannot run on this model (what its towers declare) and corpus, or None
    when it can."""
    if name == "vq_units" and not template.speech_capabilities.quantizers:
        return f"speech encoder {config.model.speech_encoder!r} has no quantisers (config.model.speech.vq_on)"
    if name in ("localization", "lexicon", "heatmaps"):
        if not is_frame_map(template):
            return (f"needs frame-map towers (speech and image encoders that output maps); this run has "
                    f"{config.model.speech_encoder!r} + {config.model.image_encoder!r}")
        if config.dataset.image_key != "image":
            return f"the run reads precomputed image vectors ({config.dataset.image_key!r}), not pixels"
    missing = data_fields.missing_fields(name, examples[0] if examples else {})
    return data_fields.not_applicable_reason(missing, "the corpus") if missing else None


def _run_one(name, fns: ModelFns, config, examples, settings: MapSettings, output_dir, which) -> dict | list:
    caps = fns.template.speech_capabilities
    common = dict(featurizer=fns.featurizer, batch_size=settings.batch_size)
    if name in ("localization", "lexicon", "heatmaps"):
        shift, offset = frame_clock(config.features.recipe, caps.map_clock)
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
        for q, clock in caps.quantizers:
            shift, offset = frame_clock(config.features.recipe, clock)
            views = [{"audio": ex["audio"], "phones": _shifted(ex["phones"], "phone", -offset),
                      "words": _shifted(ex["words"], "word", -offset)} for ex in examples]
            out[q] = {**vq_units.run_vq_units(fns.codes_fn(q), views, frame_shift=shift, **common),
                      "frame_shift": shift}
        return out
    sick = None
    if settings.sick_data_dir:
        source = data_sources.open_split("spoken_sick", settings.sick_split, data_dir=settings.sick_data_dir)
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
    template = fns["trained"].template
    for name in (a for a in MAP_ANALYSES if a in analyses):
        reason = applicability(name, template, config, examples)
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
            entry["frame_shift"], entry["frame_offset"] = frame_clock(config.features.recipe,
                                                                      template.speech_capabilities.map_clock)
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
