"""Rematerialisation: a layer's activations recomputed in the backward pass instead of stored.

`config.model.remat=True` trades compute for memory in both towers: each layer (recurrent layer,
Transformer layer, DAVEnet stage, ResDAVEnet block; pixel-CNN stage, VGG16 block, ResNet stem and
bottleneck) keeps only its inputs for the backward pass and recomputes the rest there
(``jax.checkpoint``). Gradients are unchanged (tested);
mutable state the layer updates (BatchNorm statistics, dropout RNG counts) is carried out of the
checkpoint, so train-mode updates are the same too.
"""
from typing import Callable

import jax
from flax import nnx


def apply(fn: Callable, module, *args, enabled: bool):
    """``fn(module, *args)`` (module: an nnx.Module or a tuple of them; args: arrays or None), under
    ``jax.checkpoint`` when ``enabled``."""
    if not enabled:
        return fn(module, *args)
    graphdef, state = nnx.split(module)

    def run(state, *args):
        inner = nnx.merge(graphdef, state)
        return fn(inner, *args), nnx.state(inner, nnx.Not(nnx.Param))

    out, updates = jax.checkpoint(run)(state, *args)
    nnx.update(module, updates)
    return out


def call(layer: nnx.Module, *args, enabled: bool):
    """``layer(*args)``, rematerialised when ``enabled``."""
    return apply(_call, layer, *args, enabled=enabled)


def _call(layer, *args):
    return layer(*args)
