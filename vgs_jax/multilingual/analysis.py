"""`python -m vgs_jax.analyze` of a multilingual run: each language's speech tower on its own captions.

For every language L of `config.multilingual`, the layer analyses of `vgs_jax.analysis.suite` (phone
probes, phoneme presence, ABX, RSA, phone boundaries, word presence, attention per word class) run on the
first `max_utterances` captions of the split spoken in L (`data.parallel_views`: caption i of every language
describes the same meaning) through L's tower (`model.language_templates`), for the trained model and its
random initialisation. Phone analyses use L's phones (the espeak-ng phones of L's alignments, stress
removed: the probes' classes, ABX categories and RSA edit distances are L's phone set, listed in the
report); word analyses use L's words and word classes (`word_classes.word_classes(L)`: Hindi postpositions
and Japanese particles are the ``particle`` class, as Havard et al. 2019a's Japanese "ga").

Gating and the map analyses read English concept words or need frame-map towers: a multilingual run
reports them as not applicable (asked for by name, `UnsupportedAnalysisError`).

Report (beside `suite.analyze_workdir`'s common keys): ``languages`` = {L: `suite.run_suite`'s report plus
"phone_set" (sorted phones of the analysed captions), "cache_reused" and "plots"}. Activations are cached per
language (`activations.cache_path(..., language=L)`), plots go to `output_dir/<L>/`.
"""

from vgs_jax import data_sources
from vgs_jax.analysis import activations as activations_lib
from vgs_jax.analysis import suite
from vgs_jax.multilingual import data
from vgs_jax.multilingual import model as ml_model
from vgs_jax.multilingual import word_classes

NOT_FOR_MULTILINGUAL = "multilingual runs get the layer and attention analyses per language only"


class UnsupportedAnalysisError(ValueError):
    """An analysis asked for by name that multilingual runs do not support."""


def split_analyses(analyses, explicit: bool) -> tuple[list[str], dict[str, str]]:
    """(the per-language analyses among `analyses`, {other analysis: why not applicable}); asked for by name
    (`explicit`), an unsupported one raises `UnsupportedAnalysisError` naming what can run."""
    runnable = [a for a in analyses if a in suite.LAYER_ANALYSES]
    others = [a for a in analyses if a not in suite.LAYER_ANALYSES]
    if others and explicit:
        raise UnsupportedAnalysisError(f"{others}: {NOT_FOR_MULTILINGUAL}; choose from {list(suite.LAYER_ANALYSES)}.")
    return runnable, {a: NOT_FOR_MULTILINGUAL for a in others}


def analyze_languages(models, workdir: str, *, checkpoint, split: str, max_utterances: int,
                      settings: suite.SuiteSettings, analyses, output_dir: str) -> dict:
    """{"languages": {L: report}} (module doc) for `models` = `activations.load_models(workdir, ...)`."""
    from vgs_jax.analysis import plots  # deferred: matplotlib is only needed here

    step, config, template, params = models
    if not template.speech_capabilities.frame_outputs:
        raise ValueError(f"Layer analyses need per-layer frame outputs, which the speech encoder "
                         f"{config.model.speech_encoder!r} of {workdir} does not declare.")
    views = data.parallel_views(data_sources.open_config_split(config.dataset, split), config.multilingual)
    templates = ml_model.language_templates(template)
    out = {}
    for language, view in views.items():
        _, _, acts, reused = activations_lib.load_or_extract(
            workdir, checkpoint=checkpoint, split=split, max_utterances=max_utterances,
            models=(step, config, templates[language], params), source=view, language=language)
        known = language in word_classes.LANGUAGES
        report = suite.run_suite(acts, settings, [a for a in analyses if known or a != "attention"],
                                 word_classes=word_classes.word_classes(language) if known else None)
        if "attention" in analyses and not known:
            report["attention_words"] = {"not_applicable": f"word classes exist for spoken_shapes 2.0.0's "
                                                           f"{word_classes.LANGUAGES}, not {language!r}"}
        report["phone_set"] = sorted({p for m in acts["trained"].meta for p, _, _ in m["phones"]})
        report["cache_reused"] = reused
        report["plots"] = plots.write_plots(report, f"{output_dir}/{language}")
        out[language] = report
    return {"languages": out}


def format_languages(report: dict, top_words: int = 5) -> str:
    """Per language: its layer table and attention per word class (trained/random, `reporting`), and the
    `top_words` trained words of highest attention density (with >= 3 tokens)."""
    from vgs_jax.analysis import reporting  # pylint: disable=import-outside-toplevel (suite imports it too)

    lines = []
    for language, sub in report["languages"].items():
        lines.append(f"== {language}: {sub['num_utterances']} captions, {len(sub['phone_set'])} phones")
        if sub["layers"]:
            lines.append(reporting.format_table(sub))
        words = reporting.format_word_analyses(sub)
        if words:
            lines.append(words)
        per_word = (sub.get("attention_words", {}).get("trained") or {}).get("words", {})
        dense = sorted(((v["density"], w, v["class"]) for w, v in per_word.items() if v["tokens"] >= 3), reverse=True)
        if dense:
            lines.append("densest words (trained): " + ", ".join(
                f"{w} ({c}) {d:.2f}" for d, w, c in dense[:top_words]))
    return "\n".join(lines)
