"""Gelderloos & Chrupała (2016): g2p, the residual phoneme GRU, targets, training and the per-layer analyses,
against hand-computed values and slow obvious versions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax import config_lib
from vgs_jax import phoneme_data
from vgs_jax import phoneme_train
from vgs_jax import phonemes
from vgs_jax.analysis import phoneme_levels
from vgs_jax.analysis import rsa
from vgs_jax.analysis import semantics
from vgs_jax.models.phoneme_gru import PhonemeGRU, last_state
from vgs_jax.objectives.losses import mse_regression_loss


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    with jax.default_matmul_precision("highest"):
        yield


def test_g2p_of_a_known_sentence():
    # espeak-ng: "ɐ smˈɔːl ɹˈɛd sˈɜːkəl ɪnðə bˈɑːks" ("in the" is one espeak unit).
    phones, ends = phonemes.g2p(b"a small red circle in the box")
    assert phones == ["ɐ", "s", "m", "ɔː", "l", "ɹ", "ɛ", "d", "s", "ɜː", "k", "əl", "ɪ", "n", "ð", "ə", "b", "ɑː",
                      "k", "s"]
    assert [i for i, e in enumerate(ends) if e] == [0, 4, 7, 11, 15, 19]
    vocab = phonemes.Vocabulary.build([phones])
    ids, mask = vocab.encode([phones, phones[:3]])
    assert vocab.symbols[0] == phonemes.PAD and ids.shape == (2, 20) and mask.sum() == 23
    assert [vocab.symbols[i] for i in ids[1, :3]] == phones[:3] and not ids[1, 3:].any()
    with pytest.raises(ValueError, match=r"\['z'\] are not in the training vocabulary"):
        vocab.encode([["z"]])
    with pytest.raises(ValueError, match="no phonemes"):
        phonemes.g2p("  ")
    synthesizer, speaker = phonemes._synthesizer()
    with pytest.raises(ValueError, match="one non-space character"):
        synthesizer.phonemize("a box", speaker, separator="__")


def test_parameter_count_residual_layers_and_last_state():
    v, d, e, h = 10, 5, 4, 6
    model = PhonemeGRU(v, d, embed_dim=e, hidden=h, depth=3, rngs=nnx.Rngs(0))
    count = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert count == v * e + (3 * h * e + 3 * h * h + 6 * h) + 2 * (6 * h * h + 6 * h) + h * d + d == 795
    full = nnx.eval_shape(lambda: PhonemeGRU(40, 17, rngs=nnx.Rngs(0)))  # the config's sizes: 256, 1024, 3 layers
    assert sum(x.size for x in jax.tree.leaves(nnx.state(full, nnx.Param))) == 16_561_169 == \
        40 * 256 + (3 * 1024 * 256 + 3 * 1024 ** 2 + 6 * 1024) + 2 * (6 * 1024 ** 2 + 6 * 1024) + 1024 * 17 + 17
    ids = jnp.array([[1, 2, 3, 0], [4, 5, 6, 7]])
    mask = ids > 0
    padded = jnp.pad(ids, ((0, 0), (0, 3)))

    @nnx.jit  # one compile for every call below
    def run(m):
        states = m.layer_states(ids, mask)
        residual = [m.grus[i](states[f"gru_{i - 1}"], mask) + states[f"gru_{i - 1}"] for i in (1, 2)]
        return states, residual, last_state(states["gru_2"], mask), m(ids, mask), m(padded, padded > 0)

    states, residual, last, out, out_padded = run(model)
    assert {k: s.shape for k, s in states.items()} == {"embedding": (2, 4, e), "gru_0": (2, 4, h),
                                                       "gru_1": (2, 4, h), "gru_2": (2, 4, h)}
    for i in (1, 2):  # residual: layer i = GRU_i(layer i-1) + layer i-1
        np.testing.assert_allclose(states[f"gru_{i}"], residual[i - 1], rtol=1e-6)
    top = np.asarray(states["gru_2"])
    np.testing.assert_allclose(last, np.stack([top[0, 2], top[1, 3]]))
    np.testing.assert_allclose(out, top[[0, 1], [2, 3]] @ np.asarray(model.to_image.kernel[...])
                               + np.asarray(model.to_image.bias[...]), rtol=1e-5)
    np.testing.assert_allclose(out_padded, out, rtol=1e-5, atol=1e-6)


def test_training_loss_and_scores_match_slow_versions():
    rng = np.random.default_rng(0)
    pred, targets = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(2, 3)).astype(np.float32)
    caption_image = np.array([0, 0, 1, 1, 1, 0])
    slow = sum((pred[n, k] - targets[caption_image[n], k]) ** 2 for n in range(6) for k in range(3)) / 18
    assert float(mse_regression_loss(pred, targets[caption_image])) == pytest.approx(slow, rel=1e-6)
    scores = phoneme_train.score(pred, targets, caption_image)
    assert scores["mse"] == pytest.approx(slow, rel=1e-6)
    cos = [[p @ t / np.linalg.norm(p) / np.linalg.norm(t) for t in targets] for p in pred]
    r1 = np.mean([np.argmax(c) == i for c, i in zip(cos, caption_image)])
    assert scores["speech_to_image"]["r1"] == pytest.approx(r1)


def test_image_vectors_by_hand():
    objects = {"shape": [1, 1, 6], "color": [7, 0, 7], "size": [0, 1, 1]}
    v = phoneme_data.scene_vector(objects)
    assert v.tolist() == [0, 2, 0, 0, 0, 0, 1] + [1, 0, 0, 0, 0, 0, 0, 2] + [1, 2]
    image = np.zeros((16, 16, 3), np.uint8)
    image[:2, :2, 0] = 255  # the top-left 2 x 2 block of 16 / 8 = 2-pixel blocks
    image[2:4, 0, 1] = 255  # half of the block below it
    p = phoneme_data.pixel_vector(image).reshape(8, 8, 3)
    assert p[0, 0, 0] == 1.0 and p[1, 0, 1] == 0.5 and p.sum() == 1.5
    with pytest.raises(ValueError, match="divisible by 8"):
        phoneme_data.pixel_vector(np.zeros((12, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="has none"):
        phoneme_data.image_vector({"image": image}, "scene", 3)
    mean, sd = phoneme_data.standardiser(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert mean.tolist() == [2.0, 5.0] and sd.tolist() == [1.0, 1.0]


def test_word_boundary_probe_on_hand_made_states():
    rng = np.random.default_rng(0)
    ends = [list(rng.random(n) < 0.3) + [True] for n in rng.integers(4, 9, size=30)]
    t = max(map(len, ends))
    mask = np.array([[i < len(e) for i in range(t)] for e in ends])
    label = np.zeros((len(ends), t))
    for c, e in enumerate(ends):
        label[c, :len(e)] = e
    states = {"informative": np.stack([label, rng.normal(size=label.shape)], -1),
              "noise": rng.normal(size=(len(ends), t, 2))}
    x, y, cap = phoneme_levels.boundary_examples(states["informative"], mask, ends)
    assert len(y) == sum(len(e) - 1 for e in ends) and (x[:, 0] == y).all()  # the last phoneme left out
    assert cap.tolist() == [c for c, e in enumerate(ends) for _ in e[:-1]]
    out = phoneme_levels.word_boundaries(states, mask, ends)
    assert out["informative"]["accuracy"] == 1.0
    assert out["noise"]["accuracy"] <= out["noise"]["baseline_accuracy"] + 0.05


class _BagOfPhonemes:
    """Fake model: every layer's state at position t is the count of each phoneme id so far."""

    def __init__(self, vocab_size):
        self.v = vocab_size

    def layer_states(self, ids, mask):
        hot = np.eye(self.v)[np.asarray(ids)] * np.asarray(mask)[..., None]
        return {"bag": np.cumsum(hot, axis=1)}


def test_word_correlations_match_a_slow_version():
    words = ["red", "green", "blue", "circle", "square", "star", "cross"]
    phones = [phonemes.g2p(w)[0] for w in words]
    vocab = phonemes.Vocabulary.build(phones)
    vectors = semantics.WordVectors(words[::-1] + ["unused"], np.random.default_rng(0).normal(size=(8, 4)))
    out = phoneme_levels.word_correlations(_BagOfPhonemes(len(vocab)), vocab, words + ["zzz"], vectors)
    assert out["words"] == 7  # "zzz" has no word vector

    def cos_dist(a, b):
        return 1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    def lev(a, b):
        d = np.arange(len(b) + 1)
        for i, x in enumerate(a, 1):
            prev, d[0] = d.copy(), i
            for j, y in enumerate(b, 1):
                d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (x != y))
        return d[-1] / max(len(a), len(b))

    bags = [np.bincount([vocab.symbols.index(p) for p in ph], minlength=len(vocab)) for ph in phones]
    sem = {w: vectors.vectors[vectors.index[w]] for w in words}
    pairs = [(i, j) for i in range(7) for j in range(i + 1, 7)]
    rep = [cos_dist(bags[i], bags[j]) for i, j in pairs]
    edit = [lev(phones[i], phones[j]) for i, j in pairs]
    meaning = [cos_dist(sem[words[i]], sem[words[j]]) for i, j in pairs]
    assert out["bag"]["edit_distance"]["pearson"] == pytest.approx(np.corrcoef(rep, edit)[0, 1], rel=1e-9)
    assert out["bag"]["semantic"]["pearson"] == pytest.approx(np.corrcoef(rep, meaning)[0, 1], rel=1e-9)
    assert out["bag"]["edit_distance"]["pearson"] > 0.3  # shared phonemes: small edit distance
    assert set(out) == {"words", "bag"}
    with pytest.raises(ValueError, match="at least 3 words"):
        phoneme_levels.word_correlations(_BagOfPhonemes(len(vocab)), vocab, ["red", "blue"], vectors)
    assert rsa.edit_distance_matrix(phones[:2])[0, 1] == pytest.approx(lev(phones[0], phones[1]))


def test_a_short_run_learns_and_analyze_reads_it(shapes_data_dir, tmp_path):
    config = config_lib.load_config("configs/shapes_gelderloos2016.py:tiny,v1")
    config.dataset.data_dir = shapes_data_dir
    config.lr, config.num_train_steps, config.batch_size = 3e-3, 300, 16
    workdir = str(tmp_path / "run")
    results = phoneme_train.train_and_evaluate(config, workdir)
    trained, random_init = results["trained"], results["random_init"]
    # spoken_shapes/tiny test: 40 captions of 8 images, so chance caption -> image R@1 is 1/8.
    # Measured: R@1 0.65 (random init 0.125), MSE 0.82 (mean predictor 1.01).
    assert trained["speech_to_image"]["r1"] >= 0.4 > random_init["speech_to_image"]["r1"]
    assert trained["mse"] < 0.9 * results["mean_predictor"]["mse"]
    report = phoneme_levels.analyze_workdir(workdir, split="test", max_utterances=20)
    assert set(report["trained"]["word_boundaries"]) == {"embedding", "gru_0", "gru_1", "gru_2"}
    assert "r edit distance" in phoneme_levels.format_report(report)
    config.system = "hg2015"
    with pytest.raises(ValueError, match="config.system must be 'gelderloos2016'"):
        phoneme_train.train_and_evaluate(config, workdir)
