"""Matmul and convolution FLOPs of a JAX function, counted from its jaxpr.

XLA's ``compiled.cost_analysis()`` counts the body of a ``lax.scan`` once, so it undercounts a
recurrent encoder by its number of time steps. ``matmul_flops(fn, *args)`` traces ``fn`` and sums

- ``dot_general``: 2 x (output elements) x (contracted size),
- ``conv_general_dilated``: 2 x (output elements) x (kernel elements per output channel),

multiplying a scan body's count by its ``length`` and recursing into every nested jaxpr (jit,
custom_jvp/vjp, remat; a ``cond`` counts its costliest branch). Elementwise work is not counted,
the usual convention for FLOP/s and MFU. Every padded frame counts: this is the work the device
does, not the work the valid frames need. A ``while_loop`` with matmuls inside raises: its trip
count is unknown when tracing.
"""
import math
from typing import Any, Callable

import jax
from jax.extend import core as jax_core


def matmul_flops(fn: Callable, *args: Any, **kwargs: Any) -> float:
    """FLOPs of the matmuls and convolutions of one call ``fn(*args, **kwargs)`` (traced, not run)."""
    return jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs).jaxpr)


def jaxpr_flops(jaxpr: jax_core.Jaxpr) -> float:
    """FLOPs of the matmuls and convolutions of one evaluation of ``jaxpr`` (see module doc)."""
    return float(sum(_equation_flops(eqn) for eqn in jaxpr.eqns))


def _equation_flops(eqn: jax_core.JaxprEqn) -> float:
    name = eqn.primitive.name
    out_elements = math.prod(eqn.outvars[0].aval.shape) if eqn.outvars else 0
    if name == "dot_general":
        (lhs_contracting, _), _ = eqn.params["dimension_numbers"]
        lhs_shape = eqn.invars[0].aval.shape
        return 2.0 * out_elements * math.prod(lhs_shape[d] for d in lhs_contracting)
    if name == "conv_general_dilated":
        rhs_shape = eqn.invars[1].aval.shape
        out_channels = rhs_shape[eqn.params["dimension_numbers"].rhs_spec[0]]
        return 2.0 * out_elements * math.prod(rhs_shape) / out_channels
    if name == "cond":
        return max(jaxpr_flops(branch.jaxpr) for branch in eqn.params["branches"])
    inner = sum(jaxpr_flops(_open(sub)) for sub in jax_core.jaxprs_in_params(eqn.params))
    if name == "scan":
        return inner * eqn.params["length"]
    if name == "while" and inner:
        raise ValueError("matmul_flops: a while_loop with matmuls inside has no static trip count; "
                         "use lax.scan (or fori_loop with static bounds) to count it.")
    return inner


def _open(jaxpr) -> jax_core.Jaxpr:
    return jaxpr.jaxpr if isinstance(jaxpr, jax_core.ClosedJaxpr) else jaxpr
