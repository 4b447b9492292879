"""SkyPilot task YAML for one training run (`sky launch TASK.yaml`), single- or multi-node.

The task syncs the checkout (`workdir: .`, run from its root), installs it in `setup`, and runs
`python -m vgs_jax.main` in `run`. With `num_nodes` > 1 every node runs the same command and joins
one JAX job through SkyPilot's environment: coordinator = the first line of ``SKYPILOT_NODE_IPS``,
``--num_processes=$SKYPILOT_NUM_NODES``, ``--process_id=$SKYPILOT_NODE_RANK``. The run's --workdir
is a path on the nodes that all of them share (Orbax writes one checkpoint from all of them) and
that outlives them (a relaunched spot job resumes from it): `mounts` maps such paths to buckets
(SkyPilot `file_mounts`, mode MOUNT).
Schema: https://docs.skypilot.co/en/latest/reference/yaml-spec.html
"""

import hashlib
import json
import shlex

from vgs_jax import distributed

SETUP = "pip install -e ."


def _quote(text: str) -> str:
    return json.dumps(text)  # a double-quoted YAML scalar


def _block(text: str, indent: int = 2) -> str:
    """A YAML literal block scalar (`|`) holding `text`."""
    pad = " " * indent
    return "|\n" + "\n".join(pad + line if line else "" for line in text.splitlines()) + "\n"


def run_command(train_args: list[str], num_nodes: int, port: int = distributed.DEFAULT_PORT) -> str:
    """The task's `run` script: `python -m vgs_jax.main ARGS` (+ the multi-node flags)."""
    lines = ["python -m vgs_jax.main"] + [shlex.quote(a) for a in train_args]
    if num_nodes > 1:
        lines += [f'--coordinator_address="$(echo "$SKYPILOT_NODE_IPS" | head -n1):{port}"',
                  '--num_processes="$SKYPILOT_NUM_NODES"', '--process_id="$SKYPILOT_NODE_RANK"']
    return "set -e\n" + " \\\n  ".join(lines) + "\n"


def task_yaml(name: str, train_args: list[str], *, workdir: str, num_nodes: int = 1,
              accelerators: str | None = None, cloud: str | None = None, use_spot: bool = False,
              mounts: dict[str, str] | None = None, setup: str = SETUP) -> str:
    """SkyPilot task YAML text (a mapping with name, num_nodes, resources, workdir, file_mounts,
    setup, run). `train_args` are main's flags except --workdir, which is `workdir`; `mounts`:
    {path on the nodes: bucket URI}."""
    if num_nodes < 1:
        raise ValueError(f"--num_nodes={num_nodes} must be >= 1.")
    if not name or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789-" for c in name):
        raise ValueError(f"SkyPilot task name {name!r}: use lower-case letters, digits and '-'.")
    resources = {}
    if accelerators:
        resources["accelerators"] = accelerators
    if cloud:
        resources["cloud"] = cloud
    if use_spot:
        resources["use_spot"] = True
    args = list(train_args) + [f"--workdir={workdir}"]
    out = [f"name: {name}", f"num_nodes: {num_nodes}"]
    if resources:
        out.append("resources:")
        out += [f"  {k}: {'true' if v is True else _quote(v)}" for k, v in resources.items()]
    out.append("workdir: .")
    if mounts:
        out.append("file_mounts:")
        for path, source in mounts.items():
            out += [f"  {_quote(path)}:", f"    source: {_quote(source)}", "    mode: MOUNT"]
    out.append("setup: " + _block(setup).rstrip("\n"))
    out.append("run: " + _block(run_command(args, num_nodes)).rstrip("\n"))
    return "\n".join(out) + "\n"


def task_name(point_name: str, prefix: str = "vgs") -> str:
    """A SkyPilot/cluster-safe name (lower case, digits, '-', at most 63) for a sweep point."""
    cleaned = "".join(c if c.isalnum() else "-" for c in point_name.lower())
    name = "-".join(filter(None, f"{prefix}-{cleaned}".split("-")))
    if len(name) > 63:
        name = name[:54].rstrip("-") + "-" + hashlib.sha256(point_name.encode()).hexdigest()[:8]
    return name
