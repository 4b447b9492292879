"""The analysis suite: every metric of `vgs_jax.analysis` on every layer, trained vs random init.

For each layer ("conv", "gru_0", ...; global analyses also "pooled", the attention output) of
the trained model and of the same model at random initialisation (sota-and-metrics.md D):

* ``probes`` (``local_probe``, ``global_probe``), ``abx`` (``abx_within``, ``abx_across``), ``rsa``,
  ``boundaries`` and ``word_presence``: one row per layer, computed by `layer_metrics` (see its
  docstring for what each metric measures).

Word-level analyses outside the layer table (`report["attention_words"]`, `report["gating"]`):

* ``attention``: the pooling's frame attention per word class (`layer_metrics.attention_scores`).
  Encoders without attention pooling (DAVEnet, ResDAVEnet: mean pooling) get ``{"not_applicable": reason}``.
* ``gating``: image retrieval rank of a shape/colour word's concept when the caption is cut at
  ``gating_fractions`` of the word (`gating`); needs the model, so only `analyze_workdir` runs it,
  and only on corpora with object labels (spoken_shapes; otherwise it is in ``report["not_applicable"]``).

The layer analyses (`LAYER_ANALYSES`) need per-layer frame outputs, which a speech encoder
declares in its `capabilities` (platalea_gru, speech2image, rhn, transformer: one conv frame
clock; davenet, resdavenet: every stage repeated back to the 10 ms input rate); for an encoder
that declares none `analyze_workdir` reports them as not applicable (``report["layer_analyses"]``).
The matchmap, VQ-unit and semantic analyses (`map_analyses.MAP_ANALYSES`) run on the model
itself; see `vgs_jax.analysis.map_analyses`.

`ANALYSES` names what `analyses=` (and `analyze --analyses`) can select; "probes" is the local and
global phone probes. Each analysis reads example fields (`data_fields.FIELDS`: phone/word
alignments, object labels) that only some corpora have; `analyze_workdir` reports the ones the
corpus cannot feed as not applicable, or refuses them when asked for by name. A metric that cannot
be computed on the data (e.g. no across-speaker ABX groups, no word frequent enough) is None.

`reporting` formats the report as text tables and writes it as JSON.
"""

import dataclasses
import os
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from vgs_jax import data_sources
from vgs_jax.analysis import activations as activations_lib
from vgs_jax.analysis import attention_words
from vgs_jax.analysis import boundaries
from vgs_jax.analysis import data_fields
from vgs_jax.analysis import gating
from vgs_jax.analysis import layer_metrics
from vgs_jax.analysis import map_analyses
from vgs_jax.analysis import reporting
from vgs_jax.analysis import rsa
from vgs_jax.analysis import word_presence

LAYER_ANALYSES = ("probes", "abx", "rsa", "boundaries", "word_presence", "attention")
ANALYSES = ("probes", "abx", "rsa", "boundaries", "word_presence", "gating", "attention") + map_analyses.MAP_ANALYSES


@dataclasses.dataclass(frozen=True)
class SuiteSettings:
    """Sizes of the analyses (defaults: the whole suite in a few minutes on 2 CPU cores)."""

    train_fraction: float = 0.8
    max_probe_frames: int = 6000
    probe_c: float = 1.0
    probe_max_iter: int = 300
    max_abx_items: int = 1200
    abx_max_size_group: int = 5
    abx_max_x_across: int = 3
    max_rsa_utterances: int = 200
    tolerance: float = 0.02
    threshold_quantiles: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 0.95, 20), 2).tolist())
    boundary_method: str = "cosine_change"
    word_min_count: int = 10
    gating_fractions: tuple[float, ...] = gating.DEFAULT_FRACTIONS
    gating_context: str = "utterance"
    max_gating_trials: int = 200
    seed: int = 0

    def __post_init__(self):
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}.")
        for name in ("max_probe_frames", "max_abx_items", "abx_max_size_group", "abx_max_x_across",
                     "probe_max_iter", "word_min_count", "max_gating_trials"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.boundary_method not in boundaries.METHODS:
            raise ValueError(f"boundary_method must be one of {boundaries.METHODS}, got {self.boundary_method!r}.")
        if self.gating_context not in gating.CONTEXTS:
            raise ValueError(f"gating_context must be one of {gating.CONTEXTS}, got {self.gating_context!r}.")
        if not self.gating_fractions or any(not 0.0 <= f <= 1.0 for f in self.gating_fractions):
            raise ValueError(f"gating_fractions must be non-empty fractions in [0, 1], got {self.gating_fractions}.")
        if self.max_rsa_utterances < 3:
            raise ValueError(f"max_rsa_utterances must be >= 3, got {self.max_rsa_utterances}.")


def check_analyses(analyses) -> tuple[str, ...]:
    """`analyses` as a tuple in `ANALYSES` order; unknown names raise ValueError listing the valid ones."""
    analyses = tuple(analyses)
    unknown = sorted(set(analyses) - set(ANALYSES))
    if unknown or not analyses:
        raise ValueError(f"Unknown analyses {unknown or analyses}; choose from {list(ANALYSES)}.")
    return tuple(a for a in ANALYSES if a in analyses)


def run_suite(acts: dict[str, activations_lib.Activations], settings: SuiteSettings = SuiteSettings(),
              analyses=ANALYSES, word_classes: dict[str, str] | None = None) -> dict:
    """The selected layer analyses (`LAYER_ANALYSES`; others are ignored) for each model in `acts`.

    `word_classes`: word -> class for the attention analysis (its "function" and "particle" words are also
    left out of the word-presence vocabulary); default the English spoken_shapes grammar's
    (`attention_words.word_classes`, `attention_words.FUNCTION_WORDS`).

    Returns {"settings", "analyses", "num_utterances", "layers", "seconds", <which>: {layer: {metric: ...}}}
    plus "word_vocabulary" and "attention_words": {which: ...} (or {"not_applicable": reason} without
    attention pooling) when selected. Frame layers get every
    metric; "pooled" only global_probe, rsa and word_presence.
    """
    analyses = check_analyses(analyses)
    for which, a in acts.items():
        _, missing = data_fields.split_by_fields([x for x in analyses if x in LAYER_ANALYSES], a.meta[0])
        if missing:
            raise data_fields.MissingFieldsError(data_fields.missing_fields_message(
                missing, a.meta[0], f"the {which!r} activations' meta"))
    with warnings.catch_warnings():  # probes stop at probe_max_iter by design
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _run_suite(acts, settings, analyses, word_classes)


def _run_suite(acts, settings: SuiteSettings, analyses: tuple[str, ...], word_classes: dict[str, str] | None
               ) -> dict:
    excluded = attention_words.FUNCTION_WORDS if word_classes is None else frozenset(
        w for w, c in word_classes.items() if c in ("function", "particle"))
    report = {"settings": dataclasses.asdict(settings), "analyses": list(analyses), "seconds": {}}
    for which, a in acts.items():
        n = len(a.meta)
        if n < 4:
            raise ValueError(f"{which}: {n} utterances are too few to analyse; use max_utterances >= 4.")
        n_train = min(max(int(round(settings.train_fraction * n)), 1), n - 1)
        labels = layer_metrics.phone_frame_labels(a) if "probes" in analyses else None
        items = layer_metrics.abx_items(a, settings) if "abx" in analyses else None
        m_rsa = min(n, settings.max_rsa_utterances)
        if "rsa" in analyses:
            edit = rsa.edit_distance_matrix([[p for p, _, _ in m["phones"]] for m in a.meta[:m_rsa]])
        if "word_presence" in analyses:
            vocab = word_presence.vocabulary([[w for w, _, _ in m["words"]] for m in a.meta],
                                             min_count=settings.word_min_count,
                                             exclude=excluded)
        report["num_utterances"], report["layers"] = n, a.layers + ["pooled"]
        report[which] = {}
        timing = dict.fromkeys(("local_probe", "global_probe", "abx", "rsa", "boundaries", "word_presence",
                                "attention"), 0.0)

        def timed(name, fn):
            clock = time.perf_counter()
            value = fn()
            timing[name] += time.perf_counter() - clock
            return value

        for layer in a.layers + ["pooled"]:
            row, frame_layer = {}, layer != "pooled"
            if "probes" in analyses:
                if frame_layer:
                    row["local_probe"] = timed("local_probe", lambda: layer_metrics.local_probe(
                        a, layer, labels, n_train, settings))
                row["global_probe"] = timed("global_probe", lambda: layer_metrics.global_probe(
                    a, layer, n_train, settings))
            if "abx" in analyses and frame_layer:
                scores = timed("abx", lambda: layer_metrics.abx_scores(a, layer, items, settings))
                row.update({f"abx_{k}": v for k, v in scores.items()})
                row["abx_items"] = len(items)
            if "rsa" in analyses:
                row["rsa"] = timed("rsa", lambda: rsa.rsa_scores(
                    rsa.cosine_distance_matrix(a.mean_pooled(layer)[:m_rsa]), edit))
            if "boundaries" in analyses and frame_layer:
                row["boundaries"] = timed("boundaries", lambda: layer_metrics.boundary_scores(a, layer, settings))
            if "word_presence" in analyses:
                row["word_presence"] = timed("word_presence", lambda: layer_metrics.word_presence_scores(
                    a, layer, vocab, n_train, settings))
            report[which][layer] = row
        if "word_presence" in analyses:
            report["word_vocabulary"] = vocab
        if "attention" in analyses and a.attention is None:
            report["attention_words"] = {"not_applicable": "the speech encoder has no attention pooling "
                                                           "(e.g. DAVEnet/ResDAVEnet mean-pool their frames)"}
        elif "attention" in analyses:
            clock = time.perf_counter()
            report.setdefault("attention_words", {})[which] = layer_metrics.attention_scores(a, word_classes)
            timing["attention"] += time.perf_counter() - clock
        report["seconds"][which] = {k: round(v, 2) for k, v in timing.items()}
    return report


def analyze_workdir(workdir: str, *, checkpoint: str | int = "best", split: str = "validation",
                    max_utterances: int = 200, settings: SuiteSettings = SuiteSettings(),
                    output_dir: str | None = None, analyses=None,
                    map_settings: map_analyses.MapSettings = map_analyses.MapSettings()) -> dict:
    """Runs the selected analyses on the first `max_utterances` captions of `split` (layer analyses
    from cached or extracted activations), writes report.json and one PNG per analysis; returns the report.

    `analyses`: None runs every analysis the corpus has the fields for (`data_fields`; the others
    go to the report's "not_applicable"); names asked for explicitly that the corpus cannot feed
    raise `data_fields.MissingFieldsError` before anything is extracted.
    Files go to `output_dir` (default `workdir/analysis`); the report adds "step", "split",
    "dataset", "checkpoint", "cache_reused", "analyses" (those run), "not_applicable" ({analysis:
    reason} for missing corpus fields), "gating" (when selected), "layer_analyses" (why the layer
    analyses were not applicable, if so), one entry per selected map analysis
    (`map_analyses.run_map_analyses`), "report_path" and "plots". A multilingual run gets the layer
    analyses per language instead (`vgs_jax.multilingual.analysis`: report["languages"]).
    """
    from vgs_jax.analysis import plots  # deferred: matplotlib is only needed here

    explicit = analyses is not None
    analyses = check_analyses(analyses if explicit else ANALYSES)
    models = activations_lib.load_models(workdir, checkpoint, require_frame_outputs=False)
    step, config, template, params = models
    first = data_sources.open_config_split(config.dataset, split)[0]
    analyses, missing = data_fields.split_by_fields(analyses, first)
    where = f"dataset {config.dataset.name!r} split {split!r}"
    if missing and explicit:
        raise data_fields.MissingFieldsError(data_fields.missing_fields_message(missing, first, where))
    output_dir = output_dir or os.path.join(workdir, "analysis")
    os.makedirs(output_dir, exist_ok=True)
    not_applicable = {name: data_fields.not_applicable_reason(lacks, where) for name, lacks in missing.items()}
    report = {"workdir": os.path.abspath(workdir), "checkpoint": str(checkpoint), "step": int(step),
              "split": split, "dataset": config.dataset.name, "cache_reused": {}, "analyses": analyses,
              "not_applicable": not_applicable,
              "settings": dataclasses.asdict(settings), "seconds": {}, "layers": [], "trained": {}, "random": {}}
    report["report_path"] = os.path.join(output_dir, "report.json")
    if config.get("multilingual"):  # each language's tower on its captions
        from vgs_jax.multilingual import analysis as ml_analysis  # deferred: it builds on this module
        report["analyses"], skipped = ml_analysis.split_analyses(analyses, explicit)
        report["not_applicable"].update(skipped)
        report.update(ml_analysis.analyze_languages(
            models, workdir, checkpoint=checkpoint, split=split, max_utterances=max_utterances, settings=settings,
            analyses=report["analyses"], output_dir=output_dir))
        reporting.write_json(report, report["report_path"])
        return report
    layer, meta, examples = [a for a in analyses if a in LAYER_ANALYSES], None, None
    if layer and template.speech_capabilities.frame_outputs:
        _, _, acts, report["cache_reused"] = activations_lib.load_or_extract(
            workdir, checkpoint=checkpoint, split=split, max_utterances=max_utterances, models=models)
        report.update({**run_suite(acts, settings, layer), "analyses": analyses})
        meta = acts["trained"].meta
    elif layer:
        report["layer_analyses"] = {"not_applicable": (
            f"{layer} need per-layer frame outputs, which this run's speech encoder "
            f"{config.model.speech_encoder!r} does not declare")}
    if meta is None and any(a in analyses for a in ("gating",) + map_analyses.MAP_ANALYSES):
        examples = map_analyses.load_examples(config, split, max_utterances)
        report["num_utterances"] = len(examples)
    if "gating" in analyses:
        clock = time.perf_counter()
        report["gating"] = gating.gating_for_models(
            models, meta or activations_lib.read_metadata(examples, len(examples)), split,
            fractions=settings.gating_fractions, context=settings.gating_context,
            max_trials=settings.max_gating_trials, seed=settings.seed)
        report["seconds"]["gating"] = round(time.perf_counter() - clock, 2)
    if any(a in analyses for a in map_analyses.MAP_ANALYSES):
        examples = examples or map_analyses.load_examples(config, split, max_utterances)
        fns = map_analyses.model_fns(template, params["trained"], config, map_settings)
        report.update(map_analyses.run_map_analyses(fns, config, examples, analyses, output_dir, map_settings))
    report["plots"] = plots.write_plots(report, output_dir)
    reporting.write_json(report, report["report_path"])
    return report
