"""Tests for the grounded + self-supervised objective: span masks, k-means targets, HuBERT's masked-prediction
loss (against slow NumPy versions), its gradients and its weight in the trainer's loss."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.model_test_helpers import full_precision_matmuls, train_batch  # noqa: F401 (autouse fixture)
from vgs_jax import config_lib
from vgs_jax import ssl_targets
from vgs_jax import train
from vgs_jax.objectives import masked_prediction as mp
from vgs_jax.objectives import registry

P, L = 0.8, 10


def _expected_masked(length: int, t: int) -> np.ndarray:
    """Exact P(frame masked) for `length` valid frames: n starts uniformly without replacement among the
    N = length - L + 1 fitting ones, n = min(max(floor(P length / L + u), 2), N)."""
    n_fit = max(length - L + 1, 0)
    base = P * length / L
    out = np.zeros(t)
    for n, prob in ((math.floor(base), 1 - (base - math.floor(base))), (math.floor(base) + 1, base - math.floor(base))):
        n = min(max(n, 2), n_fit)
        for f in range(t):
            covering = sum(1 for s in range(max(0, f - L + 1), f + 1) if s < n_fit)
            out[f] += prob * (1 - math.comb(n_fit - covering, n) / math.comb(n_fit, n) if n_fit else 0.0)
    return out


def test_span_masks_have_the_published_statistics():
    t, lengths, draws = 40, np.array([40, 27, 9, 0]), 2000
    frame_mask = jnp.asarray(np.arange(t)[None, :] < lengths[:, None])
    keys = jax.random.split(jax.random.key(0), draws)
    starts = np.asarray(jax.vmap(lambda k: mp.span_starts(k, frame_mask, mask_prob=P, mask_length=L))(keys))
    masks = np.asarray(jax.vmap(lambda k: mp.span_mask(k, frame_mask, mask_prob=P, mask_length=L))(keys))
    for row, length in enumerate(lengths):
        n_fit = max(length - L + 1, 0)
        counts = starts[:, row].sum(-1)
        allowed = {min(max(math.floor(P * length / L) + d, 2), n_fit) for d in (0, 1)}
        assert set(np.unique(counts)) <= allowed
        assert not starts[:, row, n_fit:].any()  # every span fits inside the utterance
        assert not masks[:, row, length:].any()
        np.testing.assert_allclose(masks[:, row].mean(0), _expected_masked(length, t), atol=0.05)  # 4.5 sd
    assert masks[:, 0].mean() == pytest.approx(_expected_masked(40, t).mean(), abs=0.01)  # ~0.6 masked, not 0.8
    assert not masks[:, 2:].any()  # 9 frames: no span of 10 fits; no frames: nothing


def test_spans_cover_each_start_and_the_next_frames():
    rng = np.random.default_rng(0)
    starts = rng.random((3, 40)) < 0.08
    slow = np.zeros_like(starts)
    for b, s in zip(*np.nonzero(starts)):
        slow[b, s:s + 7] = True
    np.testing.assert_array_equal(np.asarray(mp.spans(jnp.asarray(starts), 7)), slow)


def test_kmeans_finds_separated_clusters_and_assign_is_nearest():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0]])
    truth = rng.integers(0, 3, 300)
    x = means[truth] + rng.normal(size=(300, 3))
    centroids = ssl_targets.kmeans(x, 3, iters=20, seed=1)
    z = ssl_targets.assign(x, centroids)
    slow = np.array([np.argmin([np.sum((p - c) ** 2) for c in centroids]) for p in x])
    np.testing.assert_array_equal(z, slow)
    assert len({(a, b) for a, b in zip(truth, z)}) == 3  # the same partition, up to relabelling
    for k in range(3):
        np.testing.assert_allclose(centroids[k], x[z == k].mean(0))  # converged: each centroid is its mean
    with pytest.raises(ValueError, match="ssl_clusters"):
        ssl_targets.kmeans(x[:2], 3, iters=5, seed=0)


def test_labels_per_mfcc_frame_and_alignment_to_conv_frames():
    wave = (np.random.default_rng(0).normal(size=1000) * 3000).astype(np.int16)
    centroids = np.random.default_rng(1).normal(size=(4, 39)) * 20
    z = ssl_targets.labels(wave, centroids, max_samples=1600)
    assert z.shape == (11,) and (z[7:] == -1).all()  # 1 + 1000 // 160 = 7 frames, then none
    np.testing.assert_array_equal(z[:7], ssl_targets.assign(ssl_targets.mfcc_frames(wave, 1600), centroids))
    targets = jnp.asarray(np.arange(2 * 11).reshape(2, 11))
    for stride, kernel, frames in ((320, 400, 7), (20, 24, 90)):
        got = np.asarray(mp.frame_targets(targets, frames, stride, kernel))
        for t in range(frames):  # the MFCC frame (centred at 160 j) nearest the conv frame's centre
            j = int(np.argmin(np.abs(160 * np.arange(40) - (stride * t + (kernel - 1) / 2))))
            np.testing.assert_array_equal(got[:, t], targets[:, j] if j < 11 else -1)


def test_example_fields_label_each_example_with_the_fitted_clusters():
    config = config_lib.load_config("configs/shapes_ssl_vgs.py:tiny,ssl_weight=1")  # 8 clusters, 16 000 samples
    config.ssl_targets.update(fit_utterances=3, fit_frames=300, kmeans_iters=5)
    rng = np.random.default_rng(0)
    source = [{"audio": (rng.normal(size=n) * 3000).astype(np.int16), "caption_id": i}
              for i, n in enumerate((4000, 9000, 20000))]
    fields = ssl_targets.example_fields(config, source)
    short, long = (fields(ex)[mp.TARGETS_KEY] for ex in (source[0], source[2]))
    assert short.shape == long.shape == (1 + 16000 // 160,)
    assert (short[:26] >= 0).all() and (short[26:] == -1).all()  # 1 + 4000 // 160 frames
    assert ((long >= 0) & (long < 8)).all()  # cut to max_frames samples, as the pipeline cuts the audio
    np.testing.assert_array_equal(ssl_targets.example_fields(config, source)(source[2])[mp.TARGETS_KEY], long)


def test_masked_prediction_loss_matches_numpy():
    rng = np.random.default_rng(0)
    proj, emb = rng.normal(size=(2, 6, 4)), rng.normal(size=(5, 4))
    targets = rng.integers(-1, 5, (2, 6))
    time_mask = rng.random((2, 6)) < 0.6
    nll, hits, n = 0.0, 0, 0
    for b in range(2):
        for t in range(6):
            if time_mask[b, t] and targets[b, t] >= 0:
                cos = [proj[b, t] @ e / np.linalg.norm(proj[b, t]) / np.linalg.norm(e) for e in emb]
                logits = np.array(cos) / 0.1
                nll += -(logits[targets[b, t]] - np.log(np.sum(np.exp(logits))))
                hits += int(np.argmax(logits) == targets[b, t])
                n += 1
    loss, acc = mp.masked_prediction_loss(jnp.asarray(proj), jnp.asarray(emb), jnp.asarray(targets),
                                          jnp.asarray(time_mask), temperature=0.1)
    assert n > 0
    np.testing.assert_allclose(float(loss), nll / n, rtol=1e-5)
    assert float(acc) == pytest.approx(hits / n)


def _model_and_batch(spec):
    config = config_lib.load_config(spec)
    batch = train_batch(num_features=1, batch=4, frames=1600)
    batch[mp.TARGETS_KEY] = np.random.default_rng(0).integers(0, 8, (4, 1 + 1600 // 160)).astype(np.int32)
    return config, train.create_model(config), {k: jnp.asarray(v) for k, v in batch.items()}


def _flat(tree):
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {"/".join(str(getattr(k, "key", k)) for k in path): v for path, v in leaves}


def test_ssl_gradient_reaches_the_encoder_and_weight_zero_is_the_grounded_loss():
    config, model, batch = _model_and_batch("configs/shapes_ssl_vgs.py:tiny,ssl_weight=1")
    key = jax.random.key(3)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def losses(params, weight):
        m = nnx.merge(graphdef, params, rest)
        loss_config = config.loss.copy_and_resolve_references()
        loss_config.ssl_weight = weight
        fn = registry.make_loss_fn(loss_config, config.model)
        return fn(m, m.encode_speech(batch["audio"], batch["audio_mask"]), m.encode_image(batch["image"]), batch, key)

    def ssl_term(params):
        total, metrics = losses(params, 2.0)
        return metrics["ssl_loss"], (total, metrics)

    (_, (total, metrics)), grads = jax.jit(jax.value_and_grad(ssl_term, has_aux=True))(params)
    assert float(total) == pytest.approx(float(metrics["retrieval_loss"] + 2.0 * metrics["ssl_loss"]), rel=1e-6)
    assert 0.3 < float(metrics["ssl_masked_fraction"]) < 0.8
    for name, g in _flat(grads).items():
        reached = bool(np.any(np.asarray(g)))
        head_or_ssl = name.startswith("speech_encoder/ssl/") or name.split("/")[1] in mp.HEAD_PARAMS
        assert reached == head_or_ssl, name  # the conv stack and every layer learn from it; pooling, images do not

    zero, zero_metrics = losses(params, 0.0)
    assert set(zero_metrics) == {"retrieval_loss"}
    np.testing.assert_allclose(float(zero), float(metrics["retrieval_loss"]), rtol=1e-6)
    # The purely grounded model (no head) with the same other parameters has the same loss.
    grounded_config = config_lib.load_config("configs/shapes_ssl_vgs.py:tiny")
    grounded = train.create_model(grounded_config)
    shared = nnx.to_pure_dict(params)
    for name in mp.HEAD_PARAMS:
        del shared["speech_encoder"][name]
    grounded_params = nnx.state(grounded, nnx.Param)
    nnx.replace_by_pure_dict(grounded_params, shared)
    nnx.update(grounded, grounded_params)
    fn = registry.make_loss_fn(grounded_config.loss, grounded_config.model)
    plain, _ = fn(grounded, grounded.encode_speech(batch["audio"], batch["audio_mask"]),
                  grounded.encode_image(batch["image"]), batch, key)
    np.testing.assert_allclose(float(zero), float(plain), rtol=1e-6)


def test_errors_name_the_fix(tmp_path):
    config = config_lib.load_config("configs/shapes_gru.py:tiny")
    config.loss.ssl_weight = 1.0
    with pytest.raises(ValueError, match="ssl_clusters > 0"):
        registry.make_loss_fn(config.loss, config.model)
    with pytest.raises(ValueError, match="features.recipe='raw'"):
        ssl_targets.example_fields(config, [])
    config = config_lib.load_config("configs/shapes_ssl_vgs.py:tiny,ssl_weight=1")
    config.model.speech.freeze = "all"
    with pytest.raises(ValueError, match="freeze='all'"):
        train.create_model(config)
    config.model.speech.freeze = "none"
    config.train.embedding_cache_chunks = 2
    with pytest.raises(ValueError, match="embedding_cache_chunks=1"):
        ssl_targets.example_fields(config, [])
    with pytest.raises(ValueError, match="mask_length"):
        mp.span_mask(jax.random.key(0), jnp.ones((1, 20), bool), mask_prob=0.8, mask_length=0)
