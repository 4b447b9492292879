"""Several JAX processes as one training job: `jax.distributed.initialize` from the binaries' flags.

A launch names its coordinator in one of two ways:

* explicitly, ``coordinator_address="HOST:PORT", num_processes=N, process_id=I`` on every process
  (process 0 listens on PORT of HOST). This works anywhere: N processes on one CPU machine (their
  collectives go through gloo), SkyPilot nodes (``SKYPILOT_NODE_IPS``' first line,
  ``SKYPILOT_NUM_NODES``, ``SKYPILOT_NODE_RANK``), any hand-made multi-node GPU job;
* by cluster auto-detection (``auto=True``, no address): Cloud TPU pod slices, Slurm (``srun``),
  Open MPI (``mpirun``) and Kubernetes, whose environment tells JAX everything.

After it, `jax.devices()` lists the devices of all processes; each process feeds its own rows of
every global batch (`input_pipeline`), and Orbax writes one checkpoint from all of them.
"""

import jax

DEFAULT_PORT = 12355  # used in the README's examples; any free port works


def initialize(*, coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False,
               initialization_timeout: int = 300) -> bool:
    """Joins this process to a multi-process JAX job; returns whether it did.

    Nothing happens when no argument is given and `auto` is False (a single-process run).
    Raises ValueError for an incomplete or inconsistent set of arguments, naming the flags.
    `initialization_timeout` (s): how long to wait for all processes to reach the coordinator.
    """
    explicit = {"coordinator_address": coordinator_address, "num_processes": num_processes,
                "process_id": process_id}
    given = {k: v for k, v in explicit.items() if v is not None}
    if not given and not auto:
        return False
    if given and len(given) != 3:
        missing = sorted(set(explicit) - set(given))
        raise ValueError(
            f"--{' --'.join(sorted(given))} given without --{' --'.join(missing)}: a multi-process "
            f"launch names all three (e.g. --coordinator_address=localhost:{DEFAULT_PORT} "
            "--num_processes=2 --process_id=0), or none of them with --multihost on a TPU pod "
            "slice, Slurm, Open MPI or Kubernetes (detected automatically).")
    if given:
        host, sep, port = coordinator_address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"--coordinator_address={coordinator_address!r} must be HOST:PORT, e.g. "
                             f"localhost:{DEFAULT_PORT} or 10.0.0.2:{DEFAULT_PORT} (process 0's host).")
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ValueError(f"--process_id={process_id} must be in [0, --num_processes={num_processes}) "
                             "and --num_processes >= 1.")
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes need it
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               initialization_timeout=initialization_timeout)
    if given and jax.process_count() != num_processes:
        raise RuntimeError(f"JAX reports {jax.process_count()} processes after initialisation, not "
                           f"--num_processes={num_processes}.")
    return True


def describe() -> str:
    """One line: this process's place in the job and its devices."""
    return (f"JAX process {jax.process_index()} of {jax.process_count()}; {jax.local_device_count()} local "
            f"of {jax.device_count()} {jax.devices()[0].platform} devices.")
