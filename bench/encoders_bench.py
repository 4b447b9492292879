"""Train-step throughput of every speech encoder at its reference size, batch and input length.

One jitted step = speech encoder forward (train mode: BatchNorm batch statistics, ResDAVEnet
jitter, VQ) + a platalea hinge loss against fixed random targets of the embedding size (plus
the VQ commitment loss) + backward + Adam + the model-state update (BatchNorm statistics, VQ EMA).
The image tower is left out: this measures the speech encoders. Encoders and sizes come from the
reference configs:

  platalea_gru    configs/flickr8k_gru.py            batch 32 x 500 frames (5 s, MFCC 39)
  speech2image    configs/flickr8k_speech2image.py   batch 32 x 500
  rhn             configs/flickr8k_rhn.py            batch 32 x 500
  transformer     configs/flickr8k_transformer.py    batch 32 x 500
  davenet         configs/places_davenet.py          batch 100 x 2048 frames (20.48 s, log-mel 40)
  resdavenet      configs/places_resdavenet.py       batch 64 x 2048
  resdavenet_vq   configs/places_resdavenet_vq.py    batch 64 x 2048, quantisers {2, 3}

Lengths are uniform in [frames / 2, frames]. Columns: s/step (median of the timed steps after a
warm-up), utt/s, GF/step (the step's matmul/conv flops, forward and backward, counted by
`vgs_jax.flop_count` from its jaxpr: XLA's cost analysis counts a scan body once), GF/s, and memory:
XLA's temp + argument bytes of the compiled step, and the peak RSS of the process that ran only
that row.
`--batch_scale 0.125` runs 1/8 of the reference batch (the CPU numbers in the README).

Usage: python bench/encoders_bench.py [--encoders davenet,resdavenet] [--dtype float32|bfloat16]
       [--batch_scale 1.0] [--steps 3]
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vgs_jax import audio_features  # noqa: E402
from vgs_jax import config_lib  # noqa: E402
from vgs_jax import flop_count  # noqa: E402
from vgs_jax.objectives import losses  # noqa: E402
from vgs_jax.models import dual_encoder  # noqa: E402
from vgs_jax.models import registry  # noqa: E402
from flax import nnx  # noqa: E402

ENCODERS = {
    "platalea_gru": ("configs/flickr8k_gru.py", 32, 500),
    "speech2image": ("configs/flickr8k_speech2image.py", 32, 500),
    "rhn": ("configs/flickr8k_rhn.py", 32, 500),
    "transformer": ("configs/flickr8k_transformer.py", 32, 500),
    "davenet": ("configs/places_davenet.py", 100, 2048),
    "resdavenet": ("configs/places_resdavenet.py", 64, 2048),
    "resdavenet_vq": ("configs/places_resdavenet_vq.py", 64, 2048),
}


def build(config, dtype: str):
    """(speech encoder module, its frame feature count) from a config's model fields."""
    num_features = audio_features.num_features(config.features.recipe)
    encoder = registry.build_speech_encoder(config.model.speech_encoder, config.model.speech, num_features,
                                            dtype=dual_encoder.COMPUTE_DTYPES[dtype], rngs=nnx.Rngs(0))
    return encoder, num_features


def make_step(encoder, has_map: bool):
    graphdef, params, state, rest = nnx.split(encoder, nnx.Param, dual_encoder.MODEL_STATE, ...)
    params, state, rest = (nnx.to_pure_dict(v) for v in (params, state, rest))
    tx = optax.adam(1e-4)

    def step(params, state, opt_state, x, mask, target, key):
        def loss_fn(p):
            model = nnx.merge(graphdef, p, state, rest)
            if has_map:
                h, m, aux = model.encode(x, mask, key=key)
                z = jnp.sum(h * m[..., None], 1) / jnp.maximum(jnp.sum(m, 1, keepdims=True), 1)
                model.update_codebooks({"vq_inputs": jax.lax.stop_gradient(aux["vq_inputs"])})
                extra = aux["vq_loss"]
            else:
                z, extra = model(x, mask), 0.0
            loss = losses.platalea_hinge_loss(z, target) + extra
            return loss, nnx.to_pure_dict(nnx.state(model, dual_encoder.MODEL_STATE))

        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_state, opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1, 2)), params, state, tx.init(params)


def run(name: str, dtype: str, batch_scale: float, steps: int) -> dict:
    spec, ref_batch, frames = ENCODERS[name]
    config = config_lib.load_config(spec)
    batch = max(1, round(ref_batch * batch_scale))
    encoder, num_features = build(config, dtype)
    has_map = encoder.capabilities.has_map
    step, params, state, opt_state = make_step(encoder, has_map)
    rng = np.random.default_rng(0)
    lengths = rng.integers(frames // 2, frames + 1, batch)
    mask = jnp.asarray(np.arange(frames)[None, :] < lengths[:, None])
    x = jnp.asarray(rng.normal(size=(batch, frames, num_features)), jnp.float32) * mask[..., None]
    target = jnp.asarray(rng.normal(size=(batch, encoder.out_features)), jnp.float32)
    args = lambda k: (x, mask, target, jax.random.key(k))
    t0 = time.perf_counter()
    compiled = step.lower(params, state, opt_state, *args(0)).compile()
    compile_s = time.perf_counter() - t0
    flops = flop_count.matmul_flops(step, params, state, opt_state, *args(0))
    mem = compiled.memory_analysis()
    mem_gb = (mem.temp_size_in_bytes + mem.argument_size_in_bytes) / 1e9 if mem is not None else float("nan")
    times = []
    for k in range(steps + 1):
        t0 = time.perf_counter()
        params, state, opt_state, loss = step(params, state, opt_state, *args(k))
        float(loss)
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times[1:])
    return dict(encoder=name, dtype=dtype, batch=batch, frames=frames, compile_s=compile_s, s_step=sec,
                utt_s=batch / sec, gflop_step=flops / 1e9, gflop_s=flops / 1e9 / sec, xla_mem_gb=mem_gb,
                peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoders", default=",".join(ENCODERS))
    p.add_argument("--dtype", default="float32", help="comma-separated: float32,bfloat16")
    p.add_argument("--batch_scale", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    unknown = set(a.encoders.split(",")) - set(ENCODERS)
    if unknown:
        raise SystemExit(f"unknown --encoders {sorted(unknown)}; choose from {sorted(ENCODERS)}")
    cols = ("encoder", "dtype", "batch", "frames", "compile_s", "s_step", "utt_s", "gflop_step", "gflop_s",
            "xla_mem_gb", "peak_rss_gb")
    if a.one:  # the child: one encoder, one dtype, one row
        r = run(a.encoders, a.dtype, a.batch_scale, a.steps)
        print(" ".join(f"{r[c]:>13.4g}" if isinstance(r[c], float) else f"{r[c]:>13}" for c in cols), flush=True)
        return
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}")
    print(" ".join(f"{c:>13}" for c in cols), flush=True)
    for dtype in a.dtype.split(","):
        for name in a.encoders.split(","):
            # Each row in its own process: peak RSS is that encoder's, not the running maximum.
            subprocess.run([sys.executable, os.path.abspath(__file__), "--one", f"--encoders={name}",
                            f"--dtype={dtype}", f"--batch_scale={a.batch_scale}", f"--steps={a.steps}"], check=True)


if __name__ == "__main__":
    main()
