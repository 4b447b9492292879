"""Tests for vgs_jax.retrieval against a slow full-matrix argsort implementation."""

import jax.numpy as jnp
import numpy as np
import pytest

from vgs_jax import retrieval


# ----------------------------------------------------------------- slow reference
def slow_ranks(zs, zi, caption_image):
    """Full N x M matrix; one stable argsort per query; 1-based ranks."""
    zs = np.asarray(zs, np.float32)
    zi = np.asarray(zi, np.float32)
    scores = zs @ zi.T  # exact for the integer-valued tie cases below
    s2i = []
    for c in range(len(zs)):
        order = list(np.argsort(-scores[c], kind="stable"))
        s2i.append(order.index(caption_image[c]) + 1)
    i2s = []
    for m in range(len(zi)):
        order = list(np.argsort(-scores[:, m], kind="stable"))
        i2s.append(min(order.index(c) + 1 for c in range(len(zs)) if caption_image[c] == m))
    return np.array(s2i), np.array(i2s)


def slow_metrics(zs, zi, caption_image, ks=(1, 5, 10)):
    out = {}
    for name, ranks in zip(retrieval.DIRECTIONS, slow_ranks(zs, zi, caption_image)):
        d = {f"r{k}": sum(r <= k for r in ranks) / len(ranks) for k in ks}
        srt = sorted(ranks)
        mid = len(srt) // 2
        d["medr"] = srt[mid] if len(srt) % 2 else (srt[mid - 1] + srt[mid]) / 2
        d["meanr"] = sum(srt) / len(srt)
        d["n"] = len(srt)
        out[name] = d
    return out


def _random(n_images, per_image, e=16, seed=0, noise=2.0):
    rng = np.random.default_rng(seed)
    zi = rng.normal(size=(n_images, e))
    caption_image = np.repeat(np.arange(n_images), per_image)
    rng.shuffle(caption_image)
    zs = zi[caption_image] + noise * rng.normal(size=(len(caption_image), e))
    zs /= np.linalg.norm(zs, axis=1, keepdims=True)
    zi /= np.linalg.norm(zi, axis=1, keepdims=True)
    return zs.astype(np.float32), zi.astype(np.float32), caption_image


def _assert_metrics_equal(got, want):
    assert set(got) == set(want)
    for direction in want:
        assert set(got[direction]) == set(want[direction])
        for key, value in want[direction].items():
            assert isinstance(got[direction][key], float)
            assert got[direction][key] == pytest.approx(value, abs=1e-12), (direction, key)


# ----------------------------------------------------------------- hand-made cases
def test_hand_case_known_ranks():
    # 3 images on the axes; 4 captions: caption 0,1 -> image 0, 2 -> image 1, 3 -> image 2.
    zi = np.eye(3, dtype=np.float32)
    zs = np.array([[1.0, 0.0, 0.0],   # image 0 best: s2i rank 1
                   [0.0, 1.0, 0.0],   # image 1 best, paired with 0 -> rank 2 (tie 0 vs 2 at 0 -> idx)
                   [0.0, 0.9, 0.1],   # image 1 best: rank 1
                   [0.5, 0.3, 0.0]],  # paired image 2 scores 0 -> last: rank 3
                  np.float32)
    caption_image = np.array([0, 0, 1, 2])
    s2i, i2s = retrieval.retrieval_ranks(zs, zi, caption_image, chunk_size=2)
    np.testing.assert_array_equal(s2i, [1, 2, 1, 3])
    # image 0 column: [1, 0, 0, .5] -> caption 0 first: 1.
    # image 1 column: [0, 1, .9, .3] -> caption 2 is 2nd: 2.
    # image 2 column: [0, 0, .1, 0] -> caption 3 ties with 0, 1 at 0 and loses on index: 4.
    np.testing.assert_array_equal(i2s, [1, 2, 4])
    m = retrieval.retrieval_metrics(zs, zi, caption_image, ks=(1, 2))
    assert m["speech_to_image"] == {"r1": 0.5, "r2": 0.75, "medr": 1.5, "meanr": 1.75, "n": 4.0}
    assert m["image_to_speech"] == {"r1": 1 / 3, "r2": 2 / 3, "medr": 2.0,
                                    "meanr": 7 / 3, "n": 3.0}


def test_perfect_and_reversed():
    zi = np.eye(4, dtype=np.float32)
    caption_image = np.arange(4)
    m = retrieval.retrieval_metrics(zi, zi, caption_image)
    for d in retrieval.DIRECTIONS:
        assert m[d] == {"r1": 1.0, "r5": 1.0, "r10": 1.0, "medr": 1.0, "meanr": 1.0, "n": 4.0}
    # Caption i looks exactly like image 3 - i: ranks (ties at 0 broken by index).
    s2i, i2s = retrieval.retrieval_ranks(zi[::-1], zi, caption_image)
    np.testing.assert_array_equal(s2i, [2, 3, 3, 4])
    np.testing.assert_array_equal(i2s, [2, 3, 3, 4])


def test_all_ties_follow_index_order():
    zs = np.zeros((6, 3), np.float32)
    zi = np.zeros((3, 3), np.float32)
    caption_image = np.array([2, 1, 0, 0, 1, 2])
    s2i, i2s = retrieval.retrieval_ranks(zs, zi, caption_image, chunk_size=4)
    np.testing.assert_array_equal(s2i, caption_image + 1)
    np.testing.assert_array_equal(i2s, [3, 2, 1])  # first own caption's index + 1


# ----------------------------------------------------------------- vs slow version
@pytest.mark.parametrize("per_image,n_images,chunk", [
    (5, 40, 7),      # 5 captions per image, N = 200 not a multiple of 7
    (1, 57, 16),     # 1 caption per image, M = N = 57
    (5, 13, 1024),   # chunk larger than N and M
    (3, 30, 1),      # one query per chunk
])
def test_random_matches_slow(per_image, n_images, chunk):
    zs, zi, caption_image = _random(n_images, per_image, seed=per_image * 100 + n_images)
    got = retrieval.retrieval_metrics(zs, zi, caption_image, chunk_size=chunk)
    _assert_metrics_equal(got, slow_metrics(zs, zi, caption_image))
    s2i, i2s = retrieval.retrieval_ranks(zs, zi, caption_image, chunk_size=chunk)
    want_s2i, want_i2s = slow_ranks(zs, zi, caption_image)
    np.testing.assert_array_equal(s2i, want_s2i)
    np.testing.assert_array_equal(i2s, want_i2s)
    # A non-trivial case: some hits and some misses in both directions.
    assert (s2i == 1).any() and (s2i > 5).any()
    assert (i2s == 1).any() and (i2s > 1).any()


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_constructed_ties_match_slow(chunk):
    """Integer embeddings in {-1, 0, 1}: scores are exact small ints, so many ties."""
    rng = np.random.default_rng(chunk)
    zi = rng.integers(-1, 2, size=(12, 3)).astype(np.float32)
    zi[5] = zi[2]  # duplicate images: every caption scores them equally
    caption_image = np.concatenate([np.arange(12), rng.integers(0, 12, size=29)])
    zs = rng.integers(-1, 2, size=(len(caption_image), 3)).astype(np.float32)
    zs[7] = zs[3]  # duplicate captions
    got = retrieval.retrieval_ranks(zs, zi, caption_image, chunk_size=chunk)
    want = slow_ranks(zs, zi, caption_image)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    _assert_metrics_equal(retrieval.retrieval_metrics(zs, zi, caption_image, ks=(1, 3),
                                                      chunk_size=chunk),
                          slow_metrics(zs, zi, caption_image, ks=(1, 3)))


def test_many_ties_one_pass_matches_slow():
    """Quantised embeddings (multiples of 1/2 in [-1, 1], E = 6): exact products, so thousands of
    ties in both directions, uneven captions per image, including images whose own captions tie
    with each other; the last block overlaps the previous one (N = 299 is not a multiple of 37)."""
    rng = np.random.default_rng(0)
    zi = rng.integers(-2, 3, size=(50, 6)).astype(np.float32) / 2
    caption_image = np.concatenate([np.arange(50), rng.integers(0, 50, size=249)])
    zs = rng.integers(-2, 3, size=(len(caption_image), 6)).astype(np.float32) / 2
    zs[100:110] = zs[90]  # duplicate captions
    got = retrieval.retrieval_ranks(zs, zi, caption_image, chunk_size=37)
    want = slow_ranks(zs, zi, caption_image)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_input_types_and_chunk_invariance():
    zs, zi, caption_image = _random(20, 5, seed=3)
    base = retrieval.retrieval_metrics(zs, zi, caption_image, chunk_size=1000)
    for chunk in (1, 3, 33, 100):
        assert retrieval.retrieval_metrics(zs, zi, caption_image, chunk_size=chunk) == base
    as_jax = retrieval.retrieval_metrics(jnp.asarray(zs), jnp.asarray(zi),
                                         jnp.asarray(caption_image))
    as_f64 = retrieval.retrieval_metrics(zs.astype(np.float64), zi.astype(np.float64),
                                         caption_image.astype(np.int64))
    assert as_jax == base == as_f64
    assert retrieval.retrieval_metrics(zs, zi, list(caption_image)) == base


def test_sharded_inputs_explicit_and_auto_mesh():
    """Embeddings sharded over 8 devices (Explicit or Auto axes) give the same metrics."""
    import jax
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

    if jax.device_count() < 8:  # conftest gives 8 CPU devices; a single GPU has 1
        pytest.skip(f"needs 8 devices, have {jax.device_count()}")
    zs, zi, caption_image = _random(8, 5, seed=11)  # N = 40, M = 8: both divisible by 8
    base = retrieval.retrieval_metrics(zs, zi, caption_image, chunk_size=3)
    for axis_type in (AxisType.Explicit, AxisType.Auto):
        mesh = jax.make_mesh((8,), ("data",), axis_types=(axis_type,))
        shard = NamedSharding(mesh, P("data"))
        got = retrieval.retrieval_metrics(jax.device_put(zs, shard), jax.device_put(zi, shard),
                                          jax.device_put(caption_image, shard), chunk_size=3)
        assert got == base, axis_type


def test_even_median_uses_numpy_convention():
    ranks = np.array([1, 2, 4, 10])
    s = retrieval.summarize_ranks(ranks, ks=(1, 5))
    assert s == {"r1": 0.25, "r5": 0.75, "medr": 3.0, "meanr": 4.25, "n": 4.0}


# ----------------------------------------------------------------- table
def test_format_table():
    zs, zi, caption_image = _random(10, 5, seed=4)
    m = retrieval.retrieval_metrics(zs, zi, caption_image)
    table = retrieval.format_table(m)
    lines = table.splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["direction", "R@1%", "R@5%", "R@10%", "medr", "meanr", "n"]
    row = lines[1].split()
    assert row[0] == "speech_to_image"
    assert float(row[1]) == pytest.approx(100 * m["speech_to_image"]["r1"], abs=0.05)
    assert row[-1] == "50"
    assert lines[2].split()[0] == "image_to_speech" and lines[2].split()[-1] == "10"
    with pytest.raises(ValueError, match="none of the directions"):
        retrieval.format_table({"foo": {}})
    with pytest.raises(ValueError, match="lacks"):
        retrieval.format_table({"speech_to_image": {"r1": 0.5}})


# ----------------------------------------------------------------- errors
def test_errors_name_the_arrays():
    zs, zi, caption_image = _random(4, 2)
    with pytest.raises(ValueError, match="z_speech has embed_dim 16 but z_image has 8"):
        retrieval.retrieval_metrics(zs, zi[:, :8], caption_image)
    with pytest.raises(ValueError, match=r"caption_image must have shape \(8,\)"):
        retrieval.retrieval_metrics(zs, zi, caption_image[:5])
    with pytest.raises(ValueError, match=r"caption_image values must lie in \[0, 4\)"):
        retrieval.retrieval_metrics(zs, zi, np.where(caption_image == 0, 4, caption_image))
    with pytest.raises(ValueError, match=r"caption_image values"):
        retrieval.retrieval_metrics(zs, zi, caption_image - 1)
    with pytest.raises(ValueError, match=r"images \[3\] .* have no captions"):
        retrieval.retrieval_metrics(zs, zi, np.where(caption_image == 3, 0, caption_image))
    with pytest.raises(ValueError, match="caption_image must hold integer"):
        retrieval.retrieval_metrics(zs, zi, caption_image.astype(float))
    with pytest.raises(ValueError, match="z_image must be 2-D"):
        retrieval.retrieval_metrics(zs, zi[0], caption_image)
    with pytest.raises(ValueError, match="z_speech is empty"):
        retrieval.retrieval_metrics(zs[:0], zi, caption_image[:0])
    bad = zs.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="z_speech contains NaN"):
        retrieval.retrieval_metrics(bad, zi, caption_image)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        retrieval.retrieval_metrics(zs, zi, caption_image, chunk_size=0)
    with pytest.raises(ValueError, match="ks must be"):
        retrieval.retrieval_metrics(zs, zi, caption_image, ks=(0, 5))
