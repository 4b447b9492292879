"""Analyses a trained run's speech encoder layer by layer: `python -m vgs_jax.analyze --workdir=DIR`.

Phone probes, phoneme presence, ABX, RSA, phone-boundary detection and word presence for every
layer, the pooling attention per word class and word gating, for the trained model and the same
model at random initialisation (see `vgs_jax.analysis.suite`). For frame-map models (DAVEnet,
ResDAVEnet with a map image tower) the matchmap analyses "localization", "lexicon" and "heatmaps",
for ResDAVEnet-VQ "vq_units" per quantiser, and for every model "semantics" (relatedness of retrieved
captions; SICK correlation with `--sick_data_dir`), see `vgs_jax.analysis.map_analyses`. Analyses
that do not apply to the model or corpus are reported as such (phone and word analyses need the
corpus's alignments, see `vgs_jax.analysis.data_fields`). `--analyses=probes,gating` picks a
subset; a named analysis the corpus lacks the fields for is an error. `--boundary_method` picks the
boundary detector (`vgs_jax.analysis.boundaries`). Writes `DIR/analysis/report.json` and one PNG
per analysis beside it (heatmaps: a folder of PNGs per model), caches activations in
`DIR/analysis/activations_<trained|random>_<split>.npz`, and prints tables.

A multilingual run (`configs/shapes_multilingual_*.py`) gets the layer analyses and the attention per
word class for each language's tower on that language's captions, with its phones and word classes
(`vgs_jax.multilingual.analysis`); report.json holds them under "languages", PNGs go to one folder per
language.

`--wav_list=FILE` (one WAV path per line, relative to FILE's folder) instead writes the
activations of every layer, with frame times and the pooling attention, of those files to
`<output_dir>/wav_activations_<trained|random>.npz` (no alignments needed; see
`vgs_jax.analysis.activations` for the layout and `activations.load` to read it).

A `python -m vgs_jax.phoneme_train` run (Gelderloos & Chrupała 2016, text as phonemes) gets that
paper's analyses instead: word-end probes and RSA with phoneme edit distance and word meaning per
layer (`vgs_jax.analysis.phoneme_levels`).
"""

from absl import app
from absl import flags

from vgs_jax import cli
from vgs_jax import phoneme_train
from vgs_jax.analysis import activations
from vgs_jax.analysis import boundaries
from vgs_jax.analysis import data_fields
from vgs_jax.analysis import map_analyses
from vgs_jax.analysis import phoneme_levels
from vgs_jax.analysis import reporting
from vgs_jax.analysis import suite
from vgs_jax.multilingual import analysis as ml_analysis

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "The training run's --workdir.")
flags.DEFINE_string("checkpoint", "best", "'latest', 'best' or a step number.")
flags.DEFINE_string("split", "validation", "Dataset split whose first captions are analysed.")
flags.DEFINE_integer("max_utterances", 200, "Analyse the first N captions of the split.")
flags.DEFINE_string("output_dir", None, "Where report.json and the PNGs go (default DIR/analysis).")
flags.DEFINE_list("analyses", list(suite.ANALYSES),
                  f"Analyses to run, from {list(suite.ANALYSES)} (default: every one the corpus has the fields for).")
flags.DEFINE_enum("boundary_method", suite.SuiteSettings.boundary_method, list(boundaries.METHODS),
                  "Boundaries: peaks of the cosine change between consecutive frames, or of each frame's L2 norm "
                  "(Harwath & Glass 2019).")
flags.DEFINE_integer("word_min_count", suite.SuiteSettings.word_min_count,
                     "Word presence: probe content words with at least this many occurrences.")
flags.DEFINE_enum("gating_context", suite.SuiteSettings.gating_context, ["utterance", "word"],
                  "Gating: keep the caption before the word ('utterance') or the word alone ('word').")
flags.DEFINE_integer("max_gating_trials", suite.SuiteSettings.max_gating_trials,
                     "Gating: at most this many target words (a seeded sample).")
flags.DEFINE_string("sick_data_dir", None, "Semantics: TFDS data_dir with spoken_sick built (SICK correlation).")
flags.DEFINE_string("sick_split", map_analyses.MapSettings.sick_split, "Semantics: spoken_sick split.")
flags.DEFINE_integer("max_sick_pairs", map_analyses.MapSettings.max_sick_pairs, "Semantics: first N SICK pairs.")
flags.DEFINE_string("word_vectors", None,
                    "Semantics: word2vec text file (default: PPMI-SVD vectors trained on the captions).")
flags.DEFINE_integer("lexicon_clusters", map_analyses.MapSettings.lexicon_clusters, "Lexicon: k-means clusters.")
flags.DEFINE_integer("heatmap_examples", map_analyses.MapSettings.heatmap_examples,
                     "Heatmaps: PNGs for the first N captions.")
flags.DEFINE_string("wav_list", None, "File of WAV paths: extract their activations instead of analysing.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if phoneme_train.is_run(FLAGS.workdir):
        if FLAGS["analyses"].present or FLAGS.wav_list:
            raise app.UsageError(f"{FLAGS.workdir} is a phoneme_train run (text input): it gets its own two "
                                 "analyses; drop --analyses / --wav_list.")
        report = phoneme_levels.analyze_workdir(FLAGS.workdir, split=FLAGS.split, max_utterances=FLAGS.max_utterances,
                                                output_dir=FLAGS.output_dir)
        print(phoneme_levels.format_report(report))
        print(f"Wrote {report['report_path']}")
        return
    if FLAGS.wav_list:
        paths = activations.extract_wav_list(FLAGS.workdir, FLAGS.wav_list, checkpoint=FLAGS.checkpoint,
                                             output_dir=FLAGS.output_dir)
        for which, path in paths.items():
            print(f"Wrote {which} activations to {path}")
        return
    try:
        analyses = suite.check_analyses(FLAGS.analyses) if FLAGS["analyses"].present else None
    except ValueError as e:
        raise app.UsageError(f"--analyses: {e}") from e
    settings = suite.SuiteSettings(word_min_count=FLAGS.word_min_count, gating_context=FLAGS.gating_context,
                                   max_gating_trials=FLAGS.max_gating_trials, boundary_method=FLAGS.boundary_method)
    try:
        map_settings = map_analyses.MapSettings(
            sick_data_dir=FLAGS.sick_data_dir, sick_split=FLAGS.sick_split, max_sick_pairs=FLAGS.max_sick_pairs,
            word_vectors=FLAGS.word_vectors, lexicon_clusters=FLAGS.lexicon_clusters,
            heatmap_examples=FLAGS.heatmap_examples)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    try:
        report = suite.analyze_workdir(FLAGS.workdir, checkpoint=FLAGS.checkpoint, split=FLAGS.split,
                                       max_utterances=FLAGS.max_utterances, output_dir=FLAGS.output_dir,
                                       settings=settings, analyses=analyses, map_settings=map_settings)
    except (data_fields.MissingFieldsError, ml_analysis.UnsupportedAnalysisError) as e:
        raise app.UsageError(f"--analyses: {e}") from e
    if "languages" in report:  # a multilingual run: one analysis per language
        print(f"{report['dataset']} {report['split']}, first captions of each language, checkpoint step "
              f"{report['step']} (trained/random init, percent):")
        print(ml_analysis.format_languages(report))
        for name, reason in report["not_applicable"].items():
            print(f"{name}: not applicable ({reason})")
        print(f"Wrote {report['report_path']}")
        return
    print(f"{report['dataset']} {report['split']}, first {report['num_utterances']} captions, checkpoint step "
          f"{report['step']} (trained/random init, percent):")
    if report["layers"]:
        print(reporting.format_table(report))
    elif "layer_analyses" in report:
        print(f"layer analyses: not applicable ({report['layer_analyses']['not_applicable']})")
    words = reporting.format_word_analyses(report)
    if words:
        print(words)
    for name, reason in report["not_applicable"].items():
        print(f"{name}: not applicable ({reason})")
    maps = map_analyses.format_map_analyses({k: report[k] for k in map_analyses.MAP_ANALYSES if k in report})
    if maps:
        print(maps)
    print(f"Wrote {report['report_path']}")


if __name__ == "__main__":
    cli.run(main)
