"""Training: optimizer and schedules, the jit-compiled train step, and `train_and_evaluate`.

The train state is a plain pytree `{"step", "params", "model_state", "opt_state"}`: `params` the
model's `nnx.Param`s and `model_state` its BatchNorm statistics and VQ codebooks (updated by the
step, not by gradients), both pure dicts, replicated over a 1-D ("data",) mesh; batches are
sharded over the same mesh, so every loss (and every BatchNorm) sees the GLOBAL batch whatever the
device count. Randomness (ResDAVEnet jitter, dropout, sampled impostors) comes from
`fold_in(key(config.seed), step)`, so a resumed run draws exactly what an uninterrupted one would.
"""

import functools
import math
from typing import Any, Callable

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vgs_jax import audio_features
from vgs_jax import checkpointing
from vgs_jax import config_lib
from vgs_jax import evaluation
from vgs_jax import input_pipeline
from vgs_jax import losses
from vgs_jax import metric_logging
from vgs_jax import sigmoid_losses
from vgs_jax import similarity as similarity_lib
from vgs_jax.models import dual_encoder
from vgs_jax.models import image_trunks
from vgs_jax.models import vq

SCHEDULES = ("cyclic", "warmup_cosine", "constant", "step")
OPTIMIZERS = ("adam", "sgd")
EMBEDDING_LOSSES = ("platalea_hinge", "hardest_negative_hinge", "infonce", "sigmoid")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def cyclic_schedule(*, lr_max: float, lr_min: float, stepsize: int) -> optax.Schedule:
    """Platalea's cyclic cosine (§1.7): lr_min at step 0, lr_max at stepsize/2, lr_min at stepsize."""

    def schedule(step):
        phase = jnp.pi * (1.0 + 2.0 * step / stepsize)
        return (lr_max - lr_min) * 0.5 * (jnp.cos(phase) + 1.0) + lr_min

    return schedule


def step_decay_schedule(*, lr: float, factor: float, every_epochs: int, steps_per_epoch: int) -> optax.Schedule:
    """DAVEnet / ResDAVEnet-VQ: lr * factor ** (epoch // every_epochs), epochs counted from 1 as in
    their training loops (anchor §2.6, §3.6), so the first decay comes after every_epochs - 1 epochs."""
    if every_epochs < 1 or not 0 < factor <= 1:
        raise ValueError(
            f"optimizer.decay_epochs must be >= 1 and optimizer.decay_factor in (0, 1]; got {every_epochs}, {factor}.")

    def schedule(step):
        epoch = step // max(1, steps_per_epoch) + 1
        return lr * factor ** (epoch // every_epochs)

    return schedule


def create_learning_rate_fn(
    opt_config: ml_collections.ConfigDict, *, steps_per_epoch: int, total_steps: int
) -> optax.Schedule:
    """The learning-rate schedule named by `opt_config.schedule`."""
    if opt_config.schedule == "cyclic":
        return cyclic_schedule(
            lr_max=opt_config.lr_max,
            lr_min=opt_config.lr_min,
            stepsize=max(1, opt_config.cycle_epochs * steps_per_epoch),
        )
    if opt_config.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=opt_config.lr_max,
            warmup_steps=opt_config.warmup_steps,
            decay_steps=max(total_steps, opt_config.warmup_steps + 1),
            end_value=opt_config.lr_min,
        )
    if opt_config.schedule == "constant":
        return optax.constant_schedule(opt_config.lr_max)
    if opt_config.schedule == "step":
        return step_decay_schedule(lr=opt_config.lr_max, factor=opt_config.decay_factor,
                                   every_epochs=opt_config.decay_epochs, steps_per_epoch=steps_per_epoch)
    raise ValueError(
        f"Unknown optimizer.schedule {opt_config.schedule!r}; choose one of {SCHEDULES}."
    )


def create_optimizer(
    opt_config: ml_collections.ConfigDict, learning_rate_fn: optax.Schedule, *, trainable=None
) -> optax.GradientTransformation:
    """Adam or SGD with momentum (PyTorch semantics), PyTorch-style L2 weight decay (added to the
    gradient) and optional norm clipping.

    `trainable`: optional pytree of bools shaped like the params; False leaves (a frozen image trunk)
    get zero updates, so neither gradients nor weight decay move them.
    """
    if opt_config.name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer.name {opt_config.name!r}; choose one of {OPTIMIZERS}.")
    parts = []
    if opt_config.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(opt_config.grad_clip_norm))
    if opt_config.weight_decay > 0:
        parts.append(optax.add_decayed_weights(opt_config.weight_decay))
    if opt_config.name == "adam":
        parts.append(optax.scale_by_adam(b1=opt_config.b1, b2=opt_config.b2))
    elif opt_config.momentum > 0:
        parts.append(optax.trace(decay=opt_config.momentum))  # PyTorch SGD momentum (no dampening)
    parts.append(optax.scale_by_learning_rate(learning_rate_fn))
    tx = optax.chain(*parts)
    if trainable is None:
        return tx
    labels = jax.tree.map(lambda t: "train" if t else "freeze", trainable)
    return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)


def make_loss_fn(loss_config: ml_collections.ConfigDict, model_config: ml_collections.ConfigDict,
                 mesh: jax.sharding.Mesh | None = None) -> Callable[..., tuple[jax.Array, dict]]:
    """Binds the config's objective: fn(model, speech, image, batch, key) -> (loss, metrics).

    `speech` / `image` are the dual encoder's output dicts. Embedding losses (EMBEDDING_LOSSES) use
    the L2-normalised embeddings; similarity-matrix losses (`losses.SIMILARITY_LOSSES`) use
    `similarity_matrix` with `config.model.similarity`. A VQ commitment loss, when the speech tower
    has quantisers, is added to the total. Metrics: retrieval_loss, vq_loss and, per quantiser,
    perplexity and usage.
    """
    name = loss_config.name
    sim_name = model_config.get("similarity", "cosine")
    if name in EMBEDDING_LOSSES:
        if sim_name != "cosine":
            raise ValueError(
                f"loss.name={name!r} scores L2-normalised embeddings, but model.similarity={sim_name!r}; use "
                f"similarity='cosine', or a similarity-matrix loss: {sorted(losses.SIMILARITY_LOSSES)}.")
        if name == "sigmoid" and model_config.get("logit_bias_init") is None:
            raise ValueError("loss.name='sigmoid' needs a learned logit bias: set model.logit_bias_init "
                             "(SigLIP: -10.0, with model.temperature_init=0.1, i.e. t = 10).")
        if name == "sigmoid" and loss_config.chunked and mesh is None:
            raise ValueError("loss.chunked=True needs the device mesh.")
    elif name in losses.SIMILARITY_LOSSES:
        sim_loss = losses.get_similarity_loss(name)
    else:
        raise ValueError(
            f"Unknown loss.name {name!r}; choose one of {sorted(EMBEDDING_LOSSES + tuple(losses.SIMILARITY_LOSSES))}.")
    chunk = model_config.get("matchmap_chunk", 0) or None

    def retrieval_loss(model, speech, image, batch, key):
        ids = batch["image_id"] if loss_config.exclude_same_image else None
        mask = batch["example_mask"]
        zs, zi = speech["embedding"], image["embedding"]
        if name == "infonce":
            return losses.infonce_loss(zs, zi, temperature=model.temperature, image_ids=ids, mask=mask)
        if name == "sigmoid":
            kwargs = dict(temperature=1.0 / model.temperature, bias=model.logit_bias[...], image_ids=ids, mask=mask)
            if loss_config.chunked:
                return sigmoid_losses.chunked_sigmoid_loss(zs, zi, mesh=mesh, **kwargs)
            return sigmoid_losses.sigmoid_loss(zs, zi, **kwargs)
        if name in EMBEDDING_LOSSES:
            return losses.get_loss(name)(zs, zi, margin=loss_config.margin, image_ids=ids, mask=mask)
        sim = similarity_lib.similarity_matrix(speech, image, sim_name, chunk_size=chunk)
        extra = {"reference_quirk": loss_config.reference_quirk} if name == "semihard_hinge" else {}
        return sim_loss(sim, key, margin=loss_config.margin, mask=mask, **extra)

    def loss_fn(model, speech, image, batch, key):
        loss = retrieval_loss(model, speech, image, batch, key)
        metrics = {"retrieval_loss": loss}
        if "vq_loss" in speech:
            metrics["vq_loss"] = speech["vq_loss"]
            for quant, stats in speech["vq_stats"].items():
                metrics[f"{quant}_perplexity"] = stats["perplexity"]
                metrics[f"{quant}_usage"] = stats["usage"]
            loss = loss + speech["vq_loss"]
        return loss, metrics

    return loss_fn


def create_model(config: ml_collections.ConfigDict) -> dual_encoder.DualEncoder:
    """The dual encoder described by `config.model`, initialised from `config.seed` (and the image
    trunk's pretrained weights when `config.model.image.weights` names a file)."""
    return dual_encoder.build_dual_encoder(
        config.model,
        num_features=audio_features.num_features(config.features.recipe),
        rngs=nnx.Rngs(config.seed),
    )


def trainable_mask(config: ml_collections.ConfigDict, params: dict) -> dict | None:
    """Optimizer mask for a frozen image trunk (`model.image.freeze_trunk`), else None."""
    if not config.model.image.get("freeze_trunk", False):
        return None
    mask = jax.tree.map(lambda _: True, params)
    mask["image_encoder"] = image_trunks.trainable_mask(params["image_encoder"])
    return mask


def create_train_state(params: Any, model_state: Any, tx: optax.GradientTransformation) -> dict:
    return {"step": jnp.zeros((), jnp.int32), "params": params, "model_state": model_state,
            "opt_state": tx.init(params)}


def train_step(state, batch, *, template, tx, loss_fn, learning_rate_fn, image_key, seed):
    """One optimisation step on a (globally sharded) batch; returns (new_state, metrics).

    The forward pass runs in train mode: BatchNorm uses batch statistics and updates its running
    averages, VQ codebooks get their EMA update from the same batch, both returned in the new
    state's model_state."""
    key = jax.random.fold_in(jax.random.key(seed), state["step"])
    k_jitter, k_loss, k_dropout = jax.random.split(key, 3)

    def compute_loss(params):
        model = template.merge(params, state["model_state"], train=True)
        nnx.reseed(model, default=k_dropout)  # fresh dropout masks every step
        speech = model.encode_speech(batch["audio"], batch["audio_mask"], key=k_jitter)
        image = model.encode_image(batch[image_key])
        loss, metrics = loss_fn(model, speech, image, batch, k_loss)
        model.update_codebooks(speech)
        return loss, (metrics, template.model_state_of(model))

    (loss, (loss_metrics, model_state)), grads = jax.value_and_grad(compute_loss, has_aux=True)(state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {
        "loss": loss,
        **loss_metrics,
        "grad_norm": optax.tree.norm(grads),
        "param_norm": optax.tree.norm(params),
        "learning_rate": learning_rate_fn(state["step"]),
    }
    new_state = {"step": state["step"] + 1, "params": params, "model_state": model_state, "opt_state": opt_state}
    return new_state, metrics


def warm_start_variables(template: dual_encoder.Template, workdir: str, checkpoint: str = "best") -> tuple[dict, dict]:
    """ResDAVEnet-VQ's "->" recipe: (params, model_state) of `template`'s model with every entry
    whose path and shape exist in `workdir`'s checkpoint copied from it; the rest (e.g. new
    codebooks) stays freshly initialised. Prints what was kept fresh."""
    ckpt = checkpointing.Checkpointer(workdir, read_only=True)
    try:
        step, old_params, old_state = ckpt.restore_model_variables(checkpoint)
    finally:
        ckpt.close()
    params, copied, fresh = vq.warm_start(template.initial_params, old_params)
    model_state, copied_state, fresh_state = vq.warm_start(template.initial_model_state, old_state)
    if not copied:
        raise checkpointing.CheckpointError(
            f"config.init_from={workdir}: no parameter of its step-{step} checkpoint fits this model; check "
            "that it is a run of the same architecture family.")
    _say(f"Warm start from {workdir} step {step}: {len(copied) + len(copied_state)} entries copied, "
         f"{len(fresh) + len(fresh_state)} fresh ({', '.join(fresh + fresh_state)[:300] or 'none'}).")
    return params, model_state


class Trainer:
    """Everything a run needs, built once from the config: data, model, optimizer, step function."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        self.mesh = input_pipeline.data_mesh()
        if config.batch_size % self.mesh.size:
            raise ValueError(
                f"config.batch_size={config.batch_size} is not divisible by the {self.mesh.size} "
                f"devices; use a multiple such as {self.mesh.size * max(1, config.batch_size // self.mesh.size)}."
            )
        data = config.dataset
        self.train_source = input_pipeline.open_config_split(
            data, data.train_split, build_if_missing=data.build_if_missing)
        self.eval_source = input_pipeline.open_config_split(data, data.eval_split)
        self.steps_per_epoch = len(self.train_source) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"The {data.train_split} split of {data.name} has {len(self.train_source)} examples, "
                f"fewer than config.batch_size={config.batch_size}; lower the batch size."
            )
        self.total_steps = (
            config.num_train_steps
            if config.num_train_steps > 0
            else config.num_epochs * self.steps_per_epoch
        )
        self.featurize = functools.partial(audio_features.compute, recipe=config.features.recipe)
        self.learning_rate_fn = create_learning_rate_fn(
            config.optimizer, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps
        )
        loss_fn = make_loss_fn(config.loss, config.model, self.mesh)
        self.template = dual_encoder.Template(create_model(config))
        params, model_state = self.template.initial_params, self.template.initial_model_state
        if config.init_from:
            params, model_state = warm_start_variables(self.template, config.init_from)
        self.tx = create_optimizer(config.optimizer, self.learning_rate_fn,
                                   trainable=trainable_mask(config, params))
        self.replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        self.initial_state = jax.device_put(
            create_train_state(params, model_state, self.tx), self.replicated
        )
        step_fn = functools.partial(
            train_step,
            template=self.template,
            tx=self.tx,
            loss_fn=loss_fn,
            learning_rate_fn=self.learning_rate_fn,
            image_key=data.image_key,
            seed=config.seed,
        )
        self.train_step = jax.jit(step_fn, donate_argnums=0, out_shardings=self.replicated)

    def train_iterator(self):
        c = self.config
        return input_pipeline.make_train_iterator(
            self.train_source,
            global_batch_size=c.batch_size,
            featurize=self.featurize,
            seed=c.seed,
            max_frames=c.features.max_frames,
            bucket_boundaries=c.features.bucket_boundaries,
            pad_value=audio_features.pad_value(c.features.recipe),
            image_key=c.dataset.image_key,
        )

    def evaluate(self, state, source) -> dict:
        """Retrieval metrics of the train state's model on `source` (all captions vs all unique images)."""
        c = self.config
        return evaluation.evaluate_split(
            self.template.with_model_state(state["model_state"]),
            state["params"],
            source,
            batch_size=c.eval_batch_size,
            featurize=self.featurize,
            features_config=c.features,
            pad_value=audio_features.pad_value(c.features.recipe),
            image_key=c.dataset.image_key,
            mesh=self.mesh,
            similarity=c.model.similarity,
        )


def _say(message: str) -> None:
    """User-facing progress on stdout (process 0 only)."""
    if jax.process_index() == 0:
        print(message, flush=True)


def _check_workdir_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    saved = checkpointing.read_saved_config(workdir)
    if saved is None:
        checkpointing.write_config(workdir, config.to_dict())
        return
    differing = config_lib.incompatible_fields(saved, config)
    if differing:
        raise ValueError(
            f"{workdir} holds a run with a different config (fields {differing} differ from "
            f"{workdir}/config.json). Use a new --workdir, or the same config to resume it; "
            "nothing in the workdir was changed."
        )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains (resuming from the latest checkpoint in `workdir`) and returns the final metrics."""
    _check_workdir_config(workdir, config)
    trainer = Trainer(config)
    ckpt = checkpointing.Checkpointer(workdir, keep=config.keep_checkpoints)
    train_iter = trainer.train_iterator()
    state = trainer.initial_state
    start_step = 0
    if ckpt.latest_step() is not None:
        start_step, state, data_state = ckpt.restore("latest", state)
        train_iter.set_state(data_state)
        _say(f"Resumed from {workdir}/checkpoints/{start_step}.")
    num_params = sum(x.size for x in jax.tree.leaves(state["params"]))
    _say(
        f"{config.dataset.name}: {len(trainer.train_source)} training captions, "
        f"{trainer.steps_per_epoch} steps/epoch, {trainer.total_steps} steps of "
        f"{config.batch_size}; {num_params:,} parameters on {trainer.mesh.size} device(s)."
    )
    if start_step >= trainer.total_steps:
        _say(f"Already trained to step {start_step}; nothing to do.")
    logger = metric_logging.MetricLogger(
        workdir, total_steps=trainer.total_steps, batch_size=config.batch_size
    )
    config_dict = config.to_dict()
    final_metrics: dict = {}
    pending = []  # per-step device metrics since the last log, fetched lazily

    def check_finite(step):
        host = jax.device_get(pending)
        pending.clear()
        for i, m in enumerate(host):
            if not math.isfinite(float(m["loss"])):
                raise NonFiniteLossError(
                    f"Non-finite loss {float(m['loss'])} at step {step - len(host) + i + 1}. "
                    f"Training stopped; the last good checkpoint in {workdir}/checkpoints is kept "
                    f"(step {ckpt.latest_step()}). Try a lower optimizer.lr_max or "
                    "optimizer.grad_clip_norm > 0."
                )
        return host

    try:
        for step in range(start_step + 1, trainer.total_steps + 1):
            batch = input_pipeline.shard_batch(next(train_iter), trainer.mesh)
            state, metrics = trainer.train_step(state, batch)
            pending.append(metrics)
            is_last = step == trainer.total_steps
            if step % config.log_every_steps == 0 or is_last:
                host = check_finite(step)
                means = {f"train/{k}": float(np.mean([m[k] for m in host])) for k in host[0]}
                means["train/learning_rate"] = float(host[-1]["learning_rate"])
                final_metrics.update(logger.train_progress(step, means))
            if step % config.eval_every_steps == 0 or is_last:
                check_finite(step)
                results = trainer.evaluate(state, trainer.eval_source)
                scalars = evaluation.flat_scalars(results, prefix="eval")
                logger.write(step, scalars)
                final_metrics.update(scalars)
                _say(f"Validation at step {step}:\n{evaluation.format_results(results)}")
                if ckpt.save_best(
                    step,
                    state,
                    data_state=train_iter.get_state(),
                    config=config_dict,
                    r10=results["speech_to_image"]["r10"],
                ):
                    _say(f"New best validation speech->image R@10 at step {step}.")
            if step % config.checkpoint_every_steps == 0 or is_last:
                check_finite(step)
                ckpt.save(step, state, data_state=train_iter.get_state(), config=config_dict)
    finally:
        ckpt.wait()
        ckpt.close()
        logger.close()
    return final_metrics
