"""vgs_jax.flop_count against hand counts: dense, conv (and its gradient), scans, cond, while."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgs_jax import flop_count
from vgs_jax import config_lib
from vgs_jax.models import registry
from flax import nnx


def test_dense_and_batched_matmul_match_hand_counts():
    x, w = jnp.ones((4, 5, 6)), jnp.ones((6, 7))
    assert flop_count.matmul_flops(lambda a, b: a @ b, x, w) == 2 * 4 * 5 * 6 * 7
    q, k = jnp.ones((3, 8, 16)), jnp.ones((3, 9, 16))
    assert flop_count.matmul_flops(lambda a, b: jnp.einsum("btd,bsd->bts", a, b), q, k) == 2 * 3 * 8 * 9 * 16


def _conv1d(x, w, groups=1):
    """x [B, T, I], w [k, I / groups, O] -> [B, T - k + 1, O] (VALID)."""
    return jax.lax.conv_general_dilated(x, w, (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"),
                                        feature_group_count=groups)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_forward_and_gradient(groups):
    b, t, i, o, k = 2, 20, 8, 6, 5
    x, w = jnp.ones((b, t, i)), jnp.ones((k, i // groups, o))
    forward = 2 * b * (t - k + 1) * o * (i // groups) * k
    assert flop_count.matmul_flops(lambda a, c: _conv1d(a, c, groups), x, w) == forward
    # Gradients: w.r.t. the kernel a conv of the forward's size; w.r.t. the input a conv over the
    # (k - 1)-padded output gradient, giving all t input frames: the padding's zeros are device work.
    input_grad = 2 * b * t * i * (o // groups) * k
    both = jax.grad(lambda a, c: jnp.sum(_conv1d(a, c, groups) ** 2), argnums=(0, 1))
    assert flop_count.matmul_flops(both, x, w) == 2 * forward + input_grad


def test_scan_multiplies_its_body_and_xla_does_not():
    steps, b, h = 11, 4, 16

    def rnn(x, w):
        def body(s, _):
            return jnp.tanh(s @ w), None
        return jax.lax.scan(body, x, None, length=steps)[0].sum()

    x, w = jnp.ones((b, h)), jnp.ones((h, h))
    assert flop_count.matmul_flops(rnn, x, w) == steps * 2 * b * h * h
    xla = jax.jit(rnn).lower(x, w).compile().cost_analysis()
    xla = xla[0] if isinstance(xla, (list, tuple)) else xla
    assert xla["flops"] < 2 * 2 * b * h * h + 10 * b * h  # the body once: why this module exists
    # Backward: the reverse scan has two matmuls per step (grads w.r.t. the state and w).
    assert flop_count.matmul_flops(jax.grad(rnn, argnums=1), x, w) == 3 * steps * 2 * b * h * h


def test_cond_takes_the_costliest_branch_and_while_with_matmuls_raises():
    x, w = jnp.ones((3, 4)), jnp.ones((4, 4))
    cheap_or_dear = lambda p, a: jax.lax.cond(p, lambda v: v @ w @ w, lambda v: v + 1.0, a)
    assert flop_count.matmul_flops(cheap_or_dear, True, x) == 2 * (2 * 3 * 4 * 4)
    loop = lambda a: jax.lax.while_loop(lambda c: c[1] < 3, lambda c: (c[0] @ w, c[1] + 1), (a, 0))[0]
    with pytest.raises(ValueError, match="while_loop with matmuls"):
        flop_count.matmul_flops(loop, x)
    counter = lambda a: jax.lax.while_loop(lambda c: c < 3, lambda c: c + 1, a)
    assert flop_count.matmul_flops(counter, 0) == 0


def test_platalea_encoder_forward_matches_a_hand_count():
    """Conv front end + BiGRU layers + vectorial attention, every padded frame counted."""
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    s = config.model.speech
    encoder = registry.build_speech_encoder(config.model.speech_encoder, s, 13, rngs=nnx.Rngs(0))
    b, frames = 3, 50
    x, mask = jnp.zeros((b, frames, 13)), jnp.ones((b, frames), bool)
    graphdef, state = nnx.split(encoder)
    count = flop_count.matmul_flops(lambda st, a, m: nnx.merge(graphdef, st)(a, m), state, x, mask)
    t = (frames - s.conv_kernel) // s.conv_stride + 1
    c, h = s.conv_channels, s.hidden
    want = 2 * b * t * c * 13 * s.conv_kernel
    width = c
    for _ in range(s.num_layers):
        want += 2 * 2 * b * t * 3 * h * (width + h)  # two directions, three gates, input + recurrent
        width = 2 * h
    want += 2 * b * t * 2 * width * s.attention_hidden  # attention: width -> hidden -> width
    np.testing.assert_allclose(count, want, rtol=0, atol=0)
