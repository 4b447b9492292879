"""Analyses a trained run's speech encoder layer by layer: `python -m vgs_jax.analyze --workdir=DIR`.

Phone probes, phoneme presence, ABX, RSA and phone-boundary detection for every layer of the
trained model and of the same model at random initialisation (see `vgs_jax.analysis.suite`).
Writes `DIR/analysis/report.json` and PNG plots beside it, caches activations in
`DIR/analysis/activations_<trained|random>_<split>.npz`, and prints a table.
"""

from absl import app
from absl import flags
from absl import logging

from vgs_jax.analysis import suite

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "The training run's --workdir.")
flags.DEFINE_string("checkpoint", "best", "'latest', 'best' or a step number.")
flags.DEFINE_string("split", "validation", "Dataset split whose first captions are analysed.")
flags.DEFINE_integer("max_utterances", 200, "Analyse the first N captions of the split.")
flags.DEFINE_string("output_dir", None, "Where report.json and the PNGs go (default DIR/analysis).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax logs every restore at INFO
    report = suite.analyze_workdir(FLAGS.workdir, checkpoint=FLAGS.checkpoint, split=FLAGS.split,
                                   max_utterances=FLAGS.max_utterances, output_dir=FLAGS.output_dir)
    print(f"{report['dataset']} {report['split']}, first {report['num_utterances']} captions, checkpoint step "
          f"{report['step']} (trained/random init, percent):")
    print(suite.format_table(report))
    print(f"Wrote {report['report_path']}")


if __name__ == "__main__":
    app.run(main)
