"""Where time and memory go at scale: throughput, FLOP/s, MFU and the largest batch per device.

For every registered speech encoder at its reference batch (`config.batch_size`, the longest
bucket, the config's image input), one jitted train step (forward + backward + optimiser, the
config's loss) in float32 and bfloat16 (`model.dtype`), without and with `model.remat`:
utterances/s (median step after one warm-up), analytic FLOP/s (matmul/conv FLOPs of the step from
`vgs_jax.flop_count`, every padded frame) and, on a GPU or TPU whose peak is known, MFU = FLOP/s /
peak. Peaks (dense, per chip, vendor datasheets): H100 / H200 SXM 989 TFLOP/s bfloat16, 67 float32
(NVIDIA H100 datasheet; H200 has the same compute); A100 312 / 19.5 (NVIDIA A100 datasheet); TPU v5e
197 bfloat16 (Google Cloud TPU v5e docs).

Then the largest global batch per device that fits with each loss: plain, ring-chunked
(`loss.chunked`) and embedding cache (`train.embedding_cache_chunks`, sub-batches of the reference
batch; refused for models with BatchNorm / VQ state): doubling then bisection (to within 1/8) of
the batch, a batch fitting when the compiled step's memory (`memory_analysis()`: arguments +
outputs + temporaries - aliased) is within the budget: `--budget_mb` on CPU (nothing runs, no OOM);
on a GPU the device's memory limit, and the step must also run once without running out.

Configs: on CPU the `configs/shapes_*.py` recipes (CPU-sized), on an accelerator the full recipes
(`--recipes` overrides). One device (the per-device numbers); the ring runs on a mesh of one.

Usage: python bench/scaling_bench.py [--encoders platalea_gru,davenet] [--max_seconds 60]
       [--budget_mb 2048] [--recipes shapes|full] [--tables throughput,fit]
"""
import argparse
import functools
import inspect
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vgs_jax import audio_features  # noqa: E402
from vgs_jax import config_lib  # noqa: E402
from vgs_jax import embedding_cache  # noqa: E402
from vgs_jax import flop_count  # noqa: E402
from vgs_jax import optimizers  # noqa: E402
from vgs_jax import train  # noqa: E402
from vgs_jax.models import dual_encoder  # noqa: E402
from vgs_jax.models import registry  # noqa: E402

RECIPES = {  # speech encoder -> (CPU-sized config, full recipe)
    "platalea_gru": ("configs/shapes_gru.py", "configs/flickr8k_gru.py"),
    "speech2image": ("configs/shapes_speech2image.py", "configs/flickr8k_speech2image.py"),
    "rhn": ("configs/shapes_rhn.py", "configs/flickr8k_rhn.py"),
    "transformer": ("configs/shapes_transformer.py", "configs/flickr8k_transformer.py"),
    "davenet": ("configs/shapes_davenet.py", "configs/places_davenet.py"),
    "resdavenet": ("configs/shapes_resdavenet.py", "configs/places_resdavenet.py"),
    "wav2vec2": ("configs/shapes_ssl_vgs.py", "configs/places_fast_vgs_coarse.py"),
    "hubert": ("configs/shapes_ssl_vgs.py", "configs/places_fast_vgs_coarse.py"),
    "hg2017": ("configs/shapes_hg2017.py", "configs/shapes_hg2017.py"),
}
NOT_BENCHED = {  # registered speech encoders without a contrastive train step to time, and why
    "kamper_cnn": "a keyword spotter trained on visual tags (loss visual_tags), not on a contrastive batch",
}
PEAK_TFLOPS = {  # device_kind substring -> dense TFLOP/s per chip by compute dtype (module docstring)
    "H100": {"bfloat16": 989.0, "float32": 67.0}, "H200": {"bfloat16": 989.0, "float32": 67.0},
    "A100": {"bfloat16": 312.0, "float32": 19.5}, "TPU v5 lite": {"bfloat16": 197.0},
    "TPU v5e": {"bfloat16": 197.0},
}
PIXELS = 224  # image side of the pixel trunks (VGG16, ResNet-50) at the full recipes
LOSSES = ("plain", "chunked", "cache")


def peak_flops(dtype: str) -> float | None:
    """The default device's peak FLOP/s in `dtype`, or None (CPU, unknown device or dtype)."""
    kind = jax.devices()[0].device_kind
    for name, peaks in PEAK_TFLOPS.items():
        if name in kind and dtype in peaks:
            return peaks[dtype] * 1e12
    return None


def load(encoder: str, recipes: str, *, dtype="float32", remat=False, loss="plain", batch_size=None):
    """The encoder's config with the bench's overrides (`loss`: one of LOSSES)."""
    config = config_lib.load_config(RECIPES[encoder][recipes == "full"])
    config.unlock()
    reference = config.batch_size
    config.model.speech_encoder = encoder  # wav2vec2 and hubert share their configs
    if "weights" in config.model.speech:
        config.model.speech.weights = ""  # timing needs no pretrained weights file
    config.model.dtype, config.model.remat = dtype, remat
    config.batch_size = batch_size or reference
    config.loss.chunked = loss == "chunked"
    config.train.embedding_cache_chunks = config.batch_size // reference if loss == "cache" else 1
    return config


def step_and_inputs(config):
    """(jitted train step, abstract state, abstract batch) of `config`: the trainer's step on a
    batch of `batch_size` x the longest bucket of random-shaped inputs."""
    mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    template = dual_encoder.Template(train.create_model(config))
    lr = optimizers.create_learning_rate_fn(config.optimizer, steps_per_epoch=1000, total_steps=10000)
    tx = optimizers.create_optimizer(config.optimizer, lr)
    step = functools.partial(train.train_step, template=template, tx=tx,
                             loss_fn=train.make_loss_fn(config.loss, config.model, mesh), learning_rate_fn=lr,
                             image_key="image", seed=config.seed,
                             embedding_cache_chunks=config.train.embedding_cache_chunks)
    state = jax.eval_shape(lambda: train.create_train_state(template.initial_params, template.initial_model_state,
                                                            tx))
    b = config.batch_size
    frames = min(max(config.features.bucket_boundaries), config.features.max_frames)
    image_tower = template.merge(template.initial_params).image_encoder
    if hasattr(image_tower, "in_features"):
        image = jax.ShapeDtypeStruct((b, image_tower.in_features), jnp.float32)
    else:
        side = getattr(image_tower, "image_size", PIXELS)
        image = jax.ShapeDtypeStruct((b, side, side, 3), jnp.uint8)
    spec = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype)
    batch = {"audio": spec((b, frames, audio_features.num_features(config.features.recipe)), jnp.float32),
             "audio_mask": spec((b, frames), jnp.bool_), "audio_len": spec((b,), jnp.int32), "image": image,
             "image_id": spec((b,), jnp.int32), "caption_id": spec((b,), jnp.int32),
             "example_mask": spec((b,), jnp.bool_)}
    return jax.jit(step, donate_argnums=0), state, batch, template


def concrete(config, template, batch_spec):
    """A real train state and a random batch (valid lengths in [T/2, T]) for `batch_spec`."""
    lr = optimizers.create_learning_rate_fn(config.optimizer, steps_per_epoch=1000, total_steps=10000)
    state = train.create_train_state(template.initial_params, template.initial_model_state,
                                     optimizers.create_optimizer(config.optimizer, lr))
    rng = np.random.default_rng(0)
    b, frames = batch_spec["audio_mask"].shape
    lengths = rng.integers(frames // 2, frames + 1, b)
    mask = np.arange(frames)[None, :] < lengths[:, None]
    image = batch_spec["image"]
    batch = {"audio": (rng.normal(size=batch_spec["audio"].shape) * mask[..., None]).astype(np.float32),
             "audio_mask": mask, "audio_len": lengths.astype(np.int32),
             "image": (rng.integers(0, 256, image.shape) if image.dtype == jnp.uint8 else
                       rng.normal(size=image.shape)).astype(image.dtype),
             "image_id": np.arange(b, dtype=np.int32), "caption_id": np.arange(b, dtype=np.int32),
             "example_mask": np.ones(b, bool)}
    return state, batch


def throughput(encoder: str, recipes: str, dtype: str, remat: bool, max_seconds: float) -> dict:
    """utt/s, GFLOP per step and achieved GFLOP/s of the reference step; timed steps until
    `max_seconds` (at least one after the warm-up)."""
    config = load(encoder, recipes, dtype=dtype, remat=remat)
    step, _, batch_spec, template = step_and_inputs(config)
    state, batch = concrete(config, template, batch_spec)
    t0 = time.perf_counter()
    traced = step.trace(state, batch)
    compiled = traced.lower().compile()
    compile_s = time.perf_counter() - t0
    flops = sum(flop_count.jaxpr_flops(traced.jaxpr.jaxpr).values())
    times, start = [], time.perf_counter()
    for i in range(1000):
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch)
        float(metrics["loss"])
        if i > 0:
            times.append(time.perf_counter() - t0)
            if time.perf_counter() - start > max_seconds:
                break
    step_s = statistics.median(times)
    peak = peak_flops(dtype)
    return dict(B=config.batch_size, T=batch_spec["audio_mask"].shape[1], compile_s=compile_s, steps=len(times),
                utt_s=config.batch_size / step_s, gflop=flops / 1e9, gflop_s=flops / step_s / 1e9,
                mfu=None if peak is None else flops / step_s / peak)


def takes_remat(encoder: str) -> bool:
    """Whether the speech encoder has the `model.remat` switch (a keyword argument `remat`)."""
    return "remat" in inspect.signature(registry.SPEECH_ENCODERS[encoder].__init__).parameters


def memory_bytes(compiled) -> int:
    m = compiled.memory_analysis()
    return m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes


def fits(encoder: str, recipes: str, loss: str, batch_size: int, budget: float, run: bool) -> bool:
    """Whether the train step at `batch_size` compiles within `budget` bytes (and, with `run`, runs)."""
    config = load(encoder, recipes, loss=loss, batch_size=batch_size)
    step, state_spec, batch_spec, template = step_and_inputs(config)
    embedding_cache.check_supported(config.train.embedding_cache_chunks, model_state=template.initial_model_state,
                                    batch_size=config.batch_size)
    compiled = step.lower(state_spec, batch_spec).compile()
    if memory_bytes(compiled) > budget:
        return False
    if run:
        try:
            state, batch = concrete(config, template, batch_spec)
            jax.block_until_ready(compiled(state, batch))
        except jax.errors.JaxRuntimeError as e:
            if "RESOURCE_EXHAUSTED" not in str(e):
                raise
            return False
    return True


def largest_fitting(probe, start: int, cap: int, deadline: float) -> str:
    """Largest n with probe(n) True, probe monotone (True up to some n): from `start` doubling until
    probe fails (or halving while it fails), then bisection to within 1/8 of n; '>=n' when `cap`
    or `deadline` (time.time()) stopped the doubling, '0' when even 1 fails."""
    if probe(start):
        lo, hi = start, None
        while hi is None:
            if lo >= cap or time.time() > deadline:
                return f">={lo}"
            lo, hi = (2 * lo, None) if probe(2 * lo) else (lo, 2 * lo)
    else:
        hi, lo = start, start // 2
        while lo > 0 and not probe(lo):
            hi, lo = lo, lo // 2
        if lo == 0:
            return "0"
    while hi - lo > max(1, lo // 8) and time.time() < deadline:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if probe(mid) else (lo, mid)
    return str(lo)


def largest_batch(encoder: str, recipes: str, loss: str, budget: float, run: bool, deadline: float,
                  cap: int) -> str:
    """`largest_fitting` global batch with `loss` (the cache: multiples of the reference batch, from
    2 sub-batches); 'n/a' (the reason printed) when the loss refuses the model."""
    reference = load(encoder, recipes).batch_size
    if loss != "cache":
        return largest_fitting(lambda b: fits(encoder, recipes, loss, b, budget, run), reference, cap, deadline)
    try:
        found = largest_fitting(lambda k: fits(encoder, recipes, loss, k * reference, budget, run), 2,
                                cap // reference, deadline)
    except ValueError as e:  # the embedding cache refuses BatchNorm / VQ state
        print(f"{encoder}, embedding cache: {e}", flush=True)
        return "n/a"
    prefix = ">=" if found.startswith(">=") else ""
    return prefix + str(int(found.lstrip(">=")) * reference)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default=",".join(RECIPES), help=f"comma list of {list(RECIPES)}")
    parser.add_argument("--recipes", choices=("shapes", "full"), default=None,
                        help="CPU-sized shapes_* configs or the full recipes (default: shapes on CPU, full else)")
    parser.add_argument("--max_seconds", type=float, default=30.0,
                        help="timed seconds per throughput row; also caps each batch search (one per encoder and loss)")
    parser.add_argument("--budget_mb", type=float, default=2048.0, help="CPU memory budget of the batch search")
    parser.add_argument("--max_batch", type=int, default=1 << 16, help="stop doubling at this batch")
    parser.add_argument("--tables", default="throughput,fit", help="comma list of throughput, fit")
    args = parser.parse_args()
    missing = sorted(set(registry.SPEECH_ENCODERS) - set(RECIPES) - set(NOT_BENCHED))
    if missing:
        parser.error(f"speech encoders {missing} have no reference config in RECIPES; add them.")
    encoders = [e.strip() for e in args.encoders.split(",") if e.strip()]
    unknown = [e for e in encoders if e not in RECIPES]
    if unknown:
        parser.error(f"unknown --encoders {unknown}; valid: {list(RECIPES)}")
    backend = jax.default_backend()
    recipes = args.recipes or ("shapes" if backend == "cpu" else "full")
    device = jax.devices()[0]
    on_accelerator = backend != "cpu"
    budget = (device.memory_stats() or {}).get("bytes_limit", 0) if on_accelerator else args.budget_mb * 2**20
    print(f"backend={backend} device={device.device_kind} recipes={recipes} max_seconds={args.max_seconds}")

    tables = set(args.tables.split(","))
    cols = ("encoder", "dtype", "remat", "B", "T", "compile_s", "steps", "utt_s", "gflop", "gflop_s", "mfu")
    rows = []
    for encoder in encoders if "throughput" in tables else ():
        for dtype in ("float32", "bfloat16"):
            for remat in (False, True) if takes_remat(encoder) else (False,):
                r = throughput(encoder, recipes, dtype, remat, args.max_seconds)
                rows.append(dict(encoder=encoder, dtype=dtype, remat=str(remat), **r))
                print("  ".join(_fmt(rows[-1][c]) for c in cols), flush=True)
    if rows:
        print("\nthroughput (one device, reference batch)")
        _table(cols, rows)
    if "fit" not in tables:
        return
    print(f"\nlargest global batch per device (float32, no remat; budget {budget / 2**20:.0f} MB"
          f"{', and a real step' if on_accelerator else ' of compiled memory'})")
    fit_rows = []
    for encoder in encoders:
        fit_rows.append(dict(encoder=encoder, **{
            loss: largest_batch(encoder, recipes, loss, budget, on_accelerator, time.time() + args.max_seconds,
                                args.max_batch)
            for loss in LOSSES}))
        print("  ".join(fit_rows[-1].values()), flush=True)
    _table(("encoder",) + LOSSES, fit_rows)


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _table(cols, rows) -> None:
    cells = [list(cols)] + [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    for row in cells:
        print("| " + " | ".join(x.rjust(w) for x, w in zip(row, widths)) + " |")


if __name__ == "__main__":
    main()
