"""Trains a visually grounded speech model: `python -m vgs_jax.main --config=CONFIG --workdir=DIR`.

Resumes from the latest checkpoint in DIR. Override any config field on the command line,
e.g. `--config.batch_size=64 --config.optimizer.lr_max=1e-4` (the config is locked: a typo fails).
"""

from absl import app
from absl import flags
import jax

from vgs_jax import cli
from vgs_jax import config_lib
from vgs_jax import train

FLAGS = flags.FLAGS
config_lib.define_config_flag("config", "Config file, e.g. configs/shapes_gru.py[:tiny] (also outside the checkout).")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and TensorBoard logs.")
flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() (multi-host launches).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if FLAGS.multihost:
        jax.distributed.initialize()
    if jax.process_index() == 0:
        print(f"JAX process 0 of {jax.process_count()}; local devices: {jax.local_devices()}", flush=True)
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    cli.run(main)
