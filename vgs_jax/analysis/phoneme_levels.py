"""Gelderloos & Chrupała (2016)'s analyses of a phoneme GRU, per layer (embedding, gru_0, gru_1, ...).

* ``word_boundaries``: a logistic-regression probe (`probes.train_probe`) predicting from a layer's
  state at each phoneme whether a word ends after it (espeak's word units, `vgs_jax.phonemes`);
  the captions' last phonemes are left out (always an end). Probe trained on the first
  `train_fraction` of the captions, scored on the rest: accuracy, majority baseline, error reduction.
* ``edit_distance`` and ``semantic``: each distinct word of the captions is phonemised alone and
  read by the model; its representation is each layer's state at its last phoneme. RSA (Pearson and
  Spearman of the pairwise distances, `rsa.rsa_scores`) of the words' cosine distances with their
  normalised phoneme edit distances, and with the cosine distances of PPMI-SVD word vectors
  trained on the training captions (`semantics.train_word_vectors`; no human similarity judgements
  exist for spoken_shapes' words).

`analyze_workdir` runs them for the trained and the random-init model of a `phoneme_train` run.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from vgs_jax import data_sources
from vgs_jax import phoneme_data
from vgs_jax import phoneme_train
from vgs_jax import phonemes
from vgs_jax.analysis import probes
from vgs_jax.analysis import rsa
from vgs_jax.analysis import semantics
from vgs_jax.models.phoneme_gru import last_state


def layer_states(model, ids: np.ndarray, mask: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
    """{layer: float32 [N, T, H]} of phoneme ids [N, T] (zero at padding)."""
    parts = [model.layer_states(ids[i:i + batch], mask[i:i + batch]) for i in range(0, len(ids), batch)]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def boundary_examples(states: np.ndarray, mask: np.ndarray, word_end: Sequence[Sequence[bool]]):
    """States [N, T, H] -> (x [n, H], y bool [n], caption [n]) for every phoneme but each caption's last."""
    xs, ys, caps = [], [], []
    for c, ends in enumerate(word_end):
        k = len(ends) - 1
        if int(mask[c].sum()) != len(ends):
            raise ValueError(f"caption {c}: {int(mask[c].sum())} phonemes in the mask but {len(ends)} word-end labels")
        xs.append(states[c, :k])
        ys.append(np.asarray(ends[:k], bool))
        caps.append(np.full(k, c))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(caps)


def word_boundaries(states: dict[str, np.ndarray], mask: np.ndarray, word_end, *, train_fraction: float = 2 / 3,
                    seed: int = 0) -> dict[str, dict]:
    """{layer: {"accuracy", "baseline_accuracy", "rer"}} of the word-end probe (captions split in order)."""
    n_train = int(round(train_fraction * len(word_end)))
    if not 0 < n_train < len(word_end):
        raise ValueError(f"word_boundaries needs captions on both sides of the split; got {len(word_end)} captions "
                         f"and train_fraction {train_fraction}")
    out = {}
    for layer, s in states.items():
        x, y, cap = boundary_examples(s, mask, word_end)
        tr = cap < n_train
        out[layer] = probes.train_probe(x[tr], y[tr], x[~tr], y[~tr], seed=seed)
    return out


def word_correlations(model, vocab: phonemes.Vocabulary, words: Sequence[str],
                      word_vectors: semantics.WordVectors) -> dict:
    """{"words": n, layer: {"edit_distance": {"pearson", "spearman"}, "semantic": {...}}} over `words`
    (those whose phonemes are all in `vocab` and that have a word vector)."""
    known = set(vocab.symbols)
    in_vectors = set(word_vectors.words)
    keep, phones = [], []
    for w in words:
        p, _ = phonemes.g2p(w)
        if w in in_vectors and set(p) <= known:
            keep.append(w)
            phones.append(p)
    if len(keep) < 3:
        raise ValueError(f"word correlations need at least 3 words with known phonemes and a word vector; got {keep}")
    ids, mask = vocab.encode(phones)
    edit = rsa.edit_distance_matrix(phones)
    meaning = rsa.cosine_distance_matrix(word_vectors.lookup(keep))
    out = {"words": len(keep)}
    for layer, s in layer_states(model, ids, mask).items():
        rep = rsa.cosine_distance_matrix(np.asarray(last_state(s, mask)))
        out[layer] = {"edit_distance": rsa.rsa_scores(rep, edit), "semantic": rsa.rsa_scores(rep, meaning)}
    return out


def analyze_model(model, vocab, split: phoneme_data.PhonemeSplit, train_texts: Sequence[str]) -> dict:
    """Both analyses of one model on `split`, word vectors from `train_texts`."""
    ids, mask = vocab.encode(split.phonemes)
    vectors = semantics.train_word_vectors([semantics.tokenize(t) for t in train_texts])
    words = sorted({w for t in split.texts for w in semantics.tokenize(t)})
    return {"word_boundaries": word_boundaries(layer_states(model, ids, mask), mask, split.word_end),
            "word_correlations": word_correlations(model, vocab, words, vectors)}


def analyze_workdir(workdir: str, *, split: str = "validation", max_utterances: int = 200,
                    output_dir: str | None = None) -> dict:
    """Runs both analyses on the first `max_utterances` captions of `split` for the run's trained and
    random-init model; writes `<output_dir or workdir/analysis>/report.json` and returns the report."""
    model, vocab, config = phoneme_train.load_run(workdir)
    random_model, _, _ = phoneme_train.load_run(workdir, random_init=True)
    d = config.dataset
    open_ = lambda name: data_sources.open_split(d.name, name, data_dir=d.data_dir, build_if_missing=False)
    data = phoneme_data.load_split(open_(split), config.image_vector, max_utterances)
    train = open_("train")
    texts = [train[i]["text"].decode() for i in range(len(train) if not d.max_train_captions
                                                        else min(d.max_train_captions, len(train)))]
    unknown = sorted({p for seq in data.phonemes for p in seq} - set(vocab.symbols))
    if unknown:
        raise ValueError(f"the {split} captions have phonemes {unknown} that the training split never had; "
                         "analyse another split or retrain on captions covering them.")
    report = {"system": phoneme_train.SYSTEM, "dataset": d.name, "split": split,
              "num_utterances": len(data.texts),
              "trained": analyze_model(model, vocab, data, texts),
              "random_init": analyze_model(random_model, vocab, data, texts)}
    output_dir = output_dir or os.path.join(workdir, "analysis")
    os.makedirs(output_dir, exist_ok=True)
    report["report_path"] = os.path.join(output_dir, "report.json")
    with open(report["report_path"], "w") as f:
        json.dump(report, f, indent=1)
    return report


def format_report(report: dict) -> str:
    """One row per layer: word-end probe accuracy (baseline) and RSA with edit distance / semantics,
    trained / random init."""
    t, r = report["trained"], report["random_init"]
    base = next(iter(t["word_boundaries"].values()))["baseline_accuracy"]
    lines = [f"{report['dataset']} {report['split']}, {report['num_utterances']} captions; "
             f"{t['word_correlations']['words']} words (trained / random init)",
             f"{'layer':10s} {'word-end acc (base ' + format(100 * base, '.1f') + ')':>26s} "
             f"{'r edit distance':>18s} {'r semantic':>18s}"]
    for layer in t["word_boundaries"]:
        acc = [100 * x["word_boundaries"][layer]["accuracy"] for x in (t, r)]
        edit = [x["word_correlations"][layer]["edit_distance"]["pearson"] for x in (t, r)]
        sem = [x["word_correlations"][layer]["semantic"]["pearson"] for x in (t, r)]
        lines.append(f"{layer:10s} {acc[0]:15.1f} / {acc[1]:5.1f}   {edit[0]:7.3f} / {edit[1]:6.3f}   "
                     f"{sem[0]:7.3f} / {sem[1]:6.3f}")
    return "\n".join(lines)
