"""spoken_shapes 2.0 leaderboard: every configs/shapes_*.py trained with its default recipe.

    python bench/shapes_leaderboard.py --root=/tmp/shapes_leaderboard [--configs=gru,rhn]
    python bench/shapes_leaderboard.py --root=/tmp/shapes_leaderboard --table_only

For each config, in its own workdir `ROOT/<name>`: `python -m vgs_jax.main --config=
configs/shapes_<name>.py:v2` (spoken_shapes/small:2.0.0, built on first use into --data_dir),
then `python -m vgs_jax.evaluate` on test, test_compositional and test_unseen_speakers.
Resumable: a finished evaluation (`ROOT/<name>/leaderboard_<split>.json`) is not redone, and a
config with all of them is skipped; an interrupted training resumes from its last checkpoint.
Prints one markdown table: R@1, R@10 and median rank, speech->image and image->speech, of every
finished config beside the oracle ceiling and the transcript TF-IDF baseline (from
`tfds_builders/spoken_shapes/baselines.py` on the same planned splits, as in
bench/shapes_baselines.py; they rank images only, so their image->speech cells are empty).
Configs not finished yet are listed under the table; a config whose training or evaluation
fails is reported there too, and the others still run.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tfds_builders.spoken_shapes import baselines, builder_v2  # noqa: E402
from tfds_builders.spoken_shapes.spoken_shapes_dataset_builder import Builder  # noqa: E402

SPLITS = ("test", "test_compositional", "test_unseen_speakers")
DIRECTIONS = ("speech_to_image", "image_to_speech")


def all_configs() -> list[str]:
    """Names <name> of configs/shapes_<name>.py: gru (the default model) first, then sorted."""
    return sorted((p.stem[len("shapes_"):] for p in (ROOT / "configs").glob("shapes_*.py")),
                  key=lambda name: (name != "gru", name))


class RunFailed(RuntimeError):
    """A training or evaluation command exited with an error."""


def _run(cmd: list[str], log: pathlib.Path) -> None:
    print("$ " + " ".join(cmd), flush=True)
    start = time.time()
    with open(log, "a") as f:
        done = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RunFailed(f"{cmd[2]} failed with exit code {done.returncode} after "
                        f"{time.time() - start:.0f} s; see the end of {log}.")
    print(f"  done in {time.time() - start:.0f} s", flush=True)


def result_path(root: pathlib.Path, name: str, split: str) -> pathlib.Path:
    return root / name / f"leaderboard_{split}.json"


def train_and_evaluate(name: str, root: pathlib.Path, data_dir: str) -> None:
    """Trains configs/shapes_<name>.py:v2 in root/name and evaluates it (skips what is done)."""
    if all(result_path(root, name, s).exists() for s in SPLITS):
        print(f"{name}: finished, skipped.", flush=True)
        return
    workdir = root / name
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "leaderboard.log"
    python = sys.executable
    _run([python, "-m", "vgs_jax.main", f"--config=configs/shapes_{name}.py:v2",
          f"--workdir={workdir}", f"--config.dataset.data_dir={data_dir}"], log)
    for split in SPLITS:
        out = result_path(root, name, split)
        if not out.exists():
            _run([python, "-m", "vgs_jax.evaluate", f"--workdir={workdir}", f"--split={split}",
                  f"--output={out}"], log)


def _cells(m: dict | None) -> list[str]:
    if m is None:
        return ["", "", ""]
    return [f"{100 * m['r1']:.1f}", f"{100 * m['r10']:.1f}", f"{m['medr']:g}"]


def table(root: pathlib.Path, names: list[str], size: str = "small") -> str:
    """The markdown leaderboard of the finished configs, the oracle and TF-IDF (English) of
    spoken_shapes/<size>:2.0.0 (the configs train on small)."""
    plans = builder_v2.plan_config(Builder.builder_configs[size])
    reference = baselines.evaluate(plans, SPLITS, ("en",))
    header = ["model"] + [f"{s} {d} R@1 / R@10 / medr" for s in SPLITS
                          for d in ("s->i", "i->s")]
    rows = []
    for label, key in (("oracle ceiling", "oracle"), ("transcript TF-IDF (en)", "tfidf_en")):
        row = [label]
        for split in SPLITS:
            row += [" / ".join(_cells(reference[split][key])), ""]
        rows.append(row)
    missing = []
    for name in names:
        paths = [result_path(root, name, s) for s in SPLITS]
        if not all(p.exists() for p in paths):
            missing.append(name)
            continue
        row = [f"shapes_{name}"]
        for path in paths:
            results = json.loads(path.read_text())
            row += [" / ".join(_cells(results[d])) for d in DIRECTIONS]
        rows.append(row)
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if missing:
        lines.append(f"\nNot finished yet: {', '.join('shapes_' + n for n in missing)}.")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="One workdir per config under it.")
    parser.add_argument("--data_dir", default=os.path.expanduser("~/tensorflow_datasets"))
    parser.add_argument("--configs", default=",".join(all_configs()),
                        help=f"Comma-separated subset of {all_configs()}.")
    parser.add_argument("--table_only", action="store_true", help="Train nothing; print the table.")
    args = parser.parse_args()
    names = [n for n in args.configs.split(",") if n]
    unknown = sorted(set(names) - set(all_configs()))
    if unknown:
        parser.error(f"--configs: no configs/shapes_<name>.py for {unknown}; "
                     f"choose from {all_configs()}.")
    root = pathlib.Path(args.root).resolve()
    failed = []
    if not args.table_only:
        for name in names:
            try:
                train_and_evaluate(name, root, args.data_dir)
            except RunFailed as e:  # Go on with the other configs.
                print(f"{name}: {e}", flush=True)
                failed.append(f"shapes_{name}: {e}")
    print(table(root, names))
    if failed:
        print("\nFailed:\n" + "\n".join(failed))


if __name__ == "__main__":
    main()
