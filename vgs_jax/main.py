"""Trains a visually grounded speech model: `python -m vgs_jax.main --config=CONFIG --workdir=DIR`.

Resumes from the latest checkpoint in DIR. Override any config field on the command line,
e.g. `--config.batch_size=64 --config.optimizer.lr_max=1e-4` (the config is locked: a typo fails).

Several processes train one model when each is started with the same flags plus
`--coordinator_address=HOST:PORT --num_processes=N --process_id=I` (HOST: process 0's machine),
or with `--multihost` alone where JAX detects the cluster (TPU pod slices, Slurm, Open MPI,
Kubernetes); see `vgs_jax.distributed` and the README's "Scaling up".
"""

from absl import app
from absl import flags
import jax

from vgs_jax import cli
from vgs_jax import config_lib
from vgs_jax import distributed
from vgs_jax import train

FLAGS = flags.FLAGS
config_lib.define_config_flag("config", "Config file, e.g. configs/shapes_gru.py[:tiny] (also outside the checkout).")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and TensorBoard logs.")
flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() with cluster auto-detection "
                  "(TPU pod slices, Slurm, Open MPI, Kubernetes).")
flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 for a multi-process run "
                    "(with --num_processes and --process_id), e.g. localhost:12355 on one machine.")
flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
flags.DEFINE_integer("process_id", None, "This process's rank, 0 .. num_processes - 1.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        distributed.initialize(coordinator_address=FLAGS.coordinator_address, num_processes=FLAGS.num_processes,
                               process_id=FLAGS.process_id, auto=FLAGS.multihost)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    if jax.process_index() == 0:
        print(distributed.describe(), flush=True)
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
    cli.run(main)
