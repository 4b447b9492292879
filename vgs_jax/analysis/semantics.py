"""Semantic analyses of utterance embeddings (sota-and-metrics.md D.6; Chrupala et al. 2017a).

* **Sentence-pair correlation**: the cosine similarity of the embeddings of spoken sentences A
  and B against human relatedness scores (SICK, spoken by ``tfds_builders/spoken_sick``):
  Pearson r and Spearman rho (Pearson on average ranks).
* **Semantic relatedness of retrieved speech** (Khorrami & Rasanen 2021): for each spoken query
  the k most similar other utterances are retrieved; each (query, candidate) pair scores the
  mean over the query's content words of the *maximum* word-vector cosine with the candidate's
  content words (optionally not counting identical words). Reported: mean over the top-k, the k
  lowest-ranked and k random candidates (controls), and the mean number of shared content words.
  Content words: the reference keeps nouns, verbs and adjectives from a POS tagger; no tagger is
  installed here, so a fixed function-word list (``STOP_WORDS``) is removed instead.
* **Word vectors** come from a file in word2vec text format (``load_word_vectors``) or are trained
  locally on the captions (``train_word_vectors``): positive PMI of symmetric-window co-occurrence
  counts, truncated SVD, vectors ``U sqrt(S)``, sign fixed so each dimension's largest-magnitude
  entry is positive (deterministic; NumPy only).
"""

import dataclasses
from collections import Counter
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from vgs_jax import audio_features

STOP_WORDS = frozenset(
    "a an the and or but of to in on at by for with from into onto over under above below is are was "
    "were be been being am it its this that these those there here he she they we you i his her their "
    "our your my me him them us as while then than so not no do does did has have had will would can "
    "could should may might must very too also just".split())


def _check_pairs(emb_a, emb_b, scores):
    a, b = np.asarray(emb_a, np.float64), np.asarray(emb_b, np.float64)
    s = np.asarray(scores, np.float64)
    if a.ndim != 2 or a.shape != b.shape or s.shape != (a.shape[0],) or a.shape[0] < 3:
        raise ValueError(f"need emb_a, emb_b [n >= 3, D] of one shape and scores [n]; got {a.shape}, "
                         f"{b.shape}, {s.shape}")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    if np.any(na == 0) or np.any(nb == 0) or not np.all(np.isfinite(s)):
        raise ValueError("an embedding row is all zero or a score is not finite; drop those pairs")
    return a / na[:, None], b / nb[:, None], s


def pair_similarity_correlation(emb_a, emb_b, scores) -> dict:
    """Pearson and Spearman correlation of cos(emb_a[i], emb_b[i]) with scores[i] (n pairs).

    Args:
      emb_a, emb_b: float ``[n, D]`` embeddings of the two sentences of each pair.
      scores: float ``[n]`` human relatedness (SICK: 1..5).
    Returns:
      {"pearson", "spearman", "n"}.
    """
    a, b, s = _check_pairs(emb_a, emb_b, scores)
    cos = np.sum(a * b, axis=1)
    return {"pearson": float(stats.pearsonr(cos, s)[0]), "spearman": float(stats.spearmanr(cos, s)[0]),
            "n": int(s.size)}


@dataclasses.dataclass
class WordVectors:
    """words [V] and their L2-normalised vectors float64 [V, D]."""

    words: list[str]
    vectors: np.ndarray

    def __post_init__(self):
        v = np.asarray(self.vectors, np.float64)
        if v.ndim != 2 or v.shape[0] != len(self.words):
            raise ValueError(f"vectors must be [len(words)={len(self.words)}, D], got {v.shape}")
        self.vectors = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        self.index = {w: i for i, w in enumerate(self.words)}

    def lookup(self, words: Sequence[str]) -> np.ndarray:
        """Vectors ``[m, D]`` of the words that are in the vocabulary (others are skipped)."""
        idx = [self.index[w] for w in words if w in self.index]
        return self.vectors[idx] if idx else np.zeros((0, self.vectors.shape[1]))


def load_word_vectors(path: str) -> WordVectors:
    """Reads a word2vec text file ("count dim" header line, then "word v1 .. vD" lines; a header-less
    GloVe-style file also works)."""
    words, rows = [], []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.rstrip("\n").split(" ")
            if line_no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue
            if len(parts) < 2:
                continue
            try:
                rows.append(np.array(parts[1:], dtype=np.float64))
            except ValueError as e:
                raise ValueError(f"{path}:{line_no}: expected 'word v1 ... vD' numbers ({e})") from e
            if rows[-1].shape != rows[0].shape:
                raise ValueError(f"{path}:{line_no}: {rows[-1].size} values, but line 1 of vectors had {rows[0].size}")
            words.append(parts[0])
    if not rows:
        raise ValueError(f"{path} holds no word vectors; give a word2vec text-format file")
    return WordVectors(words, np.stack(rows))


def tokenize(text) -> list[str]:
    """Lower-case word tokens of a caption (bytes or str), punctuation removed."""
    text = text.decode() if isinstance(text, bytes) else str(text)
    return ["".join(ch for ch in w if ch.isalnum() or ch in "-'") for w in text.lower().split()
            if any(ch.isalnum() for ch in w)]


def train_word_vectors(sentences: Sequence[Sequence[str]], *, dim: int = 50, window: int = 2,
                       min_count: int = 1) -> WordVectors:
    """PPMI + truncated SVD word vectors from tokenised sentences (deterministic)."""
    if dim < 1 or window < 1 or min_count < 1:
        raise ValueError(f"need dim, window, min_count >= 1; got {dim}, {window}, {min_count}")
    counts = Counter(w for s in sentences for w in s)
    vocab = sorted(w for w, c in counts.items() if c >= min_count)
    if len(vocab) < 2:
        raise ValueError(f"need at least 2 words occurring >= {min_count} times to train vectors; got {vocab}")
    index = {w: i for i, w in enumerate(vocab)}
    co = np.zeros((len(vocab), len(vocab)))
    for s in sentences:
        ids = [index.get(w, -1) for w in s]
        for i, wi in enumerate(ids):
            for j in range(max(0, i - window), min(len(ids), i + window + 1)):
                if j != i and wi >= 0 and ids[j] >= 0:
                    co[wi, ids[j]] += 1
    total = co.sum()
    if total == 0:
        raise ValueError("no word co-occurrences within the window; give sentences of 2+ words")
    row, col = co.sum(axis=1, keepdims=True), co.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(co * total / (row * col))
    ppmi = np.where(co > 0, np.maximum(pmi, 0.0), 0.0)
    u, s, _ = np.linalg.svd(ppmi)
    k = min(dim, len(vocab))
    u = u[:, :k] * np.sqrt(s[:k])
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(k)])
    return WordVectors(vocab, u * np.where(signs == 0, 1.0, signs))


def content_words(text, stop_words: frozenset = STOP_WORDS) -> list[str]:
    """Tokens of `text` that are not stop words."""
    return [w for w in tokenize(text) if w not in stop_words]


def relatedness(query_words: Sequence[str], candidate_words: Sequence[str], vectors: WordVectors, *,
                exclude_identical: bool = False) -> float:
    """Mean over query words of the max cosine with the candidate's words; NaN if either has no
    in-vocabulary word (or, with exclude_identical, every candidate word equals the query word)."""
    q, scores = [w for w in query_words if w in vectors.index], []
    cands = [w for w in candidate_words if w in vectors.index]
    for w in q:
        pool = [c for c in cands if not (exclude_identical and c == w)]
        if pool:
            scores.append(float(np.max(vectors.lookup(pool) @ vectors.lookup([w])[0])))
    return float(np.mean(scores)) if scores else float("nan")


def retrieval_relatedness(similarity, query_texts: Sequence, candidate_texts: Sequence, vectors: WordVectors, *,
                          k: int = 5, exclude_self: bool = True, exclude_identical: bool = False,
                          seed: int = 0, stop_words: frozenset = STOP_WORDS) -> dict:
    """Relatedness of the top-k retrieved candidates per query, with low-ranked and random controls.

    Args:
      similarity: float ``[n_queries, n_candidates]`` model similarities (higher = closer).
      query_texts / candidate_texts: transcripts, one per row / column.
      exclude_self: the queries are the candidates (square matrix): drop each query's own column.
    Returns:
      {"top_k", "bottom_k", "random_k", "shared_top_k", "shared_random_k", "k", "num_queries"}: means
      over queries (NaN pairs skipped) of relatedness and shared content-word counts.
    """
    sim = np.asarray(similarity, np.float64)
    if sim.ndim != 2 or sim.shape != (len(query_texts), len(candidate_texts)):
        raise ValueError(f"similarity must be [len(query_texts)={len(query_texts)}, "
                         f"len(candidate_texts)={len(candidate_texts)}], got {sim.shape}")
    if exclude_self and sim.shape[0] != sim.shape[1]:
        raise ValueError(f"exclude_self needs a square similarity matrix (queries = candidates), got {sim.shape}")
    n_c = sim.shape[1] - int(exclude_self)
    if not 1 <= k <= n_c:
        raise ValueError(f"k must be in [1, {n_c}] (the candidates per query), got {k}")
    rng = np.random.default_rng(seed)
    q_words = [content_words(t, stop_words) for t in query_texts]
    c_words = [content_words(t, stop_words) for t in candidate_texts]
    out = {"top_k": [], "bottom_k": [], "random_k": [], "shared_top_k": [], "shared_random_k": []}
    for i in range(sim.shape[0]):
        cols = np.array([j for j in range(sim.shape[1]) if not (exclude_self and j == i)])
        order = cols[np.argsort(-sim[i, cols], kind="stable")]
        groups = {"top_k": order[:k], "bottom_k": order[-k:], "random_k": rng.choice(cols, k, replace=False)}
        for name, sel in groups.items():
            out[name] += [relatedness(q_words[i], c_words[j], vectors, exclude_identical=exclude_identical)
                          for j in sel]
        out["shared_top_k"] += [len(set(q_words[i]) & set(c_words[j])) for j in groups["top_k"]]
        out["shared_random_k"] += [len(set(q_words[i]) & set(c_words[j])) for j in groups["random_k"]]
    res = {name: float(np.nanmean(v)) if np.any(np.isfinite(v)) else float("nan") for name, v in out.items()}
    return {**res, "k": k, "num_queries": int(sim.shape[0])}


def _embed_all(embed_fn: Callable, examples: Sequence[dict], audio_key: str,
               featurizer: audio_features.Featurizer, batch_size: int) -> np.ndarray:
    from vgs_jax import inference  # pylint: disable=import-outside-toplevel
    return np.concatenate([np.asarray(embed_fn(b["features"], b["mask"]), np.float64) for b in
                           inference.feature_batches(examples, featurizer, batch_size, audio_key=audio_key)])


def run_semantics(embed_fn: Callable, *, featurizer: audio_features.Featurizer,
                  sick_examples: Sequence[dict] | None = None,
                  caption_examples: Sequence[dict] | None = None, word_vectors_path: str | None = None,
                  k: int = 5, batch_size: int = 16, seed: int = 0) -> dict:
    """Semantic report: SICK correlation and/or relatedness of retrieved captions.

    Args:
      embed_fn: ``(features [B, T, F] float32, mask [B, T] bool) -> [B, D]`` utterance embeddings.
      featurizer: ``waveform int16 [n] -> float32 [T, F]`` with its pad value (`audio_features.Featurizer`).
      sick_examples: spoken_sick examples ("audio_a", "audio_b", "relatedness").
      caption_examples: examples with "audio" and "text" (e.g. a spoken_shapes split).
      word_vectors_path: word2vec text file; default: PPMI-SVD vectors trained on the captions.
    Returns:
      {"sick": pair_similarity_correlation, "retrieval": retrieval_relatedness} (parts given).
    """
    if sick_examples is None and caption_examples is None:
        raise ValueError("run_semantics needs sick_examples and/or caption_examples")
    report = {}
    if sick_examples is not None:
        a = _embed_all(embed_fn, sick_examples, "audio_a", featurizer, batch_size)
        b = _embed_all(embed_fn, sick_examples, "audio_b", featurizer, batch_size)
        report["sick"] = pair_similarity_correlation(a, b, [float(ex["relatedness"]) for ex in sick_examples])
    if caption_examples is not None:
        z = _embed_all(embed_fn, caption_examples, "audio", featurizer, batch_size)
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        texts = [ex["text"] for ex in caption_examples]
        vectors = (load_word_vectors(word_vectors_path) if word_vectors_path
                   else train_word_vectors([tokenize(t) for t in texts]))
        report["retrieval"] = retrieval_relatedness(z @ z.T, texts, texts, vectors, k=k, seed=seed)
    return report
