"""Tests of vgs_jax.analysis.vq_units on constructed codes with known answers."""

import math
from collections import Counter

import numpy as np
import pytest
from sklearn import metrics

from vgs_jax.analysis import vq_units as vq
from vgs_jax.audio_features import Featurizer


def test_purity_and_nmi_against_hand_values_and_sklearn():
    clusters = np.array([0, 0, 0, 1, 1, 1])
    labels = np.array(["a", "a", "b", "b", "b", "b"], dtype=object)
    assert vq.purity(clusters, labels) == pytest.approx(5 / 6)
    assert vq.purity(labels, clusters) == pytest.approx(5 / 6)  # a->0 (2), b->1 (3)
    rng = np.random.default_rng(0)
    for _ in range(10):
        c, lab = rng.integers(0, 5, 200), rng.integers(0, 7, 200)
        assert vq.normalized_mutual_information(c, lab) == pytest.approx(
            metrics.normalized_mutual_info_score(lab, c), abs=1e-10)
        # slow purity: majority label per cluster
        slow = sum(Counter(lab[c == k]).most_common(1)[0][1] for k in np.unique(c)) / 200
        assert vq.purity(c, lab) == pytest.approx(slow)
    assert vq.normalized_mutual_information([1, 1], ["x", "x"]) == 1.0
    with pytest.raises(ValueError, match="one entry per item"):
        vq.purity([0, 1], [0])


def _utterances(rng, n=30, shift=0.04):
    """Phones from a 4-symbol inventory, 2-5 frames each; code = phone index (perfect mapping)."""
    codes, phones = [], []
    for _ in range(n):
        seq = rng.integers(0, 4, size=6)
        lens = rng.integers(2, 6, size=6)
        codes.append(np.repeat(seq, lens))
        bounds = np.concatenate([[0], np.cumsum(lens)]) * shift
        phones.append([("pbtk"[p], bounds[i], bounds[i + 1]) for i, p in enumerate(seq)])
    return codes, phones


def test_code_phone_perfect_and_random():
    rng = np.random.default_rng(0)
    codes, phones = _utterances(rng)
    res = vq.code_phone_scores(codes, phones, frame_shift=0.04)
    assert res["purity"] == 1.0 and res["phone_purity"] == 1.0 and res["nmi"] == pytest.approx(1.0)
    # two codes per phone: purity still 1, phone purity about 1/2, NMI below 1
    split = [c * 2 + (np.arange(len(c)) % 2) for c in codes]
    res = vq.code_phone_scores(split, phones, frame_shift=0.04)
    assert res["purity"] == 1.0 and res["phone_purity"] == pytest.approx(0.5, abs=0.05) and res["nmi"] < 0.9
    random = [rng.integers(0, 4, size=len(c)) for c in codes]
    res = vq.code_phone_scores(random, phones, frame_shift=0.04)
    assert res["nmi"] < 0.05 and res["purity"] < 0.4
    # frames beyond the alignment are left out
    longer = [np.concatenate([c, [9, 9]]) for c in codes]
    assert vq.code_phone_scores(longer, phones, frame_shift=0.04)["num_frames"] == sum(map(len, codes))
    with pytest.raises(ValueError, match="2 code sequences but 1 phone"):
        vq.code_phone_scores(codes[:2], phones[:1], frame_shift=0.04)
    with pytest.raises(ValueError, match="frame_shift must be > 0"):
        vq.code_phone_scores(codes, phones, frame_shift=0)


def test_code_word_f1_hand_example():
    # frames of 0.1 s, halfwidth 0.0 so a frame "hits" a word when its centre lies inside it
    codes = [np.array([5, 5, 7, 7, 7, 1]), np.array([5, 5, 3, 3])]
    words = [[("Dog", 0.0, 0.2), ("the", 0.2, 0.5), ("cat", 0.5, 0.6)], [("dog", 0.0, 0.2), ("cat", 0.2, 0.4)]]
    res = vq.code_word_f1(codes, words, frame_shift=0.1, halfwidth=0.0)
    dog = res["words"]["dog"]
    assert dog["code"] == 5 and dog["precision"] == 1.0 and dog["recall"] == 1.0 and dog["f1"] == 1.0
    cat = res["words"]["cat"]  # code 3: precision 1, recall 1/2; code 1: precision 1, recall 1/2
    assert cat["f1"] == pytest.approx(2 * 0.5 / 1.5) and cat["recall"] == 0.5
    assert "the" not in res["words"]  # stop word
    assert res["words_detected"] == 2 and res["num_words"] == 2
    assert res["top_k_mean_f1"] == pytest.approx((1 + 2 / 3) / 2)
    # a wide window makes code 7's frames overlap "dog"/"cat" too but not change dog's best code
    wide = vq.code_word_f1(codes, words, frame_shift=0.1, halfwidth=0.04)
    assert wide["words"]["dog"]["code"] == 5


def test_code_word_f1_against_slow_definition():
    rng = np.random.default_rng(3)
    codes, words = [], []
    for _ in range(15):
        c = rng.integers(0, 6, size=20)
        bounds = np.sort(rng.choice(np.arange(1, 20), size=4, replace=False)) * 0.05
        edges = np.concatenate([[0.0], bounds, [1.0]])
        codes.append(c)
        words.append([(str(rng.integers(0, 4)), edges[i], edges[i + 1]) for i in range(5)])
    res = vq.code_word_f1(codes, words, frame_shift=0.05, halfwidth=0.04, stop_words=frozenset())
    for w, best in res["words"].items():
        f1s = []
        for code in range(6):
            nframes = hits = 0
            for c, ws in zip(codes, words):
                for i, ci in enumerate(c):
                    if ci != code:
                        continue
                    centre = (i + 0.5) * 0.05
                    nframes += 1
                    hits += any(x == w and s < centre + .04 and e >= centre - .04 for x, s, e in ws)
            occ = rec = 0
            for c, ws in zip(codes, words):
                for x, s, e in ws:
                    if x == w:
                        occ += 1
                        rec += code in c[int(math.floor(s / .05 + 1e-9)):int(math.ceil(e / .05 - 1e-9))]
            p, r = (hits / nframes if nframes else 0.0), rec / occ
            if rec:
                f1s.append(2 * p * r / (p + r) if p + r else 0.0)
        assert best["f1"] == pytest.approx(max(f1s))


def test_bitrate_definitions():
    codes = [np.array([1, 1, 2, 2, 2, 1]), np.array([3])]
    # lossy RLE: symbols 1 2 1 3 over 2 s -> N=4, H = 1.5 bits
    assert vq.bitrate(codes, [1.5, 0.5]) == pytest.approx(4 / 2 * 1.5)
    # frames: 1 x3, 2 x3, 3 x1
    p = np.array([3, 3, 1]) / 7
    assert vq.bitrate(codes, [1.5, 0.5], "frames") == pytest.approx(7 / 2 * -np.sum(p * np.log2(p)))
    # lossless: (1,2) (2,3) (1,1) (3,1): 4 distinct -> 2 bits
    assert vq.bitrate(codes, [1.5, 0.5], "lossless_rle") == pytest.approx(4 / 2 * 2)
    assert vq.bitrate([np.array([4, 4, 4])], [1.0]) == 0.0  # one symbol: zero entropy
    with pytest.raises(ValueError, match="unknown bitrate mode 'x'"):
        vq.bitrate(codes, [1, 1], "x")
    with pytest.raises(ValueError, match="durations must be positive"):
        vq.bitrate(codes, [1, 0])
    with pytest.raises(ValueError, match=r"codes\[0\] must be a 1-D integer"):
        vq.bitrate([np.zeros((2, 2), int)], [1.0])


def test_run_vq_units_with_stub_codes():
    rng = np.random.default_rng(0)
    codes, phones = _utterances(rng, n=5, shift=0.04)
    examples = []
    for c, ph in zip(codes, phones):
        examples.append({"audio": np.zeros(len(c) * 4 * 160, np.int16),
                         "phones": {"phone": [("ˈ" + p).encode() for p, _, _ in ph],
                                    "start": [s for _, s, _ in ph], "end": [e for _, _, e in ph]},
                         "words": {"word": [b"x"], "start": [0.0], "end": [0.1]}, "codes": c})

    def featurize(wav):
        return np.zeros((len(wav) // 160, 3), np.float32)

    featurizer = Featurizer(featurize, pad_value=0.0, num_features=3)

    def codes_fn(x, mask):
        t = x.shape[1] // 4
        out = np.zeros((x.shape[0], t), np.int32)
        m = np.zeros((x.shape[0], t), bool)
        for r, ex in enumerate(batch_examples):
            out[r, :len(ex["codes"])] = ex["codes"]
            m[r, :len(ex["codes"])] = True
        return out, m

    batch_examples = examples  # batch_size covers all examples
    res = vq.run_vq_units(codes_fn, examples, featurizer=featurizer, frame_shift=0.04, batch_size=8)
    assert res["phones"]["purity"] == 1.0 and res["phones"]["num_phones"] == 4
    assert set(res["bitrate"]) == set(vq.BITRATE_MODES) and res["words"]["num_words"] == 1
