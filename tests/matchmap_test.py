"""Tests for vgs_jax.objectives.matchmap against slow per-pair / per-frame / per-cell loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgs_jax.objectives import matchmap as mm


def slow_score(img, imask, aud, amask, simtype):
    """One pair, plain Python loops over the valid cells and frames (float64)."""
    img = np.asarray(img, np.float64)
    aud = np.asarray(aud, np.float64)
    cells = [(h, w) for h in range(img.shape[0]) for w in range(img.shape[1]) if imask[h, w]]
    frames = [t for t in range(aud.shape[0]) if amask[t]]
    if not cells or not frames:
        return 0.0

    def dot(h, w, t):
        return sum(img[h, w, k] * aud[t, k] for k in range(img.shape[2]))

    if simtype == "SISA":
        vals = [dot(h, w, t) for (h, w) in cells for t in frames]
        return sum(vals) / len(vals)
    if simtype == "MISA":
        return sum(max(dot(h, w, t) for (h, w) in cells) for t in frames) / len(frames)
    if simtype == "FRAGMENT":  # survey eq. (3): per region (cell) the best non-negative word (frame) product
        return sum(max(0.0, max(dot(h, w, t) for t in frames)) for (h, w) in cells)
    return sum(max(dot(h, w, t) for t in frames) for (h, w) in cells) / len(cells)


def slow_matrix(imgs, imasks, auds, amasks, simtype):
    return np.array([[slow_score(imgs[i], imasks[i], auds[a], amasks[a], simtype)
                      for i in range(len(imgs))] for a in range(len(auds))])


def _data(bi, ba, h, w, t, d, seed, ragged=True):
    rng = np.random.default_rng(seed)
    imgs = rng.normal(size=(bi, h, w, d)).astype(np.float32)
    auds = rng.normal(size=(ba, t, d)).astype(np.float32)
    imask = np.ones((bi, h, w), bool)
    amask = np.ones((ba, t), bool)
    if ragged:
        for i in range(bi):
            imask[i, rng.integers(1, h + 1):, :] = False
            imask[i, :, rng.integers(1, w + 1):] = False
        for a in range(ba):
            amask[a, rng.integers(1, t + 1):] = False
    return imgs, imask, auds, amask


def test_matchmap_matches_loops_and_hand_case():
    img = np.array([[[1.0, 0.0], [0.0, 2.0]]])          # H=1, W=2, D=2
    aud = np.array([[3.0, 1.0], [-1.0, 1.0], [0.5, 0.5]])  # T=3
    got = np.asarray(mm.matchmap(img, aud))
    assert got.shape == (1, 2, 3)
    np.testing.assert_allclose(got, [[[3.0, -1.0, 0.5], [2.0, 2.0, 1.0]]])


def test_hand_computed_scores():
    # Cells: c0=(1,0), c1=(0,2); frames f0=(3,1), f1=(-1,1). M = [[3,-1],[2,2]] (cell x frame).
    img = np.array([[[[1.0, 0.0], [0.0, 2.0]]]], np.float32)
    aud = np.array([[[3.0, 1.0], [-1.0, 1.0]]], np.float32)
    im = np.ones((1, 1, 2), bool)
    am = np.ones((1, 2), bool)
    s = {k: float(mm.matchmap_scores(img, im, aud, am, simtype=k)[0, 0]) for k in mm.SIMTYPES}
    assert s["SISA"] == pytest.approx((3 - 1 + 2 + 2) / 4)
    assert s["MISA"] == pytest.approx((3 + 2) / 2)        # per frame max over cells
    assert s["SIMA"] == pytest.approx((3 + 2) / 2)        # per cell max over frames
    assert s["FRAGMENT"] == pytest.approx(3 + 2)           # per cell best positive product, summed
    # mask frame f1: MISA = 3, SIMA = mean(3, 2) = 2.5, SISA = 2.5
    am2 = np.array([[True, False]])
    s2 = {k: float(mm.matchmap_scores(img, im, aud, am2, simtype=k)[0, 0]) for k in mm.SIMTYPES}
    assert s2 == pytest.approx({"SISA": 2.5, "MISA": 3.0, "SIMA": 2.5, "FRAGMENT": 5.0})


def test_fragment_hand_case_with_negative_cell_and_masks():
    # Cells c0=(1,0), c1=(0,2), c2=(-1,-1), c3 padded; frames f0=(3,1), f1=(-1,1), f2 padded.
    # M (cell x frame) = [[3,-1],[2,2],[-4,0]]: best per cell 3, 2, 0 (c2's best is 0, not negative).
    img = np.array([[[[1.0, 0.0], [0.0, 2.0]], [[-1.0, -1.0], [50.0, 50.0]]]], np.float32)  # [1, 2, 2, 2]
    im = np.array([[[True, True], [True, False]]])
    aud = np.array([[[3.0, 1.0], [-1.0, 1.0], [40.0, 40.0]]], np.float32)
    am = np.array([[True, True, False]])
    assert float(mm.matchmap_scores(img, im, aud, am, simtype="FRAGMENT")[0, 0]) == pytest.approx(3 + 2 + 0)
    # Only f1: c0 -> max(0, -1) = 0, c1 -> 2, c2 -> max(0, 0) = 0.
    am1 = np.array([[False, True, False]])
    assert float(mm.matchmap_scores(img, im, aud, am1, simtype="FRAGMENT")[0, 0]) == pytest.approx(2.0)
    # Not a mean: doubling the valid cells (same cells twice) doubles the score.
    img2 = np.concatenate([img, img], axis=2)
    im2 = np.concatenate([im, im], axis=2)
    assert float(mm.matchmap_scores(img2, im2, aud, am, simtype="FRAGMENT")[0, 0]) == pytest.approx(10.0)


@pytest.mark.parametrize("simtype", mm.SIMTYPES)
@pytest.mark.parametrize("chunk", [None, 1, 2, 3])
def test_scores_match_slow_loops_with_masks(simtype, chunk):
    imgs, imask, auds, amask = _data(bi=5, ba=4, h=3, w=2, t=7, d=3, seed=len(simtype) + (chunk or 0))
    want = slow_matrix(imgs, imask, auds, amask, simtype)
    got = np.asarray(mm.matchmap_scores(imgs, imask, auds, amask, simtype=simtype,
                                        chunk_size=chunk))
    assert got.shape == (4, 5) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("simtype", mm.SIMTYPES)
def test_padding_values_never_change_a_score(simtype):
    imgs, imask, auds, amask = _data(bi=3, ba=4, h=4, w=3, t=6, d=5, seed=7)
    base = np.asarray(mm.matchmap_scores(imgs, imask, auds, amask, simtype=simtype))
    imgs2, auds2 = imgs.copy(), auds.copy()
    imgs2[~imask] = 1e6          # huge garbage in padded cells
    auds2[~amask] = np.nan       # NaN garbage in padded frames
    got = np.asarray(mm.matchmap_scores(imgs2, imask, auds2, amask, simtype=simtype, chunk_size=2))
    np.testing.assert_allclose(got, base, rtol=1e-6, atol=1e-6)
    # extra all-padding rows/cols/frames: the real pairs' scores are unchanged
    imgs3 = np.concatenate([imgs, np.full((1,) + imgs.shape[1:], 5.0, np.float32)])
    imask3 = np.concatenate([imask, np.zeros((1,) + imask.shape[1:], bool)])
    auds3 = np.pad(auds, ((0, 0), (0, 3), (0, 0)), constant_values=9.0)
    amask3 = np.pad(amask, ((0, 0), (0, 3)))
    got3 = np.asarray(mm.matchmap_scores(imgs3, imask3, auds3, amask3, simtype=simtype))
    np.testing.assert_allclose(got3[:, :3], base, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got3[:, 3], 0.0)   # no valid cell -> 0


@pytest.mark.parametrize("simtype", mm.SIMTYPES)
def test_ties_and_odd_shapes(simtype):
    # Integer-valued features make many exact ties in the max.
    rng = np.random.default_rng(3)
    imgs = rng.integers(-1, 2, size=(3, 1, 5, 2)).astype(np.float32)
    auds = rng.integers(-1, 2, size=(2, 9, 2)).astype(np.float32)
    imask = np.ones((3, 1, 5), bool)
    amask = np.ones((2, 9), bool)
    amask[1, 4:] = False
    want = slow_matrix(imgs, imask, auds, amask, simtype)
    for chunk in (None, 2, 7):
        got = mm.matchmap_scores(imgs, imask, auds, amask, simtype=simtype, chunk_size=chunk)
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)


def test_no_valid_frame_scores_zero_and_grads_finite():
    imgs, imask, auds, amask = _data(bi=2, ba=2, h=2, w=2, t=3, d=4, seed=1, ragged=False)
    amask[0] = False
    for simtype in mm.SIMTYPES:
        s = np.asarray(mm.matchmap_scores(imgs, imask, auds, amask, simtype=simtype))
        np.testing.assert_array_equal(s[0], 0.0)
        g = jax.grad(lambda a, i: jnp.sum(mm.matchmap_scores(i, imask, a, amask, simtype=simtype,
                                                             chunk_size=1)),
                     argnums=(0, 1))(auds, imgs)
        assert all(np.isfinite(np.asarray(x)).all() for x in g)
        np.testing.assert_array_equal(np.asarray(g[0])[0], 0.0)   # masked row gets no gradient


def test_gradient_matches_unchunked_and_finite_difference():
    imgs, imask, auds, amask = _data(bi=3, ba=3, h=2, w=2, t=4, d=3, seed=11)

    def f(a, chunk):
        return jnp.sum(jnp.sin(mm.matchmap_scores(imgs, imask, a, amask, simtype="MISA",
                                                  chunk_size=chunk)))

    g_full = np.asarray(jax.grad(f)(auds, None))
    g_chunk = np.asarray(jax.grad(f)(auds, 2))
    np.testing.assert_allclose(g_chunk, g_full, rtol=1e-5, atol=1e-6)
    eps = 1e-3
    idx = tuple(int(x) for x in np.argwhere(amask)[0]) + (0,)
    plus, minus = auds.copy(), auds.copy()
    plus[idx] += eps
    minus[idx] -= eps
    fd = (float(f(plus, None)) - float(f(minus, None))) / (2 * eps)
    assert g_full[idx] == pytest.approx(fd, rel=1e-2, abs=1e-3)


def test_bad_inputs_raise_clear_errors():
    imgs, imask, auds, amask = _data(bi=2, ba=2, h=2, w=2, t=3, d=4, seed=0)
    with pytest.raises(ValueError, match="simtype"):
        mm.matchmap_scores(imgs, imask, auds, amask, simtype="MAX")
    with pytest.raises(ValueError, match="feature size"):
        mm.matchmap_scores(imgs, imask, auds[..., :3], amask)
    with pytest.raises(ValueError, match="image_mask"):
        mm.matchmap_scores(imgs, imask[:, :1], auds, amask)
    with pytest.raises(ValueError, match="audio_mask must be boolean"):
        mm.matchmap_scores(imgs, imask, auds, amask.astype(np.int32))
    with pytest.raises(ValueError, match="chunk_size"):
        mm.matchmap_scores(imgs, imask, auds, amask, chunk_size=0)
    with pytest.raises(ValueError, match=r"\[Bi, H, W, D\]"):
        mm.matchmap_scores(imgs[0], imask, auds, amask)
    with pytest.raises(ValueError, match="image_map"):
        mm.matchmap(imgs, auds)
