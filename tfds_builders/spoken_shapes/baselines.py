"""Reference listeners of spoken_shapes 2.0, scored speech -> image from the builder's plan.

Every listener scores every (caption, image) pair of a split; images with equal scores are
ranked in random order, and recall is the exact expectation over those orders (see
`expected_ranks`). Listeners read the caption's meaning or text, never audio:

* oracle: 1 for the images the caption is true of (its `consistent` ids), else 0;
* colour_only / shape_only: how many of the colours (shapes) the caption names the image has;
* kinds_only: how many of the named colour-shape pairs the image has (no counts, sizes,
  relations or positions);
* tfidf_<lang>: a bag-of-words transcript model. Words are weighted by TF-IDF (idf from train
  captions, smooth: log((1+N)/(1+df)) + 1, vectors L2-normalised); a word-to-attribute matrix
  W = T' (A - mean A) / N is the cross-covariance, over train captions, of the word weights T
  and the binary scene attributes A of the caption's image (colours, shapes, colour-shape
  pairs, sizes, regions of the 3x3 grid, number of objects, counts per pair / shape / colour).
  A test caption t scores image i as t W a_i.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import grammar

KS = (1, 5, 10)


def expected_ranks(scores: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(above int [N], tied int [N]) for float scores [N, M] and own image rows [N]: images
    scored higher than the own image, and images scored equal (own included)."""
    own_scores = scores[np.arange(len(own)), own][:, None]
    return (scores > own_scores).sum(1), (scores == own_scores).sum(1)


def recall_table(scores: np.ndarray, own: np.ndarray, ks: Sequence[int] = KS) -> dict:
    """{"r{k}": expected R@k, "medr": median expected rank} under random tie-breaking: the own
    image is uniform among the tied positions above+1 .. above+tied."""
    above, tied = expected_ranks(scores, own)
    out = {f"r{k}": float(np.mean(np.clip((k - above) / tied, 0.0, 1.0))) for k in ks}
    out["medr"] = float(np.median(above + (tied + 1) / 2))
    return out


def _named(meaning, attr: str) -> set:
    return {getattr(m, attr) for m in meaning.mentions if getattr(m, attr) is not None}


def _kinds(meaning) -> set:
    return {(m.color, m.shape) for m in meaning.mentions if m.color and m.shape}


def attribute_scores(split_images, attr: str) -> np.ndarray:
    """float [N, M]: per caption, how many named colours ("color"), shapes ("shape") or
    colour-shape pairs ("kind") each image of the split has."""
    if attr == "kind":
        image_sets = [{(o.color, o.shape) for o in im.objects} for im in split_images]
        named = [_kinds(c.meaning) for im in split_images for c in im.captions]
    else:
        image_sets = [{getattr(o, attr) for o in im.objects} for im in split_images]
        named = [_named(c.meaning, attr) for im in split_images for c in im.captions]
    return np.array([[len(n & s) for s in image_sets] for n in named], np.float64)


def oracle_scores(split_images) -> np.ndarray:
    ids = {im.image_id: r for r, im in enumerate(split_images)}
    out = np.zeros((sum(len(im.captions) for im in split_images), len(split_images)))
    row = 0
    for im in split_images:
        for c in im.captions:
            out[row, [ids[int(i)] for i in c.consistent]] = 1.0
            row += 1
    return out


def own_rows(split_images) -> np.ndarray:
    return np.array([r for r, im in enumerate(split_images) for _ in im.captions], np.int64)


def scene_attributes(objects) -> set[str]:
    """Binary attributes of a scene (names), as used by the TF-IDF baseline."""
    out = {f"objects={len(objects)}"}
    counts: dict[str, int] = {}
    for o in objects:
        row, col = grammar.position(o)
        for a in (f"color={o.color}", f"shape={o.shape}", f"kind={o.color},{o.shape}",
                  f"size={o.size}", f"region={row},{col}", f"kind_size={o.color},{o.shape},{o.size}"):
            out.add(a)
        for key in (f"{o.color},{o.shape}", o.color, o.shape):
            counts[key] = counts.get(key, 0) + 1
    out.update(f"count={k}:{n}" for k, n in counts.items())
    return out


class TfidfListener:
    """The transcript baseline of the module docstring, fitted on one language's train texts."""

    def __init__(self, train_images, language: str):
        texts = [c.texts[language] for im in train_images for c in im.captions]
        scenes_ = [im.objects for im in train_images for _ in im.captions]
        self.vocab = {w: i for i, w in enumerate(sorted({w for t in texts for w in t.split()}))}
        df = np.zeros(len(self.vocab))
        for t in texts:
            df[[self.vocab[w] for w in set(t.split())]] += 1
        self.idf = np.log((1 + len(texts)) / (1 + df)) + 1
        attrs = [scene_attributes(s) for s in scenes_]
        self.attributes = {a: i for i, a in enumerate(sorted(set().union(*attrs)))}
        a = self._attribute_matrix(attrs)
        t = self.text_matrix(texts)
        self.weights = t.T @ (a - a.mean(0)) / len(texts)  # [V, A]

    def _attribute_matrix(self, attrs) -> np.ndarray:
        out = np.zeros((len(attrs), len(self.attributes)))
        for r, names in enumerate(attrs):
            out[r, [self.attributes[n] for n in names if n in self.attributes]] = 1.0
        return out

    def text_matrix(self, texts) -> np.ndarray:
        """float [N, V] L2-normalised TF-IDF vectors (unknown words ignored)."""
        out = np.zeros((len(texts), len(self.vocab)))
        for r, t in enumerate(texts):
            for w in t.split():
                if w in self.vocab:
                    out[r, self.vocab[w]] += 1
        out *= self.idf
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def scores(self, split_images, language: str) -> np.ndarray:
        texts = [c.texts[language] for im in split_images for c in im.captions]
        a = self._attribute_matrix([scene_attributes(im.objects) for im in split_images])
        return self.text_matrix(texts) @ self.weights @ a.T


def evaluate(plans: dict, splits: Sequence[str], languages: Sequence[str] = ("en",)) -> dict:
    """{split: {listener: recall_table}} for the oracle, attribute listeners and TF-IDF."""
    tfidf = {lang: TfidfListener(plans["train"], lang) for lang in languages}
    out = {}
    for split in splits:
        images = plans[split]
        own = own_rows(images)
        table = {"oracle": recall_table(oracle_scores(images), own)}
        for name, attr in (("colour_only", "color"), ("shape_only", "shape"),
                           ("kinds_only", "kind")):
            table[name] = recall_table(attribute_scores(images, attr), own)
        for lang, listener in tfidf.items():
            table[f"tfidf_{lang}"] = recall_table(listener.scores(images, lang), own)
        out[split] = table
    return out


def format_tables(results: dict) -> str:
    """One block per split: listener, R@1/5/10 (%) and median rank."""
    lines = []
    for split, table in results.items():
        lines.append(f"{split}:")
        lines.append(f"  {'listener':<12} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'medr':>6}")
        for name, m in table.items():
            lines.append(f"  {name:<12} {100 * m['r1']:6.1f} {100 * m['r5']:6.1f} "
                         f"{100 * m['r10']:6.1f} {m['medr']:6.1f}")
    return "\n".join(lines)

