"""Throughput of one jitted train step of the platalea dual encoder (forward + backward + Adam).

The loss is `vgs_jax.objectives.losses.platalea_hinge_loss`; images are precomputed 2048-d features
through the linear image encoder, as in platalea. Sizes:

  platalea  in 39, conv 64 (no bias), 4 BiGRU layers x 1024/direction, attention 128;
            batch 32 x 500 frames (5 s), lengths uniform in [250, 500]
  small     same, but 2 layers x 128/direction, batch 32 x 200 frames, lengths in [100, 200]
  probe128, probe512   4 layers x 128 (512)/direction, batch 32 x 500 frames: the shape of
            environment.md section 10's CPU probe, for comparison with its PyTorch numbers

Columns: compile_s (lower + compile), s/step (median of the timed steps after one warm-up
step), steps/s, utt/s, GF/step xla (flops from `compiled.cost_analysis()`), GF/step jaxpr (the
step's matmul/conv flops counted by `vgs_jax.flop_count`, forward and backward, every padded
frame), GF/s = jaxpr / (s/step). XLA's cost analysis counts a scan body once, not once per time
step, so for the scanned GRU it undercounts badly; use the jaxpr count for achieved FLOP/s.

Usage: python bench/train_step_bench.py [--sizes platalea,small] [--steps 3]
       [--dtype float32|bfloat16] [--seed 0]
"""
import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vgs_jax import flop_count  # noqa: E402
from vgs_jax.objectives import losses  # noqa: E402
from vgs_jax.models.dual_encoder import build_dual_encoder  # noqa: E402

SIZES = {
    "platalea": dict(hidden=1024, num_layers=4, batch=32, frames=500, min_frames=250),
    "small": dict(hidden=128, num_layers=2, batch=32, frames=200, min_frames=100),
    # environment.md section 10's probe shape (4 layers, batch 32 x 500 frames) at H = 128 and 512.
    "probe128": dict(hidden=128, num_layers=4, batch=32, frames=500, min_frames=250),
    "probe512": dict(hidden=512, num_layers=4, batch=32, frames=500, min_frames=250),
}
NUM_FEATURES = 39
IMAGE_DIM = 2048


def model_config(hidden: int, num_layers: int, dtype: str) -> dict:
    """The `config.model` fields (a plain dict, so the bench needs no ml_collections)."""
    return dict(
        speech_encoder="platalea_gru", image_encoder="linear",
        speech=dict(conv_channels=64, conv_kernel=6, conv_stride=2, conv_bias=False, hidden=hidden,
                    num_layers=num_layers, attention_hidden=128, mask_padding=True),
        image=dict(input_dim=IMAGE_DIM, channels=(32, 64, 128, 128)),
        temperature_init=0.07, dtype=dtype)


def xla_flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


def make_batch(rng: np.random.Generator, batch: int, frames: int, min_frames: int) -> dict:
    lengths = rng.integers(min_frames, frames + 1, size=batch)
    mask = np.arange(frames)[None, :] < lengths[:, None]
    audio = rng.normal(size=(batch, frames, NUM_FEATURES)).astype(np.float32) * mask[..., None]
    image = rng.normal(size=(batch, IMAGE_DIM)).astype(np.float32)
    return {"audio": jnp.asarray(audio), "audio_mask": jnp.asarray(mask), "image": jnp.asarray(image)}


def bench_size(name: str, steps: int, dtype: str, seed: int) -> dict:
    s = SIZES[name]
    model = build_dual_encoder(model_config(s["hidden"], s["num_layers"], dtype), num_features=NUM_FEATURES,
                               rngs=nnx.Rngs(seed))
    graphdef, params = nnx.split(model, nnx.Param)
    num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    tx = optax.adam(1e-4)
    opt_state = tx.init(params)

    def train_step(params, opt_state, batch):
        def loss_fn(p):
            z_s, z_i = nnx.merge(graphdef, p)(batch["audio"], batch["audio_mask"], batch["image"])
            return losses.platalea_hinge_loss(z_s, z_i, margin=0.2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    batch = make_batch(np.random.default_rng(seed), s["batch"], s["frames"], s["min_frames"])
    flops = flop_count.matmul_flops(train_step, params, opt_state, batch)
    t0 = time.perf_counter()
    compiled = jax.jit(train_step, donate_argnums=(0, 1)).lower(params, opt_state, batch).compile()
    compile_s = time.perf_counter() - t0

    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        params, opt_state, loss = compiled(params, opt_state, batch)
        loss = float(loss)
        if i > 0:
            times.append(time.perf_counter() - t0)
    if not np.isfinite(loss):
        raise FloatingPointError(f"{name}: loss became {loss}")
    step_s = statistics.median(times)
    return dict(size=name, H=s["hidden"], L=s["num_layers"], B=s["batch"], T=s["frames"],
                params_M=num_params / 1e6, compile_s=compile_s, step_s=step_s, steps_s=1.0 / step_s,
                utt_s=s["batch"] / step_s, gf_xla=xla_flops(compiled) / 1e9, gf_jaxpr=flops / 1e9,
                gfs_jaxpr=flops / 1e9 / step_s, timed=len(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,platalea", help=f"comma list of {sorted(SIZES)}")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--dtype", default="float32", help="compute dtype: float32 or bfloat16")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = [n.strip() for n in args.sizes.split(",") if n.strip()]
    unknown = [n for n in names if n not in SIZES]
    if unknown:
        parser.error(f"unknown --sizes {unknown}; valid: {sorted(SIZES)}")
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    print(f"backend={jax.default_backend()} devices={jax.device_count()} dtype={args.dtype}")
    cols = ["size", "H", "L", "B", "T", "params_M", "compile_s", "step_s", "steps_s", "utt_s", "gf_xla",
            "gf_jaxpr", "gfs_jaxpr", "timed"]
    print(" | ".join(f"{c:>9}" for c in cols))
    for name in names:
        row = bench_size(name, args.steps, args.dtype, args.seed)
        print(" | ".join(f"{row[c]:>9.3f}" if isinstance(row[c], float) else f"{row[c]:>9}" for c in cols),
              flush=True)


if __name__ == "__main__":
    main()
