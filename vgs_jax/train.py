"""Training: optimizer and schedules, the jit-compiled train step, and `train_and_evaluate`.

The train state is a plain pytree `{"step", "params", "opt_state"}` with `params` the model's
pure-dict state (`nnx.to_pure_dict`), replicated over a 1-D ("data",) mesh; batches are sharded
over the same mesh, so every loss sees the GLOBAL batch as negatives whatever the device count.
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
from vgs_jax.models import dual_encoder

SCHEDULES = ("cyclic", "warmup_cosine", "constant")


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def cyclic_schedule(*, lr_max: float, lr_min: float, stepsize: int) -> optax.Schedule:
    """Platalea's cyclic cosine (§1.7): lr_min at step 0, lr_max at stepsize/2, lr_min at stepsize."""

    def schedule(step):
        phase = jnp.pi * (1.0 + 2.0 * step / stepsize)
        return (lr_max - lr_min) * 0.5 * (jnp.cos(phase) + 1.0) + lr_min

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
    raise ValueError(
        f"Unknown optimizer.schedule {opt_config.schedule!r}; choose one of {SCHEDULES}."
    )


def create_optimizer(
    opt_config: ml_collections.ConfigDict, learning_rate_fn: optax.Schedule
) -> optax.GradientTransformation:
    """Adam with PyTorch-style L2 weight decay (added to the gradient) and optional norm clipping."""
    parts = []
    if opt_config.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(opt_config.grad_clip_norm))
    if opt_config.weight_decay > 0:
        parts.append(optax.add_decayed_weights(opt_config.weight_decay))
    parts += [optax.scale_by_adam(), optax.scale_by_learning_rate(learning_rate_fn)]
    return optax.chain(*parts)


def make_loss_fn(loss_config: ml_collections.ConfigDict) -> Callable[..., jax.Array]:
    """Binds the config's loss: fn(z_speech, z_image, *, image_ids, mask, temperature) -> scalar."""
    loss = losses.get_loss(loss_config.name)

    def loss_fn(z_speech, z_image, *, image_ids, mask, temperature):
        ids = image_ids if loss_config.exclude_same_image else None
        if loss_config.name == "infonce":
            return loss(z_speech, z_image, temperature=temperature, image_ids=ids, mask=mask)
        return loss(z_speech, z_image, margin=loss_config.margin, image_ids=ids, mask=mask)

    return loss_fn


def create_model(config: ml_collections.ConfigDict) -> dual_encoder.DualEncoder:
    """The dual encoder described by `config.model`, initialised from `config.seed`."""
    return dual_encoder.build_dual_encoder(
        config.model,
        num_features=audio_features.num_features(config.features.recipe),
        rngs=nnx.Rngs(config.seed),
    )


def create_train_state(params: Any, tx: optax.GradientTransformation) -> dict:
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}


def train_step(state, batch, *, template, tx, loss_fn, learning_rate_fn, image_key):
    """One optimisation step on a (globally sharded) batch; returns (new_state, metrics)."""

    def compute_loss(params):
        model = template.merge(params)
        z_speech, z_image = model(batch["audio"], batch["audio_mask"], batch[image_key])
        return loss_fn(
            z_speech,
            z_image,
            image_ids=batch["image_id"],
            mask=batch["example_mask"],
            temperature=model.temperature,
        )

    loss, grads = jax.value_and_grad(compute_loss)(state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {
        "loss": loss,
        "grad_norm": optax.tree.norm(grads),
        "param_norm": optax.tree.norm(params),
        "learning_rate": learning_rate_fn(state["step"]),
    }
    new_state = {"step": state["step"] + 1, "params": params, "opt_state": opt_state}
    return new_state, metrics


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
        self.train_source = input_pipeline.open_split(
            data.name, data.train_split, data_dir=data.data_dir, build_if_missing=data.build_if_missing
        )
        self.eval_source = input_pipeline.open_split(
            data.name, data.eval_split, data_dir=data.data_dir, build_if_missing=False
        )
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
        self.tx = create_optimizer(config.optimizer, self.learning_rate_fn)
        self.template = dual_encoder.Template(create_model(config))
        self.replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        self.initial_state = jax.device_put(
            create_train_state(self.template.initial_params, self.tx), self.replicated
        )
        step_fn = functools.partial(
            train_step,
            template=self.template,
            tx=self.tx,
            loss_fn=make_loss_fn(config.loss),
            learning_rate_fn=self.learning_rate_fn,
            image_key=data.image_key,
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

    def evaluate(self, params, source) -> dict:
        """Retrieval metrics of `params` on `source` (all captions vs all unique images)."""
        c = self.config
        return evaluation.evaluate_split(
            self.template,
            params,
            source,
            batch_size=c.eval_batch_size,
            featurize=self.featurize,
            features_config=c.features,
            pad_value=audio_features.pad_value(c.features.recipe),
            image_key=c.dataset.image_key,
            mesh=self.mesh,
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
                results = trainer.evaluate(state["params"], trainer.eval_source)
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
