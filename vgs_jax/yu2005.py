"""Yu, Ballard & Aslin (2005) on spoken_shapes: word learning from the speaker's attention.

    python -m vgs_jax.yu2005 --dataset=spoken_shapes/tiny

Survey-systems.md A.2. Steps, with what spoken_shapes stands in for:

* attention cue: the object each word is about, from the metadata (a shape or colour word refers
  to the scene object matching every shape/colour word of its noun phrase, e.g. "orange stars" ->
  the first orange star); the object attended while any other word is spoken is the next named one
  (else the previous); with probability `cue_noise` a word's attended object is replaced by a
  random scene object. With the cue, each stretch of words spoken while one object is attended is
  a Model 1 sentence whose meanings are that object's categories (Yu et al. pair speech with the
  object gazed at while it is spoken); the baseline without the cue pairs the whole utterance with
  every scene object's categories.
* object categories: k-means over features computed from the pixels of each object's box (colour:
  mean RGB of the foreground pixels; shape: the foreground mask at 12 x 12 in the box, its fill
  ratio and its edge density as texture), separately for colour (k = 8) and shape (k = 7), since
  spoken_shapes' words name a colour or a shape; each object gives two meanings.
* word candidates: the paper's phoneme recogniser is replaced by the stored phone alignments
  (stress marks dropped). For pairs of utterances that share a meaning, the maximal common phone
  n-grams (`min_phones`..`max_phones` long) are candidates; candidates found in >= `min_pairs`
  pairs are clustered greedily (most frequent first) by normalised edit distance <= `merge_distance`
  into word types (Yu et al. align phoneme strings by a similarity measure; exact n-gram matching
  on clean alignments plus the merge approximates it).
* lexicon: IBM Model 1 (`ibm_model1.em`, with a NULL meaning) between word types and meanings;
  a word type's entry is its most probable meaning when that is not NULL and has p >= 0.5.

Metrics against ground truth (percent): semantic accuracy (cluster purity of the object
categories), segmentation accuracy (lexicon occurrences that start and end at word boundaries),
word-meaning association precision (lexicon entries whose word type is mostly the word naming the
meaning's majority label) and lexical spotting recall (shape/colour word tokens covered by an
occurrence of a lexicon word type whose meaning they name).
"""
import collections
import dataclasses
from collections.abc import Sequence

import numpy as np

from vgs_jax import ibm_model1
from vgs_jax import segment_view
from vgs_jax.analysis import gating
from vgs_jax.analysis import rsa

STRESS = "ˈˌ"
CROP = 12


@dataclasses.dataclass(frozen=True)
class Options:
    """The recipe's settings (module docstring); `seed` drives k-means, pair sampling and cue noise."""
    cue_noise: float = 0.0
    min_phones: int = 3
    max_phones: int = 8
    min_pairs: int = 2
    max_pairs: int = 4000
    merge_distance: float = 0.25
    iterations: int = 20
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Utterance:
    """phones [P] str; word_of_phone [P] int; words [W] str; referent [W] object index or -1;
    objects: (shape, colour) names per scene object."""
    phones: tuple
    word_of_phone: np.ndarray
    words: tuple
    referent: np.ndarray
    objects: tuple


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def referents(words: Sequence[str], objects: Sequence[tuple[str, str]]) -> np.ndarray:
    """[W] the scene object each word is about (-1: none). A noun phrase is a run of colour words,
    size words ("small", "big", ...) and a final shape word; its colour and shape words refer to
    the first object matching all of them (a phrase without a matching object, or a colour word
    without its noun, refers to none)."""
    from tfds_builders.spoken_shapes import grammar  # deferred: only spoken_shapes has this grammar

    concepts = gating.word_concepts()
    sizes = {w for forms in grammar.get_lexicon("en").sizes.values() for w in forms}
    out = np.full(len(words), -1)
    phrase = []
    for i, word in enumerate(words):
        concept = concepts.get(word)
        if concept is None:
            if word not in sizes:
                phrase = []
            continue
        phrase.append((i, concept))
        if concept[0] == "shape":
            wanted = {c for _, c in phrase}
            match = [k for k, (s, c) in enumerate(objects) if wanted <= {("shape", s), ("color", c)}]
            for j, _ in phrase:
                out[j] = match[0] if match else -1
            phrase = []
    return out


def load_utterances(source: Sequence[dict], limit: int | None = None) -> tuple[list[Utterance], np.ndarray, np.ndarray]:
    """The first `limit` (all when None) examples -> utterances, object crops [O, CROP, CROP, 3] in
    [0, 1] (every utterance's objects in order, each image's objects once per caption) and each
    object's image background colour [O, 3] (median of the image's outermost pixels)."""
    from tfds_builders.spoken_shapes import scenes  # deferred: the label names of spoken_shapes

    n = len(source) if limit is None else min(limit, len(source))
    utts, crops, backgrounds = [], [], []
    for i in range(n):
        ex = source[i]
        segment_view.check_annotations(ex, i, "yu2005")
        if _text(ex.get("language", "en")) != "en":
            raise ValueError(f"yu2005 reads English shape and colour words, but example {i} is in "
                             f"{_text(ex['language'])!r}; use an English spoken_shapes config.")
        if "phones" not in ex or "phone" not in ex["phones"]:
            raise ValueError(f"yu2005 reads phone alignments, but example {i} has none (keys {sorted(ex)}); "
                             "spoken_shapes has them.")
        w, p = ex["words"], ex["phones"]
        words = tuple(_text(x).lower() for x in w["word"])
        mid = (np.asarray(p["start"]) + np.asarray(p["end"])) / 2
        word_of_phone = np.clip(np.searchsorted(np.asarray(w["end"]), mid), 0, len(words) - 1)
        objs = ex["objects"]
        objects = tuple((scenes.SHAPES[int(s)], scenes.COLORS[int(c)]) for s, c in zip(objs["shape"], objs["color"]))
        image = np.asarray(ex["image"])
        crops += [segment_view.crop(image, b, CROP).reshape(CROP, CROP, 3) for b in objs["bbox"]]
        edge = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]) / 255.0
        backgrounds += [np.median(edge, axis=0)] * len(objects)
        utts.append(Utterance(tuple(_text(x).strip(STRESS) for x in p["phone"]), word_of_phone, words,
                              referents(words, objects), objects))
    return (utts, np.asarray(crops, np.float32).reshape(-1, CROP, CROP, 3),
            np.asarray(backgrounds, np.float32).reshape(-1, 3))


def object_features(crops: np.ndarray, backgrounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """crops [O, S, S, 3] and backgrounds [O, 3] in [0, 1] -> colour features [O, 3] and
    shape/texture features [O, S*S + 2]. Foreground: crop pixels away from the background colour."""
    fg = np.abs(crops - backgrounds[:, None, None, :]).max(-1) > 0.12  # [O, S, S]
    count = np.maximum(fg.sum((1, 2)), 1)[:, None]
    colour = (crops * fg[..., None]).sum((1, 2)) / count
    grey = crops.mean(-1)
    edges = np.abs(np.diff(grey, axis=1)).mean((1, 2)) + np.abs(np.diff(grey, axis=2)).mean((1, 2))
    shape = np.concatenate([fg.reshape(len(fg), -1), fg.mean((1, 2))[:, None], edges[:, None]], axis=1)
    return colour.astype(np.float32), shape.astype(np.float32)


def kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """[O, D] -> cluster ids [O] in 0..k-1."""
    from sklearn.cluster import KMeans  # pylint: disable=import-outside-toplevel

    if len(x) < k:
        raise ValueError(f"yu2005 clusters objects into {k} categories but the data has only {len(x)} objects; "
                         "use more captions.")
    return KMeans(k, n_init=10, random_state=seed).fit_predict(x)


def purity(clusters: np.ndarray, labels: Sequence[str]) -> tuple[float, dict[int, str]]:
    """Fraction of items whose cluster's majority label is theirs, and cluster -> majority label."""
    majority = {c: collections.Counter(l for l, cc in zip(labels, clusters) if cc == c).most_common(1)[0][0]
                for c in set(clusters.tolist())}
    return float(np.mean([majority[c] == l for c, l in zip(clusters.tolist(), labels)])), majority


def maximal_common(a: set, b: set) -> set:
    """The common n-grams of two n-gram sets that are not inside a longer common one."""
    common = a & b
    inner = {g[s:e] for g in common for s in range(len(g)) for e in range(s + 1, len(g) + 1) if e - s < len(g)}
    return common - inner


def word_types(utts: Sequence[Utterance], meanings: Sequence[set], opts: Options) -> list[list[tuple]]:
    """Word types, each a list of phone n-grams (its first the most frequent), from utterance pairs
    sharing a meaning (at most `max_pairs`, a seeded sample)."""
    grams = [set(positions(u.phones, opts.min_phones, opts.max_phones)) for u in utts]
    pairs = sorted({(i, j) for i in range(len(utts)) for j in range(i + 1, len(utts)) if meanings[i] & meanings[j]})
    if len(pairs) > opts.max_pairs:
        pick = np.random.default_rng(opts.seed).choice(len(pairs), opts.max_pairs, replace=False)
        pairs = [pairs[k] for k in sorted(pick)]
    found = collections.Counter(g for i, j in pairs for g in maximal_common(grams[i], grams[j]))
    types = []
    for gram, count in sorted(found.items(), key=lambda kv: (-kv[1], kv[0])):  # not set order: hash-seeded
        if count < opts.min_pairs:
            break
        for members in types:
            if rsa.normalized_edit_distance(gram, members[0]) <= opts.merge_distance:
                members.append(gram)
                break
        else:
            types.append([gram])
    return types


def positions(phones: Sequence[str], lo: int, hi: int) -> dict[tuple, list[int]]:
    """Every phone n-gram (`lo`..`hi` long) of `phones` -> its start indices."""
    out = collections.defaultdict(list)
    for n in range(lo, hi + 1):
        for i in range(len(phones) - n + 1):
            out[tuple(phones[i:i + n])].append(i)
    return out


def occurrences(index: dict[tuple, list[int]], members: Sequence[tuple]) -> list[tuple[int, int]]:
    """(start, end) phone spans where any member n-gram occurs (`index`: `positions` of the phones)."""
    return sorted({(i, i + len(g)) for g in members for i in index.get(g, ())})


def attention(referent: np.ndarray) -> np.ndarray:
    """[W] the object attended while each word is spoken: a word's referent, else the next word's
    referent (gaze goes to an object before it is named), else the previous one; -1 when no word of
    the utterance refers to an object."""
    out = referent.copy()
    for i in range(len(out) - 2, -1, -1):
        if out[i] < 0:
            out[i] = out[i + 1]
    for i in range(1, len(out)):
        if out[i] < 0:
            out[i] = out[i - 1]
    return out


def runs(values: Sequence) -> list[range]:
    """Maximal runs of equal consecutive values, as index ranges."""
    cuts = [0] + [i for i in range(1, len(values)) if values[i] != values[i - 1]] + [len(values)]
    return [range(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def span_word(u: Utterance, span: tuple[int, int]) -> int:
    """The index of the word holding most of the phone span's phones."""
    return collections.Counter(u.word_of_phone[span[0]:span[1]].tolist()).most_common(1)[0][0]


def covers(spans: Sequence[tuple[int, int]], idx: np.ndarray) -> bool:
    """Whether some span holds at least half of the phone indices `idx` (a word's phones)."""
    return len(idx) > 0 and any(2 * np.sum((idx >= s) & (idx < e)) >= len(idx) for s, e in spans)


def lexicon_entries(t: np.ndarray, sentences: Sequence[tuple[list, list]]) -> list[tuple[int, int]]:
    """(meaning, word type) pairs: each word type whose most probable meaning, p(e | w) ~ t[e, w] *
    (sentences holding e), is not NULL (the last row of t) and has probability >= 0.5."""
    seen = np.bincount([e for _, m in sentences for e in m], minlength=t.shape[0]).astype(float)
    seen[-1] = len(sentences)
    post = t * seen[:, None]
    post = post / np.maximum(post.sum(0, keepdims=True), 1e-300)
    best = post.argmax(0)
    return [(int(best[w]), w) for w in range(t.shape[1])
            if best[w] != t.shape[0] - 1 and post[best[w], w] >= 0.5]


def learn(utts: Sequence[Utterance], crops: np.ndarray, backgrounds: np.ndarray, *, use_cue: bool,
          opts: Options) -> dict:
    """Runs the system on `load_utterances`' output; returns its lexicon and the metrics (percent)."""
    colour_f, shape_f = object_features(crops, backgrounds)
    k_colour, k_shape = 8, 7
    colour_c = kmeans(colour_f, k_colour, opts.seed)
    shape_c = k_colour + kmeans(shape_f, k_shape, opts.seed)
    labels_c = [c for u in utts for _, c in u.objects]
    labels_s = [s for u in utts for s, _ in u.objects]
    pur_c, maj_c = purity(colour_c, labels_c)
    pur_s, maj_s = purity(shape_c, labels_s)
    concept_of_meaning = {**{m: ("color", l) for m, l in maj_c.items()}, **{m: ("shape", l) for m, l in maj_s.items()}}

    rng = np.random.default_rng(opts.seed)
    attended, meanings, first = [], [], 0
    for u in utts:
        n = len(u.objects)
        gaze = attention(u.referent)
        noisy = (gaze >= 0) & (rng.random(len(gaze)) < opts.cue_noise)
        gaze = np.where(noisy, rng.integers(0, n, len(gaze)), gaze)
        tokens_of = {k: {int(colour_c[first + k]), int(shape_c[first + k])} for k in range(n)}
        attended.append([tokens_of.get(int(k), set()) for k in gaze])
        meanings.append(set().union(*attended[-1]) if use_cue else set().union(*tokens_of.values()))
        first += n

    types = word_types(utts, meanings, opts)
    if not types:
        raise ValueError("yu2005 found no recurring phone sequences; use more captions or lower min_pairs.")
    index = [positions(u.phones, opts.min_phones, opts.max_phones) for u in utts]
    occ = [[occurrences(ix, members) for members in types] for ix in index]
    sentences = []
    for u, per, gaze, m in zip(utts, occ, attended, meanings):
        if not use_cue:
            sentences.append(([k for k, o in enumerate(per) if o], sorted(m)))
            continue
        for run in runs(gaze):  # one sentence per stretch of words spoken while one object is attended
            words = [k for k, o in enumerate(per) if any(span_word(u, s) in run for s in o)]
            sentences.append((words, sorted(gaze[run[0]])))
    t = ibm_model1.em(sentences, len(types), k_colour + k_shape, iterations=opts.iterations)
    lexicon = lexicon_entries(t, sentences)

    concepts = gating.word_concepts()
    type_word = {}
    for k in {w for _, w in lexicon}:
        spans = [u.words[span_word(u, s)] for u, per in zip(utts, occ) for s in per[k]]
        type_word[k] = collections.Counter(spans).most_common(1)[0][0]
    precision = np.mean([concepts.get(type_word[w]) == concept_of_meaning[m] for m, w in lexicon]) if lexicon else 0.0

    at_boundary, spotted, tokens = [], 0, 0
    for u, per in zip(utts, occ):
        wop = u.word_of_phone
        bounds = {0, len(wop)} | {i for i in range(1, len(wop)) if wop[i] != wop[i - 1]}
        for w in {w for _, w in lexicon}:
            at_boundary += [s in bounds and e in bounds for s, e in per[w]]
        for j, word in enumerate(u.words):
            if word not in concepts:
                continue
            tokens += 1
            idx = np.flatnonzero(wop == j)
            spotted += any(concept_of_meaning[m] == concepts[word] and covers(per[w], idx)
                           for m, w in lexicon)
    return {
        "semantic_accuracy": 100 * (pur_c + pur_s) / 2,
        "semantic_accuracy_color": 100 * pur_c, "semantic_accuracy_shape": 100 * pur_s,
        "segmentation_accuracy": 100 * float(np.mean(at_boundary)) if at_boundary else 0.0,
        "association_precision": 100 * float(precision),
        "spotting_recall": 100 * spotted / max(tokens, 1),
        "num_word_types": len(types),
        "lexicon": [(f"{concept_of_meaning[m][1]} (cluster {m})", "".join(types[w][0]), type_word[w])
                    for m, w in lexicon],
    }


METRICS = (("semantic_accuracy", "semantic accuracy (object clusters)"),
           ("segmentation_accuracy", "segmentation accuracy"),
           ("association_precision", "word-meaning association precision"),
           ("spotting_recall", "lexical spotting recall"))


def evaluate(utts, crops, backgrounds, opts: Options) -> dict:
    """Both conditions: with the attention cue and the baseline without it."""
    return {"attention_cue": learn(utts, crops, backgrounds, use_cue=True, opts=opts),
            "no_cue": learn(utts, crops, backgrounds, use_cue=False, opts=opts)}


def format_results(results: dict, opts: Options, n: int) -> str:
    """The metrics table (cue / no cue) and the cue's lexicon."""
    cue, base = results["attention_cue"], results["no_cue"]
    lines = [f"Yu et al. 2005 on {n} utterances (cue noise {opts.cue_noise}): "
             "attention cue / no cue (all scene objects)"]
    lines += [f"{name:40s} {cue[key]:5.1f} / {base[key]:5.1f}" for key, name in METRICS]
    lines.append(f"{'word types':40s} {cue['num_word_types']:5d} / {base['num_word_types']:5d}")
    lines.append("lexicon with the cue (meaning: word type phones, word it mostly covers):")
    lines += [f"  {m}: {p} ({w})" for m, p, w in sorted(results["attention_cue"]["lexicon"])]
    return "\n".join(lines)


def main(argv):
    from absl import app  # pylint: disable=import-outside-toplevel
    from vgs_jax import data_sources  # pylint: disable=import-outside-toplevel

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    f = FLAGS
    if not 0.0 <= f.cue_noise <= 1.0:
        raise app.UsageError(f"--cue_noise must be a probability in [0, 1], got {f.cue_noise}")
    source = data_sources.open_split(f.dataset, f.split, data_dir=f.data_dir, build_if_missing=True)
    utts, crops, backgrounds = load_utterances(source, f.max_captions or None)
    opts = Options(cue_noise=f.cue_noise, iterations=f.iterations, seed=f.seed)
    print(format_results(evaluate(utts, crops, backgrounds, opts), opts, len(utts)), flush=True)


if __name__ == "__main__":
    from absl import flags
    from vgs_jax import cli
    from vgs_jax import config_lib

    FLAGS = flags.FLAGS
    flags.DEFINE_string("dataset", "spoken_shapes/tiny:1.0.0",
                        "An English spoken_shapes config (word/phone alignments, object boxes); the README's "
                        "table was measured on 1.0.0.")
    flags.DEFINE_string("data_dir", config_lib.default_data_dir(), "TFDS data_dir (built there when missing).")
    flags.DEFINE_string("split", "train", "Split to learn from and score (the method is unsupervised).")
    flags.DEFINE_integer("max_captions", 0, "First N captions (0: all).")
    flags.DEFINE_float("cue_noise", 0.0, "Probability of replacing a word's referent by a random scene object.")
    flags.DEFINE_integer("iterations", 20, "IBM Model 1 EM iterations.")
    flags.DEFINE_integer("seed", 0, "Seed of k-means, pair sampling and cue noise.")
    cli.run(main)
