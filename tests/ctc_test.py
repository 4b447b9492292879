"""CTC loss against a slow obvious forward algorithm and hand-computed values; masking; greedy decoding."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgs_jax.objectives import ctc


def _slow_ctc_nll(log_probs: np.ndarray, labels: list[int]) -> float:
    """-log p(labels | frames) by enumerating every frame path that collapses to `labels` (blank 0)."""
    t, v = log_probs.shape
    total = 0.0
    for path in itertools.product(range(v), repeat=t):
        collapsed = [k for i, k in enumerate(path) if k != 0 and (i == 0 or path[i - 1] != k)]
        if collapsed == labels:
            total += math.exp(sum(log_probs[i, k] for i, k in enumerate(path)))
    return -math.log(total)


def _log_softmax(x):
    return np.asarray(jax.nn.log_softmax(jnp.asarray(x, jnp.float32), axis=-1), np.float64)


def test_two_frames_one_label_by_hand():
    """T=2, label [1]: paths (1,1), (1,b), (b,1)."""
    p = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]])  # frames x (blank, 1, 2)
    expected = -math.log(p[0, 1] * p[1, 1] + p[0, 1] * p[1, 0] + p[0, 0] * p[1, 1])
    loss, count = ctc.ctc_loss(jnp.log(p)[None], jnp.ones((1, 2), bool), jnp.array([[1]]), jnp.array([1]),
                               jnp.array([True]))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)  # label length 1: per-unit = per-utterance
    assert float(count) == 1.0


def test_matches_path_enumeration_with_repeats_and_padding():
    rng = np.random.default_rng(0)
    b, t, v = 4, 5, 3
    logits = rng.normal(size=(b, t, v)).astype(np.float32)
    frames = np.array([5, 4, 5, 3])
    labels = np.array([[1, 1, 0], [2, 1, 2], [2, 0, 0], [1, 2, 0]])  # [1, 1] needs a blank between the 1s
    label_len = np.array([2, 3, 1, 2])
    mask = np.arange(t)[None, :] < frames[:, None]
    loss, count = ctc.ctc_loss(jnp.asarray(logits), jnp.asarray(mask), jnp.asarray(labels), jnp.asarray(label_len),
                               jnp.ones(b, bool))
    expected = np.mean([_slow_ctc_nll(_log_softmax(logits[i, :frames[i]]), list(labels[i, :label_len[i]]))
                        / label_len[i] for i in range(b)])
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)
    assert float(count) == b


def test_masked_example_adds_no_loss_and_no_gradient():
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(3, 6, 4)), jnp.float32)
    mask = jnp.ones((3, 6), bool)
    labels, label_len = jnp.array([[1, 2], [3, 3], [2, 0]]), jnp.array([2, 2, 1])
    use = jnp.array([True, False, True])

    def f(x):
        return ctc.ctc_loss(x, mask, labels, label_len, use)[0]

    loss, grad = jax.value_and_grad(f)(logits)
    kept = ctc.ctc_loss(logits[jnp.array([0, 2])], mask[:2], labels[jnp.array([0, 2])], label_len[jnp.array([0, 2])],
                        jnp.ones(2, bool))[0]
    np.testing.assert_allclose(float(loss), float(kept), rtol=1e-6)
    assert np.all(np.asarray(grad[1]) == 0.0) and np.any(np.asarray(grad[0]) != 0.0)
    none, count = ctc.ctc_loss(logits, mask, labels, label_len, jnp.zeros(3, bool))
    assert float(none) == 0.0 and float(count) == 0.0


def test_greedy_decode_collapses_repeats_and_drops_blanks():
    best = np.array([[1, 1, 0, 1, 2, 2, 0, 3], [0, 0, 0, 0, 0, 0, 0, 0]])
    logits = jax.nn.one_hot(best, 4)
    mask = jnp.asarray(np.arange(8)[None, :] < np.array([[7], [8]]))  # row 0's last frame (3) is padding
    ids, lengths = ctc.greedy_decode(logits, mask)
    assert lengths.tolist() == [3, 0]
    assert np.asarray(ids).tolist() == [[1, 1, 2, 0, 0, 0, 0, 0], [0] * 8]


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="logits"):
        ctc.ctc_loss(jnp.zeros((2, 3)), jnp.ones((2, 3), bool), jnp.zeros((2, 1), jnp.int32), jnp.ones(2, jnp.int32),
                     jnp.ones(2, bool))
