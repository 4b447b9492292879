"""Matmul and convolution FLOPs of a JAX function, counted from its jaxpr.

XLA's ``compiled.cost_analysis()`` counts the body of a ``lax.scan`` once, so it undercounts a
recurrent encoder by its number of time steps. ``matmul_flops(fn, *args)`` traces ``fn`` and sums

- ``dot_general``: 2 x (output elements) x (contracted size),
- ``conv_general_dilated``: 2 x (output elements) x (kernel elements per output channel),

multiplying a scan body's count by its ``length`` and recursing into every nested jaxpr (jit,
custom_jvp/vjp, remat; a ``cond`` counts its costliest branch). Elementwise work is not counted,
the usual convention for FLOP/s and MFU. Every padded frame counts: this is the work the device
does, not the work the valid frames need. A ``while_loop`` with matmuls inside raises: its trip
count is unknown when tracing. ``matmul_flops_by_dtype`` splits the count by operand dtype (what
a mixed-precision policy really multiplies in).
"""
import collections
import math
from typing import Any, Callable

import jax
from jax.extend import core as jax_core


def matmul_flops(fn: Callable, *args: Any, **kwargs: Any) -> float:
    """FLOPs of the matmuls and convolutions of one call ``fn(*args, **kwargs)`` (traced, not run)."""
    return float(sum(matmul_flops_by_dtype(fn, *args, **kwargs).values()))


def matmul_flops_by_dtype(fn: Callable, *args: Any, **kwargs: Any) -> dict[str, float]:
    """``matmul_flops`` split by the dtype of each product's left operand, e.g. {"bfloat16": ...}."""
    return dict(jaxpr_flops(jax.make_jaxpr(fn)(*args, **kwargs).jaxpr))


def jaxpr_flops(jaxpr: jax_core.Jaxpr) -> collections.Counter:
    """FLOPs of the matmuls and convolutions of one evaluation of ``jaxpr``, by operand dtype."""
    total = collections.Counter()
    for eqn in jaxpr.eqns:
        total.update(_equation_flops(eqn))
    return total


def _equation_flops(eqn: jax_core.JaxprEqn) -> collections.Counter:
    name = eqn.primitive.name
    out_elements = math.prod(eqn.outvars[0].aval.shape) if eqn.outvars else 0
    if name in ("dot_general", "conv_general_dilated"):
        lhs, rhs = (v.aval for v in eqn.invars[:2])
        if name == "dot_general":
            (lhs_contracting, _), _ = eqn.params["dimension_numbers"]
            per_output = math.prod(lhs.shape[d] for d in lhs_contracting)
        else:
            per_output = math.prod(rhs.shape) / rhs.shape[eqn.params["dimension_numbers"].rhs_spec[0]]
        return collections.Counter({lhs.dtype.name: 2.0 * out_elements * per_output})
    if name == "cond":
        return max((jaxpr_flops(branch.jaxpr) for branch in eqn.params["branches"]),
                   key=lambda c: sum(c.values()))
    inner = collections.Counter()
    for sub in jax_core.jaxprs_in_params(eqn.params):
        inner.update(jaxpr_flops(_open(sub)))
    if name == "scan":
        return collections.Counter({k: v * eqn.params["length"] for k, v in inner.items()})
    if name == "while" and inner:
        raise ValueError("matmul_flops: a while_loop with matmuls inside has no static trip count; "
                         "use lax.scan (or fori_loop with static bounds) to count it.")
    return inner


def _open(jaxpr) -> jax_core.Jaxpr:
    return jaxpr.jaxpr if isinstance(jaxpr, jax_core.ClosedJaxpr) else jaxpr
