"""Train step of the platalea dual encoder, vgs_jax vs PyTorch at the same work, alternating pairs.

One step = forward + backward + Adam of `platalea_gru` (conv 39 -> 64 kernel 6 stride 2 without
bias, BiGRU stack, vectorial attention 128) + linear image tower (2048-d features) + platalea hinge
loss, batch 32, lengths uniform in [frames / 2, frames]; the PyTorch side is
`bench/torch_platalea.py` (padded `nn.GRU`), same parameter count (asserted), same batch, 2 threads.

  small     2 layers x 128/direction, 200 frames
  probe128  4 layers x 128/direction, 500 frames
  probe512  4 layers x 512/direction, 500 frames
  platalea  4 layers x 1024/direction, 500 frames (the reference size; ~30 s a step on 2 cores)

Each side runs in its own process (`bench/paired.py`): median s/step over `--pairs` alternating
pairs after one warm-up step, the median per-pair speed-up, compile time (ours: lower + compile;
not in the step times), peak RSS per process, GFLOP/step (matmul/conv flops of the step counted by
`vgs_jax.flop_count` from its jaxpr, every padded frame).

Usage (PyTorch from `pip install -e '.[bench]'`; `--torch_python` picks another interpreter):
  python bench/train_step_bench.py --sizes small,probe128,probe512 --pairs 5
"""
import argparse
import sys
import time

from paired import Side, compare, print_table, random_batch, torch_env

SIZES = {
    "small": dict(hidden=128, num_layers=2, frames=200),
    "probe128": dict(hidden=128, num_layers=4, frames=500),
    "probe512": dict(hidden=512, num_layers=4, frames=500),
    "platalea": dict(hidden=1024, num_layers=4, frames=500),
}
BATCH = 32
NUM_FEATURES = 39
IMAGE_DIM = 2048


def model_config(hidden: int, num_layers: int, dtype: str = "float32") -> dict:
    """The `config.model` fields (a plain dict, so the bench needs no ml_collections)."""
    return dict(
        speech_encoder="platalea_gru", image_encoder="linear",
        speech=dict(conv_channels=64, conv_kernel=6, conv_stride=2, conv_bias=False, hidden=hidden,
                    num_layers=num_layers, attention_hidden=128, mask_padding=True),
        image=dict(input_dim=IMAGE_DIM), temperature_init=0.07, dtype=dtype)


def batch_spec(frames: int, seed: int = 0) -> dict:
    return dict(seed=seed, batch=BATCH, frames=frames, min_frames=frames // 2, num_features=NUM_FEATURES,
                image_dim=IMAGE_DIM)


def train_step_work(hidden: int, num_layers: int, batch: dict, dtype: str = "float32", seed: int = 0):
    """(info, run) of our jitted train step for `bench/paired.py`; run() = one step, loss on the host."""
    import jax
    import numpy as np
    import optax
    from flax import nnx

    from vgs_jax import flop_count
    from vgs_jax.models.dual_encoder import build_dual_encoder
    from vgs_jax.objectives import losses

    data = random_batch(**batch)
    data = {"audio": jax.numpy.asarray(data["audio"]), "audio_mask": jax.numpy.asarray(data["mask"]),
            "image": jax.numpy.asarray(data["image"])}
    model = build_dual_encoder(model_config(hidden, num_layers, dtype), num_features=NUM_FEATURES,
                               rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(1e-4)
    state = {"params": params, "opt_state": tx.init(params)}

    def step(params, opt_state, batch):
        def loss_fn(p):
            z_s, z_i = nnx.merge(graphdef, p)(batch["audio"], batch["audio_mask"], batch["image"])
            return losses.platalea_hinge_loss(z_s, z_i, margin=0.2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    flops = flop_count.matmul_flops(step, state["params"], state["opt_state"], data)
    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(state["params"], state["opt_state"], data).compile()
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()  # XLA's buffer assignment: where the step's own memory goes
    xla_mib = {k: getattr(memory, f"{k}_size_in_bytes") / 2**20 for k in ("argument", "output", "temp")}

    def run():
        state["params"], state["opt_state"], loss = compiled(state["params"], state["opt_state"], data)
        if not np.isfinite(float(loss)):
            raise FloatingPointError(f"loss became {float(loss)}")

    run()  # warm-up
    num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    return {"params": num_params, "compile_s": compile_s, "gflop": flops / 1e9, "jax": jax.__version__,
            "xla_mib": xla_mib}, run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,probe128,probe512", help=f"comma list of {list(SIZES)}")
    parser.add_argument("--pairs", type=int, default=5, help="alternating (ours, PyTorch) step pairs")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads (XLA uses every core)")
    parser.add_argument("--torch_python", default=sys.executable, help="interpreter with torch installed")
    parser.add_argument("--dtype", default="float32", help="our compute dtype: float32 or bfloat16")
    args = parser.parse_args()
    names = [n.strip() for n in args.sizes.split(",") if n.strip()]
    unknown = [n for n in names if n not in SIZES]
    if unknown:
        parser.error(f"unknown --sizes {unknown}; valid: {list(SIZES)}")
    if args.pairs < 1:
        parser.error("--pairs must be >= 1")
    rows = []
    for name in names:
        s = SIZES[name]
        common = dict(hidden=s["hidden"], num_layers=s["num_layers"], batch=batch_spec(s["frames"]))
        ours = Side("vgs_jax", "train_step_bench:train_step_work", dict(common, dtype=args.dtype))
        ref = Side("pytorch", "torch_platalea:train_step_work", dict(common, threads=args.threads),
                   python=args.torch_python, env=torch_env(args.threads))
        if ours.info["params"] != ref.info["params"]:
            raise AssertionError(f"{name}: parameter counts differ: vgs_jax {ours.info['params']}, "
                                 f"PyTorch {ref.info['params']}; the two models are not the same work.")
        ref.run()  # warm-up (ours warmed up in its child)
        row = compare(ours, ref, args.pairs)
        row["measure"] = (f"train step {name} ({s['num_layers']} x {s['hidden']}/dir, B {BATCH}, "
                          f"{s['frames']} frames, {ours.info['params'] / 1e6:.3f} M params, "
                          f"{ours.info['gflop']:.0f} GFLOP)")
        rows.append(row)
        print(f"{name}: ours {row['ours_min_max']} s, PyTorch {row['ref_min_max']} s "
              f"(min, max over {args.pairs}; {ref.info['torch']}, jax {ours.info['jax']}); XLA buffers MiB "
              f"{', '.join(f'{k} {v:.0f}' for k, v in ours.info['xla_mib'].items())}", flush=True)
    print_table(rows, unit="s/step")


if __name__ == "__main__":
    main()
