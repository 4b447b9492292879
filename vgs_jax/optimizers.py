"""Learning-rate schedules and optimizers: platalea's cyclic cosine, warm-up + cosine, constant,
DAVEnet's step decay; Adam or SGD with PyTorch semantics, L2 decay, clipping and frozen parts."""

import jax
import jax.numpy as jnp
import ml_collections
import optax

SCHEDULES = ("cyclic", "warmup_cosine", "constant", "step")
OPTIMIZERS = ("adam", "sgd")


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
