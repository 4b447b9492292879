"""Low-resource textual supervision on spoken_shapes: multi-task vs pipeline at several transcribed fractions.

    python bench/shapes_text_supervision.py --root=runs/text_supervision --size=quick --steps=600

For each fraction F of training utterances with a transcription (`config.text.fraction`), in
`ROOT/<setup>_f<F>`:
  mtl      configs/shapes_mtl_asr.py:fraction=F  (retrieval + CTC, one model)
  pip_ind  configs/shapes_pipeline.py:fraction=F  (recogniser and text -> image model trained apart)
  pip_seq  configs/shapes_pipeline.py:pip=seq,fraction=F, warm-started from pip_ind (text -> image
           retrained on recognised text)
then `python -m vgs_jax.evaluate` on test. Prints speech -> image R@1 / R@10 (the pipelines retrieve
through recognised text) and the recogniser's CER on test per setup and fraction. Resumable: finished
evaluations (`eval_test.json`) are reused. `--size` picks spoken_shapes/quick or small, at 1.0.0 (where
the README table was measured); `--steps` overrides num_train_steps (0 keeps the config's 4 epochs);
`--data_dir` the TFDS dir;
`--set=KEY=VALUE` (repeatable) any other config field, e.g. `--set=batch_size=16`.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SETUPS = ("mtl", "pip_ind", "pip_seq")
CONFIGS = {"mtl": "configs/shapes_mtl_asr.py:v1,fraction={f}", "pip_ind": "configs/shapes_pipeline.py:v1,fraction={f}",
           "pip_seq": "configs/shapes_pipeline.py:v1,pip=seq,fraction={f}"}


def _run(cmd: list[str], log: pathlib.Path) -> None:
    print("$ " + " ".join(cmd), flush=True)
    start = time.time()
    with open(log, "a") as f:
        done = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: {cmd[2]} failed with exit code {done.returncode}; see the end of {log}.")
    print(f"  done in {time.time() - start:.0f} s", flush=True)


def run_setup(args, root: pathlib.Path, setup: str, fraction: float) -> dict:
    """Trains and evaluates one (setup, fraction) unless done; returns its eval JSON."""
    workdir = root / f"{setup}_f{fraction:g}"
    result = workdir / "eval_test.json"
    if result.exists():
        return json.loads(result.read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    flags = [f"--config={CONFIGS[setup].format(f=fraction)}", f"--workdir={workdir}",
             f"--config.dataset.name=spoken_shapes/{args.size}:1.0.0", f"--config.eval_every_steps={10 ** 9}"]
    if args.data_dir:
        flags.append(f"--config.dataset.data_dir={args.data_dir}")
    if args.steps:
        flags.append(f"--config.num_train_steps={args.steps}")
    flags += [f"--config.{item}" for item in args.set]
    if setup == "pip_seq":
        run_setup(args, root, "pip_ind", fraction)
        flags.append(f"--config.init_from={root / f'pip_ind_f{fraction:g}'}")
    log = workdir / "bench.log"
    _run([sys.executable, "-m", "vgs_jax.main", *flags], log)
    _run([sys.executable, "-m", "vgs_jax.evaluate", f"--workdir={workdir}", "--split=test", f"--output={result}"],
         log)
    return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="folder of the runs")
    parser.add_argument("--size", default="small", choices=("quick", "small"))
    parser.add_argument("--fractions", default="0.1,0.3,1.0")
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--data_dir", default="")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE config override (repeatable)")
    args = parser.parse_args()
    setups = args.setups.split(",")
    if set(setups) - set(SETUPS):
        raise SystemExit(f"error: --setups={args.setups}: choose from {','.join(SETUPS)}.")
    fractions = [float(f) for f in args.fractions.split(",")]
    root = pathlib.Path(args.root).resolve()
    rows = []
    for fraction in fractions:
        for setup in setups:
            r = run_setup(args, root, setup, fraction)
            s2i = r["speech_to_image"]
            rows.append(f"| {setup} | {fraction:g} | {100 * s2i['r1']:.1f} | {100 * s2i['r10']:.1f} | "
                        f"{100 * r['text']['error_rate']:.1f} |")
    print(f"\nspoken_shapes/{args.size}:1.0.0 test, speech -> image (pipelines: through recognised text); CER of the "
          "CTC head, greedy decoding\n")
    print("| setup | transcribed fraction | R@1 | R@10 | CER |\n| --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
