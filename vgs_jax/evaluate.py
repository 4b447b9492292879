"""Scores retrieval from a trained checkpoint: `python -m vgs_jax.evaluate --workdir=DIR`.

Uses the config saved with the checkpoint; prints a table (R@1/5/10, median and mean rank, both
directions; on datasets that store consistent image ids, also the oracle's R@N and the
consistent-image R@1, see vgs_jax/ceiling.py; for keyword-spotting runs also exact and semantic
P@10/P@N/EER, see vgs_jax/kws/evaluation.py; for multilingual runs also per-language and
cross-lingual speech->speech retrieval, see vgs_jax/multilingual/evaluation.py; for moving_shapes video
runs clip retrieval, audio -> video as speech_to_image, see vgs_jax/video/evaluation.py; for models with a CTC
text head the character or phone error rate, see vgs_jax/text_evaluation.py) and writes it as JSON to
`DIR/eval_<split>_step<N>.json` (or --output).
"""

import json
import os

from absl import app
from absl import flags

from vgs_jax import ceiling
from vgs_jax import cli
from vgs_jax import evaluation
from vgs_jax import retrieval
from vgs_jax import text_evaluation
from vgs_jax.kws import evaluation as kws_evaluation
from vgs_jax.multilingual import evaluation as ml_evaluation
from vgs_jax.video import evaluation as video_evaluation

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "The training run's --workdir.")
flags.DEFINE_string("checkpoint", "latest", "'latest', 'best' or a step number.")
flags.DEFINE_string("split", "test", "Dataset split to evaluate.")
flags.DEFINE_integer("batch_size", None, "Embedding batch size (default: the config's eval_batch_size).")
flags.DEFINE_string("output", None, "JSON output path (default DIR/eval_<split>_step<N>.json).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.batch_size is not None and FLAGS.batch_size < 1:
        raise app.UsageError(f"--batch_size={FLAGS.batch_size} must be >= 1.")
    # moving_shapes video runs (configs/moving_shapes_*.py): clip retrieval, audio <-> video
    evaluate_fn = (video_evaluation.evaluate_checkpoint if video_evaluation.is_video_run(FLAGS.workdir, FLAGS.checkpoint)
                   else evaluation.evaluate_checkpoint)
    step, config, results = evaluate_fn(
        FLAGS.workdir, checkpoint=FLAGS.checkpoint, split=FLAGS.split, batch_size=FLAGS.batch_size
    )
    print(f"{config.dataset.name} {FLAGS.split}, checkpoint step {step}:")
    print(retrieval.format_table(results))
    if "ceiling" in results:  # Datasets whose captions fit several images (spoken_shapes 2.0).
        print(ceiling.format_ceiling(results))
    if config.get("multilingual"):  # per language and cross-lingual (configs/shapes_multilingual_*.py)
        print(ml_evaluation.format_results(results))
    if config.get("kws"):  # keyword spotting from visual tags (configs/shapes_kws.py)
        results["keyword_spotting"] = kws_evaluation.evaluate_checkpoint(
            FLAGS.workdir, checkpoint=FLAGS.checkpoint, split=FLAGS.split, batch_size=FLAGS.batch_size)
        print(kws_evaluation.format_results(results["keyword_spotting"]))
    if config.get("text"):  # a CTC speech -> text head (configs/shapes_mtl_asr.py, shapes_pipeline.py)
        results["text"] = text_evaluation.evaluate_checkpoint(
            FLAGS.workdir, checkpoint=FLAGS.checkpoint, split=FLAGS.split, batch_size=FLAGS.batch_size)
        print(text_evaluation.format_results(results["text"]))
    output = FLAGS.output or os.path.join(FLAGS.workdir, f"eval_{FLAGS.split}_step{step}.json")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump({"step": step, "split": FLAGS.split, "dataset": config.dataset.name, **results}, f, indent=2)
    print(f"Wrote {output}")


if __name__ == "__main__":
    cli.run(main)
