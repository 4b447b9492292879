"""Train step of the DAVEnet, ResDAVEnet and Transformer speech encoders, vgs_jax vs PyTorch, alternating pairs.

One step = `bench/encoders_bench.py`'s: speech encoder forward in train mode + platalea hinge loss against
fixed random targets of the embedding size + backward + Adam (+ BatchNorm statistics); the PyTorch side is
`bench/torch_encoders.py` (same layers, parameter counts asserted equal), same batch, 2 threads. Reference
shapes (log-mel 40 for the conv encoders, MFCC 39 for the Transformer), lengths uniform in [T / 2, T]:

  davenet      configs/places_davenet.py       widths 128..1024, batch 100 x 2048 frames
  resdavenet   configs/places_resdavenet.py    widths 128..1024, 2 blocks/stage, kernel 9, batch 64 x 2048
  transformer  configs/flickr8k_transformer.py d_model 512, 8 heads, 4 layers, batch 32 x 500

`--batch_scale` multiplies the batch (0.125: the README's CPU rows). Method of `bench/paired.py`: each side in
its own process, median s/step over `--pairs` alternating pairs after a warm-up step, median per-pair
speed-up (wall and CPU seconds), our compile time separately, peak RSS per process.

Usage (PyTorch from `pip install -e '.[bench]'`):
  python bench/encoder_pairs_bench.py --encoders davenet,resdavenet,transformer --batch_scale 0.125 --pairs 5
"""
import argparse
import sys
import time

from paired import Side, compare, print_table, random_batch, torch_env

ENCODERS = {
    "davenet": (dict(widths=(128, 256, 512, 512, 1024), length_rounding="floor"), 40, 100, 2048),
    "resdavenet": (dict(widths=(128, 256, 256, 512, 1024), depths=(2, 2, 2, 2), kernel=9, jitter=0.12,
                        jitter_mode="reference", length_rounding="floor"), 40, 64, 2048),
    "transformer": (dict(conv_channels=64, conv_kernel=6, conv_stride=2, conv_bias=False, d_model=512,
                         num_heads=8, num_layers=4, ff_dim=1024, dropout=0.0, attention_hidden=128,
                         positions="none", mask_padding=True), 39, 32, 500),
}
EMBED = {"davenet": 1024, "resdavenet": 1024, "transformer": 512}


def train_step_work(encoder: str, speech: dict, batch: dict, seed: int = 0):
    """(info, run) of our jitted step (`encoders_bench.make_step`) for `bench/paired.py`."""
    import jax
    import jax.numpy as jnp
    import ml_collections
    import numpy as np
    from flax import nnx

    from encoders_bench import make_step
    from vgs_jax.models import registry

    data = random_batch(**batch)
    model = registry.build_speech_encoder(encoder, ml_collections.ConfigDict(speech), batch["num_features"],
                                          rngs=nnx.Rngs(seed))
    step, params, state, opt_state = make_step(model, model.capabilities.has_map)
    x, mask, target = (jnp.asarray(data[k]) for k in ("audio", "mask", "image"))
    start = time.perf_counter()
    compiled = step.lower(params, state, opt_state, x, mask, target, jax.random.key(0)).compile()
    compile_s = time.perf_counter() - start
    carry = {"params": params, "state": state, "opt_state": opt_state, "k": 0}

    def run():
        carry["k"] += 1
        carry["params"], carry["state"], carry["opt_state"], loss = compiled(
            carry["params"], carry["state"], carry["opt_state"], x, mask, target, jax.random.key(carry["k"]))
        if not np.isfinite(float(loss)):
            raise FloatingPointError(f"loss became {float(loss)}")

    run()  # warm-up
    num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    return {"params": num_params, "compile_s": compile_s, "jax": jax.__version__}, run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default=",".join(ENCODERS), help=f"comma list of {list(ENCODERS)}")
    parser.add_argument("--batch_scale", type=float, default=0.125, help="fraction of the reference batch")
    parser.add_argument("--pairs", type=int, default=5, help="alternating (ours, PyTorch) step pairs")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads (XLA uses every core)")
    parser.add_argument("--torch_python", default=sys.executable, help="interpreter with torch installed")
    args = parser.parse_args()
    names = [n.strip() for n in args.encoders.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENCODERS]
    if unknown:
        parser.error(f"unknown --encoders {unknown}; valid: {list(ENCODERS)}")
    if args.pairs < 1 or args.batch_scale <= 0:
        parser.error("--pairs must be >= 1 and --batch_scale > 0")
    rows = []
    for name in names:
        speech, num_features, ref_batch, frames = ENCODERS[name]
        batch = dict(seed=0, batch=max(2, round(ref_batch * args.batch_scale)), frames=frames,
                     min_frames=frames // 2, num_features=num_features, image_dim=EMBED[name])
        ours = Side("vgs_jax", "encoder_pairs_bench:train_step_work", dict(encoder=name, speech=speech, batch=batch))
        ref = Side("pytorch", "torch_encoders:train_step_work",
                   dict(encoder=name, speech=speech, batch=batch, threads=args.threads),
                   python=args.torch_python, env=torch_env(args.threads))
        if ours.info["params"] != ref.info["params"]:
            raise AssertionError(f"{name}: parameter counts differ: vgs_jax {ours.info['params']}, "
                                 f"PyTorch {ref.info['params']}; the two models are not the same work.")
        ref.run()  # warm-up (ours warmed up in its child)
        row = compare(ours, ref, args.pairs)
        row["measure"] = (f"train step {name} (B {batch['batch']}, {frames} frames, "
                          f"{ours.info['params'] / 1e6:.3f} M params)")
        rows.append(row)
        print(f"{name}: ours {row['ours_min_max']} s, PyTorch {row['ref_min_max']} s (min, max over "
              f"{args.pairs}; {ref.info['torch']}, jax {ours.info['jax']}); speed-up {row['speedup']:.2f}x "
              f"(CPU s {row['cpu_speedup']:.2f}x)", flush=True)
    print_table(rows, unit="s/step")


if __name__ == "__main__":
    main()
