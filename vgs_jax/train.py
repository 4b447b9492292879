"""Training: the jit-compiled train step, the `Trainer` and `train_and_evaluate`.

The objective comes from `vgs_jax.objectives.registry.make_loss_fn` (config.loss), the optimizer
and learning-rate schedule from `vgs_jax.optimizers` (config.optimizer).

The train state is a plain pytree `{"step", "params", "model_state", "opt_state"}`: `params` the
model's `nnx.Param`s and `model_state` its BatchNorm statistics and VQ codebooks (updated by the
step, not by gradients), both pure dicts, replicated over a 1-D ("data",) mesh; batches are
sharded over the same mesh, so every loss (and every BatchNorm) sees the GLOBAL batch whatever the
device count. Randomness (ResDAVEnet jitter, dropout, sampled impostors) comes from
`fold_in(key(config.seed), step)`, so a resumed run draws exactly what an uninterrupted one would.
"""

import functools
import os
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from vgs_jax import audio_features
from vgs_jax import caption_mix
from vgs_jax import checkpointing
from vgs_jax import config_checks
from vgs_jax import data_sources
from vgs_jax import embedding_cache
from vgs_jax import evaluation
from vgs_jax import input_pipeline
from vgs_jax import metric_logging
from vgs_jax import optimizers
from vgs_jax import preemption
from vgs_jax import ssl_targets
from vgs_jax import text_units
from vgs_jax import workdir as run_workdir
from vgs_jax.kws import keywords
from vgs_jax.models import dual_encoder
from vgs_jax.models import image_trunks
from vgs_jax.models import registry
from vgs_jax.multilingual import data as ml_data
from vgs_jax.multilingual import evaluation as ml_evaluation
from vgs_jax.multilingual import model as ml_model
from vgs_jax.multilingual import objective as ml_objective
from vgs_jax.objectives.multitask import make_multitask_loss_fn
from vgs_jax.objectives.registry import make_loss_fn


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def create_model(config: ml_collections.ConfigDict) -> dual_encoder.DualEncoder:
    """The dual encoder described by `config.model`, initialised from `config.seed` (and the image
    trunk's pretrained weights when `config.model.image.weights` names a file); with a
    `config.multilingual` section, one speech tower per language (`vgs_jax.multilingual.model`)."""
    num_features = audio_features.num_features(config.features.recipe)
    if config.get("multilingual"):
        return ml_model.build_model(config, num_features=num_features, rngs=nnx.Rngs(config.seed))
    return dual_encoder.build_dual_encoder(config.model, num_features=num_features, rngs=nnx.Rngs(config.seed))


def trainable_mask(config: ml_collections.ConfigDict, params: dict) -> dict | None:
    """Optimizer mask for a frozen image trunk (`model.image.freeze_trunk`) and frozen parts of a speech
    encoder with a `trainable_mask` (`model.speech.freeze`, the SSL encoders), else None."""
    speech_cls = registry.SPEECH_ENCODERS.get(config.model.speech_encoder)
    speech_freeze = (config.model.speech.get("freeze", "none") if hasattr(speech_cls, "trainable_mask") else "none")
    if not config.model.image.get("freeze_trunk", False) and speech_freeze == "none":
        return None
    mask = jax.tree.map(lambda _: True, params)
    if config.model.image.get("freeze_trunk", False):
        mask["image_encoder"] = image_trunks.trainable_mask(params["image_encoder"])
    if speech_freeze != "none":
        mask["speech_encoder"] = speech_cls.trainable_mask(params["speech_encoder"], speech_freeze)
    return mask


def create_train_state(params: Any, model_state: Any, tx: optax.GradientTransformation) -> dict:
    return {"step": jnp.zeros((), jnp.int32), "params": params, "model_state": model_state,
            "opt_state": tx.init(params)}


def train_step(state, batch, *, template, tx, loss_fn, learning_rate_fn, image_key, seed,
               embedding_cache_chunks=1):
    """One optimisation step on a (globally sharded) batch; returns (new_state, metrics).

    The forward pass runs in train mode: BatchNorm uses batch statistics and updates its running
    averages, VQ codebooks get their EMA update from the same batch, both returned in the new
    state's model_state. embedding_cache_chunks > 1: the gradient comes from
    `embedding_cache.cached_value_and_grad` (same value, activations of one sub-batch at a time)."""
    key = jax.random.fold_in(jax.random.key(seed), state["step"])
    k_jitter, k_loss, k_dropout = jax.random.split(key, 3)
    if embedding_cache_chunks > 1:
        (loss, loss_metrics), grads = embedding_cache.cached_value_and_grad(
            state["params"], batch, template=template, model_state=state["model_state"], loss_fn=loss_fn,
            image_key=image_key, chunks=embedding_cache_chunks, k_jitter=k_jitter, k_dropout=k_dropout,
            k_loss=k_loss)
        return _apply(state, tx, learning_rate_fn, loss, loss_metrics, grads, state["model_state"])

    def compute_loss(params):
        model = template.merge(params, state["model_state"], train=True)
        nnx.reseed(model, default=k_dropout)  # fresh dropout masks every step
        speech = model.encode_speech(batch["audio"], batch["audio_mask"], key=k_jitter)
        image = model.encode_image(batch[image_key], batch["example_mask"])
        loss, metrics = loss_fn(model, speech, image, batch, k_loss)
        model.update_codebooks(speech)
        return loss, (metrics, template.model_state_of(model))

    (loss, (loss_metrics, model_state)), grads = jax.value_and_grad(compute_loss, has_aux=True)(state["params"])
    return _apply(state, tx, learning_rate_fn, loss, loss_metrics, grads, model_state)


def _apply(state, tx, learning_rate_fn, loss, loss_metrics, grads, model_state):
    """The optimiser update and the step's metrics; returns (new_state, metrics)."""
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {
        "loss": loss,
        **loss_metrics,
        "grad_norm": optax.tree.norm(grads),
        "param_norm": optax.tree.norm(params),
        "learning_rate": learning_rate_fn(state["step"]),
        # Checked before every save: a state is only written when all of this step is finite.
        "finite": jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(grads)) & _all_finite(params),
    }
    new_state = {"step": state["step"] + 1, "params": params, "model_state": model_state, "opt_state": opt_state}
    return new_state, metrics


def _all_finite(tree) -> jax.Array:
    """bool scalar: every element of every leaf is finite."""
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)]))


def warm_start_variables(template: dual_encoder.Template, workdir: str, checkpoint: str = "best") -> tuple[dict, dict]:
    """ResDAVEnet-VQ's "->" recipe: (params, model_state) of `template`'s model with every entry
    whose path and shape exist in `workdir`'s checkpoint copied from it; the rest (e.g. new
    codebooks) stays freshly initialised. Prints what was kept fresh."""
    workdir = os.path.abspath(workdir)
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"config.init_from={workdir}: no such run folder; give the --workdir of a "
                                "finished run.")
    with checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
        step, old_params, old_state = ckpt.restore_model_variables(checkpoint)
    params, copied, fresh = checkpointing.fit_tree(template.initial_params, old_params, partial=True)
    model_state, copied_state, fresh_state = checkpointing.fit_tree(
        template.initial_model_state, old_state, partial=True)
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
        data = config.dataset
        self.train_source = caption_mix.open_train_source(data, build_if_missing=data.build_if_missing)
        self.eval_source = data_sources.open_config_split(data, data.eval_split)
        if config.get("multilingual"):  # a row = one caption in every language; train_source: the first's
            self.train_views = ml_data.parallel_views(self.train_source, config.multilingual)
            self.train_source = next(iter(self.train_views.values()))
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
        self.featurizer = audio_features.Featurizer.from_recipe(config.features.recipe)
        fields = [f for f in (keywords.example_fields(config), ssl_targets.example_fields(config, self.train_source),
                              text_units.example_fields(config))
                  if f is not None]
        self.example_fields = (lambda ex: {k: v for f in fields for k, v in f(ex).items()}) if fields else None
        self.learning_rate_fn = optimizers.create_learning_rate_fn(
            config.optimizer, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps
        )
        loss_fn = (ml_objective.make_loss_fn(config, self.mesh) if config.get("multilingual")
                   else make_multitask_loss_fn(make_loss_fn(config.loss, config.model, self.mesh), config))
        self.template = dual_encoder.Template(create_model(config))
        params, model_state = self.template.initial_params, self.template.initial_model_state
        cache_chunks = config.train.embedding_cache_chunks
        embedding_cache.check_supported(cache_chunks, model_state=model_state, batch_size=config.batch_size,
                                        padded_batch_size=input_pipeline.padded_batch_size(config.batch_size))
        if config.init_from:
            params, model_state = warm_start_variables(self.template, config.init_from)
        self.tx = optimizers.create_optimizer(config.optimizer, self.learning_rate_fn,
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
            embedding_cache_chunks=cache_chunks,
        )
        self.train_step = jax.jit(step_fn, donate_argnums=0, out_shardings=self.replicated)

    def train_iterator(self):
        c = self.config
        if c.get("multilingual"):  # every language's captions of the same images
            return ml_data.make_train_iterator(
                self.train_views, global_batch_size=c.batch_size, featurizer=self.featurizer,
                seed=c.seed, max_frames=c.features.max_frames, bucket_boundaries=c.features.bucket_boundaries,
                image_key=c.dataset.image_key)
        return input_pipeline.make_train_iterator(
            self.train_source,
            global_batch_size=c.batch_size,
            featurizer=self.featurizer,
            seed=c.seed,
            max_frames=c.features.max_frames,
            bucket_boundaries=c.features.bucket_boundaries,
            image_key=c.dataset.image_key,
            example_fields=self.example_fields,
        )

    def evaluate(self, state, source) -> dict:
        """Retrieval metrics of the train state's model on `source` (all captions vs all unique images)."""
        c = self.config
        evaluate_split = (functools.partial(ml_evaluation.evaluate_split, ml_config=c.multilingual)
                          if c.get("multilingual") else evaluation.evaluate_split)
        return evaluate_split(
            self.template.with_model_state(state["model_state"]),
            state["params"],
            source,
            batch_size=c.eval_batch_size,
            features_config=c.features,
            image_key=c.dataset.image_key,
            mesh=self.mesh,
        )


def _say(message: str) -> None:
    """User-facing progress on stdout (process 0 only)."""
    if jax.process_index() == 0:
        print(message, flush=True)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains (resuming from the newest intact checkpoint in `workdir`); returns the final metrics.

    Before any data or model is built, the config is validated, the workdir locked against a second
    run, and a config differing from the run already there refused (nothing written). config.json
    is written once the data and model are ready. SIGTERM/SIGINT save a checkpoint and raise
    `preemption.TrainingInterrupted`; a failed save raises `checkpointing.CheckpointSaveError`;
    a non-finite loss, gradient or parameter raises NonFiniteLossError and nothing non-finite is
    ever saved.
    """
    config_checks.check_training_config(config)
    workdir = os.path.abspath(workdir)
    with run_workdir.exclusive(workdir):
        needs_config_json = run_workdir.check_same_config(workdir, config)
        trainer = Trainer(config)
        if needs_config_json and jax.process_index() == 0:
            run_workdir.write_config(workdir, config.to_dict())
        with checkpointing.Checkpointer(workdir, keep=config.keep_checkpoints) as ckpt, \
                preemption.StopSignals() as stop:
            return _train(trainer, ckpt, stop, workdir)


class _FiniteGuard:
    """Collects per-step device metrics and checks, when asked, that every step was finite."""

    def __init__(self, workdir: str, ckpt: checkpointing.Checkpointer):
        self._workdir, self._ckpt, self._pending = workdir, ckpt, []

    def add(self, metrics: dict) -> None:
        self._pending.append(metrics)

    def check(self, step: int) -> list[dict]:
        """Host copies of the metrics since the last check; NonFiniteLossError at the first bad step."""
        host = jax.device_get(self._pending)
        self._pending.clear()
        for i, m in enumerate(host):
            if not bool(m["finite"]):
                kept = self._ckpt.latest_step()
                where = (f"the last good checkpoint {self._workdir}/checkpoints/{kept} is kept" if kept is not None
                         else "no checkpoint had been written yet")
                raise NonFiniteLossError(
                    f"Non-finite training state at step {step - len(host) + i + 1} (loss {float(m['loss'])}, "
                    f"gradient norm {float(m['grad_norm'])}, parameter norm {float(m['param_norm'])}). "
                    f"Training stopped; {where} and nothing non-finite was saved. Try a lower "
                    "optimizer.lr_max or optimizer.grad_clip_norm > 0.")
        return host


def _train(trainer: Trainer, ckpt: checkpointing.Checkpointer, stop: preemption.StopSignals,
           workdir: str) -> dict:
    config = trainer.config
    train_iter = trainer.train_iterator()
    state, start_step = trainer.initial_state, 0
    resumed = ckpt.restore_newest_intact(state, say=_say)
    if resumed is not None:
        start_step, state, data_state = resumed
        train_iter.set_state(data_state)
        _say(f"Resumed from step {start_step} ({workdir}).")
        if start_step not in ckpt.all_steps():  # resumed from the best checkpoint: keep "latest" true
            ckpt.save(start_step, state, data_state=data_state, config=config.to_dict())
    num_params = sum(x.size for x in jax.tree.leaves(state["params"]))
    _say(f"{config.dataset.name}: {len(trainer.train_source)} training captions, {trainer.steps_per_epoch} "
         f"steps/epoch, {trainer.total_steps} steps of {config.batch_size}; {num_params:,} parameters on "
         f"{trainer.mesh.size} device(s).")
    if start_step >= trainer.total_steps:
        _say(f"Already trained to step {start_step}; nothing to do.")
        return {}
    config_dict = config.to_dict()
    guard = _FiniteGuard(workdir, ckpt)
    final_metrics: dict = {}
    saved_step = start_step

    def save(step, state) -> None:
        nonlocal saved_step
        guard.check(step)
        ckpt.save(step, state, data_state=train_iter.get_state(), config=config_dict)
        saved_step = step

    def stop_now(step, state):
        if saved_step != step:
            save(step, state)
        where = f"checkpoint {ckpt.workdir}/checkpoints/{step}" if step else "nothing to save yet"
        raise preemption.TrainingInterrupted(
            f"Stopped by {stop.name} after step {step}; {where}. Run the same command again to resume "
            "from it.", stop.signum)

    with metric_logging.MetricLogger(workdir, total_steps=trainer.total_steps, batch_size=config.batch_size,
                                     resume_step=start_step) as logger:
        for step in range(start_step + 1, trainer.total_steps + 1):
            if stop.agreed():
                stop_now(step - 1, state)
            batch = input_pipeline.shard_batch(next(train_iter), trainer.mesh)
            state, metrics = trainer.train_step(state, batch)
            guard.add(metrics)
            is_last = step == trainer.total_steps
            if step % config.log_every_steps == 0 or is_last:
                host = guard.check(step)
                means = {f"train/{k}": float(np.mean([m[k] for m in host])) for k in host[0] if k != "finite"}
                means["train/learning_rate"] = float(host[-1]["learning_rate"])
                final_metrics.update(logger.train_progress(step, means))
            if step % config.eval_every_steps == 0 or is_last:
                guard.check(step)
                try:
                    with stop.abortable():
                        results = trainer.evaluate(state, trainer.eval_source)
                except preemption.AbortValidation:
                    stop_now(step, state)
                scalars = evaluation.flat_scalars(results, prefix="eval")
                logger.write(step, scalars)
                final_metrics.update(scalars)
                _say(f"Validation at step {step}:\n{evaluation.format_results(results)}")
                if ckpt.save_best(step, state, data_state=train_iter.get_state(), config=config_dict,
                                  r10=results["speech_to_image"]["r10"]):
                    _say(f"New best validation speech->image R@10 at step {step}.")
            if step % config.checkpoint_every_steps == 0 or is_last:
                save(step, state)
    return final_metrics
