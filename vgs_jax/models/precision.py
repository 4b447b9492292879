"""Mixed precision for the encoders: products in the compute dtype, results in float32.

`model.dtype` ("float32", "bfloat16", "float16") is the compute dtype of the encoders' matmuls;
parameters, optimiser state, nonlinearities of recurrent cells and the loss stay float32.
`mixed_einsum` is the product every such matmul uses, so the backward pass multiplies in the
compute dtype too (tests/mixed_precision_test.py counts it from the train step's jaxpr).
"""
import functools

import jax
import jax.numpy as jnp


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def mixed_einsum(spec: str, a: jax.Array, b: jax.Array) -> jax.Array:
    """``einsum(spec, a, b)`` of compute-dtype operands (e.g. bfloat16) accumulated and returned in float32,
    whose gradients are also products in the operands' dtype: the output cotangent is cast to it first.
    (Plain ``preferred_element_type=float32`` would differentiate into float32 x bfloat16 products,
    which run in float32.)"""
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)


def _mixed_einsum_fwd(spec, a, b):
    return mixed_einsum(spec, a, b), (a, b)


def _mixed_einsum_bwd(spec, residuals, cotangent):
    a, b = residuals
    _, pullback = jax.vjp(lambda x, y: jnp.einsum(spec, x, y), a, b)
    return pullback(cotangent.astype(a.dtype))


mixed_einsum.defvjp(_mixed_einsum_fwd, _mixed_einsum_bwd)
