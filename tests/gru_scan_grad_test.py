"""The GRU's hand-written backward pass (`recurrent_layers._gru_states`) against autodiff of a plain
step-by-step GRU with per-step state freezing (the obvious formulation), with padding, both
directions, float32 and bfloat16 products."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgs_jax.models.recurrent_layers import gru_scan, reverse_within_length


def _plain_gru_scan(xi, w_hh, b_hh, mask, dtype):
    """Obvious GRU: step through t, freeze the state at padded frames, zero their outputs."""
    hidden = w_hh.shape[-1]

    def step(h, inputs):
        x, m = inputs
        hh = jnp.einsum("dbh,dgh->dbg", h.astype(dtype), w_hh.astype(dtype),
                        preferred_element_type=jnp.float32) + b_hh[:, None]
        r = jax.nn.sigmoid(x[..., :hidden] + hh[..., :hidden])
        z = jax.nn.sigmoid(x[..., hidden:2 * hidden] + hh[..., hidden:2 * hidden])
        n = jnp.tanh(x[..., 2 * hidden:] + r * hh[..., 2 * hidden:])
        h_new = (1 - z) * n + z * h
        m = m[None, :, None]
        return jnp.where(m, h_new, h), jnp.where(m, h_new, 0.0)

    h0 = jnp.zeros((xi.shape[0], xi.shape[2], hidden))
    return jnp.moveaxis(jax.lax.scan(step, h0, (jnp.moveaxis(xi, 1, 0), mask))[1], 0, 1)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 2e-2)])
def test_gru_scan_values_and_gradients_match_plain_autodiff(dtype, tol):
    d, t, b, h = 2, 7, 3, 5
    keys = jax.random.split(jax.random.key(0), 4)
    xi = jax.random.normal(keys[0], (d, t, b, 3 * h))
    w_hh = 0.5 * jax.random.normal(keys[1], (d, 3 * h, h))
    b_hh = 0.5 * jax.random.normal(keys[2], (d, 3 * h))
    mask = jnp.arange(t)[:, None] < jnp.array([7, 4, 1])[None, :]  # [T, B] prefix mask
    probe = jax.random.normal(keys[3], (d, t, b, h))

    def loss(fn, *args):
        return jnp.sum(jnp.sin(fn(*args, mask, dtype)) * probe)

    def outputs_and_grads(fn):
        grads = jax.grad(lambda *a: loss(fn, *a), argnums=(0, 1, 2))(xi, w_hh, b_hh)
        return fn(xi, w_hh, b_hh, mask, dtype), grads

    (out, got), (out_want, want) = jax.jit(lambda: (outputs_and_grads(gru_scan),
                                                    outputs_and_grads(_plain_gru_scan)))()
    np.testing.assert_allclose(out, out_want, atol=tol, rtol=tol)
    for name, g, w in zip(("xi", "w_hh", "b_hh"), got, want):
        np.testing.assert_allclose(g, w, atol=tol * max(1.0, float(jnp.abs(w).max())), rtol=tol, err_msg=name)
    np.testing.assert_array_equal(np.asarray(got[0])[:, ~np.asarray(mask)], 0.0)  # padding gets no gradient


def test_reverse_within_length_gradient_is_the_same_permutation():
    x = jax.random.normal(jax.random.key(1), (2, 5, 3))
    lengths = jnp.array([3, 5])
    probe = jax.random.normal(jax.random.key(2), (2, 5, 3))
    got = jax.jit(jax.grad(lambda v: jnp.sum(reverse_within_length(v, lengths) * probe)))(x)
    idx = np.array([[2, 1, 0, 3, 4], [4, 3, 2, 1, 0]])  # by hand: an involution, so its own transpose
    np.testing.assert_array_equal(got, np.take_along_axis(np.asarray(probe), idx[..., None], axis=1))
