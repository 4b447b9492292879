"""Tests for the survey's early word-region systems: segment_view, fragment_embedders, score_hinge,
segment_train (Harwath & Glass 2015, Synnaeve et al. 2014), against slow obvious versions."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax import config_lib
from vgs_jax import data_sources
from vgs_jax import segment_train
from vgs_jax import segment_view
from vgs_jax.models.fragment_embedders import HG2015Embedder, Synnaeve2014Embedder
from vgs_jax.objectives import losses
from vgs_jax.objectives.score_hinge import all_negatives_hinge_loss


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    with jax.default_matmul_precision("highest"):
        yield


def _slow_eq2(sim, margin, valid, ids):
    """Survey eq. (2) written out: per matching pair, the hinges over every other valid caption and image."""
    b = len(sim)
    total = 0.0
    for u in range(b):
        for v in range(b):
            if u != v and valid[u] and valid[v] and ids[u] != ids[v]:
                total += max(0.0, sim[v, u] - sim[u, u] + margin) + max(0.0, sim[u, v] - sim[u, u] + margin)
    return total / max(sum(valid), 1)


def test_eq2_hinge_hand_case_slow_version_and_platalea():
    sim = np.array([[1.0, 0.5], [0.2, 0.0]], np.float32)
    # pair 0: caption 1 vs image 0: 0.2 - 1 + 1 = 0.2; image 1 vs caption 0: 0.5 - 1 + 1 = 0.5.
    # pair 1: caption 0 vs image 1: 0.5 - 0 + 1 = 1.5; image 0 vs caption 1: 0.2 - 0 + 1 = 1.2.
    assert float(all_negatives_hinge_loss(sim, margin=1.0)) == pytest.approx((0.2 + 0.5 + 1.5 + 1.2) / 2)
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(5, 5)).astype(np.float32)
    valid, ids = np.array([1, 1, 0, 1, 1], bool), np.array([0, 1, 2, 1, 3])
    got = all_negatives_hinge_loss(sim, margin=0.7, mask=jnp.asarray(valid), image_ids=jnp.asarray(ids))
    assert float(got) == pytest.approx(_slow_eq2(sim, 0.7, valid, ids), rel=1e-6)
    za, zi = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    cos = losses.cosine_similarity_matrix(za, zi)
    assert float(all_negatives_hinge_loss(cos, margin=0.2)) == pytest.approx(
        4 * float(losses.platalea_hinge_loss(za, zi, margin=0.2)), rel=1e-5)
    with pytest.raises(ValueError, match="square"):
        all_negatives_hinge_loss(np.zeros((2, 3)))


def test_hg2015_scores_are_eq3_and_parameter_counts():
    model = HG2015Embedder(6, 5, embed_dim=4, hidden=0, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    words, regions = rng.normal(size=(3, 4, 6)), rng.normal(size=(2, 3, 5))
    word_mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    region_mask = np.array([[1, 1, 1], [1, 0, 0]], bool)
    got = np.asarray(model.score_matrix(jnp.asarray(words, jnp.float32), jnp.asarray(word_mask),
                                        jnp.asarray(regions, jnp.float32), jnp.asarray(region_mask)))
    wk, wb = np.asarray(model.word.out.kernel[...]), np.asarray(model.word.out.bias[...])
    rk, rb = np.asarray(model.region.out.kernel[...]), np.asarray(model.region.out.bias[...])
    for u, i in itertools.product(range(3), range(2)):
        e_w = [np.maximum(words[u, w] @ wk + wb, 0) for w in range(4) if word_mask[u, w]]
        e_t = [regions[i, t] @ rk + rb for t in range(3) if region_mask[i, t]]
        eq3 = sum(max(max(float(w @ t) for w in e_w), 0.0) for t in e_t)  # survey eq. (3)
        assert got[u, i] == pytest.approx(eq3, rel=1e-5, abs=1e-6)

    def count(m):
        return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(m, nnx.Param)))

    assert count(model) == (6 * 4 + 4) + (5 * 4 + 4)
    assert count(HG2015Embedder(6, 5, embed_dim=4, hidden=3, rngs=nnx.Rngs(0))) == (6 * 3 + 3 + 3 * 4 + 4) * 2 - 3
    syn = Synnaeve2014Embedder(6, 5, hidden=3, embed_dim=4, rngs=nnx.Rngs(0))
    assert count(syn) == (6 * 3 + 3 + 3 * 4 + 4) + (5 * 3 + 3 + 3 * 4 + 4)
    cos = np.asarray(syn.cosines(jnp.ones((2, 6)), jnp.ones((3, 5))))
    assert cos.shape == (2, 3) and np.all(np.abs(cos) <= 1 + 1e-6)


def test_segment_view_helpers_by_hand():
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    np.testing.assert_allclose(segment_view.resample_frames(x, 2), [[1, 2], [5, 6]])      # centres 0.5, 2.5
    np.testing.assert_allclose(segment_view.resample_frames(x[:1], 3), [[0, 1]] * 3)
    feats = np.arange(30, dtype=np.float32).reshape(15, 2)
    seg = segment_view.word_segments(feats, [0.0, 0.1], [0.1, 0.15], frames=1)            # frames [0, 10), [10, 15)
    np.testing.assert_allclose(seg, [[9, 10], [24, 25]])
    image = np.zeros((4, 4, 3), np.uint8)
    image[2:, 2:] = 255
    np.testing.assert_allclose(segment_view.crop(image, (0.5, 0.5, 1.0, 1.0), 2), np.ones(12))
    np.testing.assert_allclose(segment_view.crop(image, (0, 0, 1, 1), 2).reshape(2, 2, 3)[:, :, 0], [[0, 0], [0, 1]])
    with pytest.raises(ValueError, match=r"no words \(word alignments\).*spoken_shapes has them"):
        segment_view.check_annotations({"audio": np.zeros(5), "objects": {"bbox": [], "shape": [], "color": []}},
                                       3, "hg2015")


def test_scores_and_baselines_by_hand():
    got = segment_train.precision_at(np.array([[0.9, 0.1, 0.5], [0.0, 0.2, 0.1]]),
                                     np.array([[0, 1, 1], [1, 0, 0]], bool), ks=(1, 2))
    assert got == {"p@1": 0.0, "p@2": 0.25, "random_p@1": pytest.approx(0.5), "random_p@2": pytest.approx(0.5), "n": 2}
    chance = segment_train.chance_r10(np.repeat(np.arange(4), 5), 4)    # 20 captions, 5 per image
    assert chance["speech_to_image"] == 1.0
    assert chance["image_to_speech"] == pytest.approx(1 - math.comb(15, 10) / math.comb(20, 10))


def test_load_split_on_spoken_shapes_tiny(shapes_data_dir):
    source = data_sources.open_split("spoken_shapes/tiny:1.0.0", "test", data_dir=shapes_data_dir)
    featurizer = lambda wav: np.ones((len(wav) // 160, 40), np.float32)
    split = segment_view.load_split(source, featurizer, frames=3, size=4, max_words=20, max_objects=3,
                                    system="hg2015", limit=10)
    ex = source[0]
    n_words = len(ex["words"]["word"])
    assert split.words.shape == (10, 20, 120) and split.word_mask[0].sum() == n_words
    ids = list(dict.fromkeys(int(source[i]["image_id"]) for i in range(10)))   # first-seen order
    assert list(split.image_id) == ids and split.regions.shape == (len(ids), 4, 48)
    assert split.region_mask[0].sum() == 1 + len(ex["objects"]["bbox"])
    assert [split.image_id[c] for c in split.caption_image] == [int(source[i]["image_id"]) for i in range(10)]
    named = {c for c in split.word_concepts[0] if c}
    assert named and named <= split.region_concepts[0][0]      # every named concept is in the image


@pytest.mark.parametrize("system", segment_train.SYSTEMS)
def test_configs_load_and_tiny_runs(system, shapes_data_dir, tmp_path):
    for spec in (f"configs/shapes_{system}.py", f"configs/shapes_{system}.py:tiny,v1"):
        config = config_lib.load_config(spec)
        assert config.system == system
    config.dataset.data_dir = shapes_data_dir
    config.dataset.max_eval_captions = 20
    results = segment_train.train_and_evaluate(config, str(tmp_path))
    assert results["steps"] == 6 and (tmp_path / "results.json").exists()


@pytest.fixture(scope="module")
def quick_segments(quick_shapes_data_dir):
    """spoken_shapes/quick as segments: 300 training and 250 test captions, loaded once."""
    config = _quick_config("hg2015", quick_shapes_data_dir)
    return segment_train.load_data(config)


def _quick_config(system, data_dir):
    config = config_lib.load_config(f"configs/shapes_{system}.py")
    config.dataset.name, config.dataset.data_dir = "spoken_shapes/quick:1.0.0", data_dir
    config.dataset.max_train_captions, config.dataset.max_eval_captions = 300, 250
    config.num_train_steps, config.log_every_steps = 100, 50
    return config


@pytest.mark.parametrize("system", segment_train.SYSTEMS)
def test_short_training_beats_random(system, quick_shapes_data_dir, quick_segments, tmp_path):
    config = _quick_config(system, quick_shapes_data_dir)
    results = segment_train.train_and_evaluate(config, str(tmp_path), data=quick_segments)
    t, r = results["trained"], results["random_init"]
    if system == "hg2015":
        for d in ("speech_to_image", "image_to_speech"):
            chance = t["chance_r10"][d]
            assert r[d]["r10"] < 1.7 * chance < 3 * chance <= t[d]["r10"], d
    else:
        for d in ("word_to_fragment", "fragment_to_word"):
            assert r[d]["p@1"] < 2 * t[d]["random_p@1"] <= t[d]["p@1"] / 2, d
