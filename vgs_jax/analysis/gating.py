"""Gating (after Havard, Chevrot & Besacier 2019b): when does a word start to retrieve its referent?

Protocol chosen here. For a target word with alignment ``[start, end)`` seconds in a caption, gate
g cuts the waveform at ``start + f_g (end - start)`` (default fractions 0, 0.2, ..., 1.0 of the
word's duration). With ``context="utterance"`` (default) everything before the word is kept, so
gate 0 is the caption up to the word's onset and the curve shows what the word adds to its left
context; ``context="word"`` keeps only the word itself (the isolated-word gating of Havard et
al., who gate phone by phone; we gate by fractions of duration so words of different lengths
average on one axis). Each gated waveform is embedded by the speech tower and all images of the
split are ranked by cosine similarity; the trial's rank is the position of the best-ranked
image that contains the word's concept (on spoken_shapes: a shape word's shape, or a colour
word's colour, among the image's objects). Ties count against the model (an image scoring equal
to the best relevant image ranks before it), so an all-zero embedding (a cut too short for one
encoder frame) gets the worst rank. Per gate we report the mean and median rank and R@1/5/10
(fraction of trials with rank <= k), and ``chance_r10``: the mean over trials of the R@10 a
random ranking would reach, ``1 - C(M - r, 10) / C(M, 10)`` for r relevant among M images.
"""

import dataclasses
import functools
import math
from typing import Callable, Sequence

import numpy as np

from vgs_jax import audio_features
from vgs_jax import data_sources
from vgs_jax import inference
from vgs_jax.analysis import data_fields

CONTEXTS = ("utterance", "word")
DEFAULT_FRACTIONS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclasses.dataclass(frozen=True)
class GatingTrial:
    """One target word: its caption's waveform (int16 ``[n]``, 16 kHz), alignment (seconds),
    concept kind ("shape"/"color") and the bool ``[M]`` mask of images that contain the concept."""

    waveform: np.ndarray
    word: str
    start: float
    end: float
    kind: str
    relevant: np.ndarray
    caption_id: int = -1


def gate_waveforms(trial: GatingTrial, fractions: Sequence[float], *, context: str = "utterance",
                   sample_rate: int = audio_features.SAMPLE_RATE) -> list[np.ndarray]:
    """The gated waveforms of `trial`, one per fraction: samples ``[lo, round(cut * sr))`` where
    ``cut = start + f (end - start)`` and lo is 0 (context "utterance") or round(start * sr) ("word")."""
    if context not in CONTEXTS:
        raise ValueError(f"Unknown gating context {context!r}; choose one of {CONTEXTS}.")
    if not 0.0 <= trial.start <= trial.end:
        raise ValueError(f"word {trial.word!r} of caption {trial.caption_id} has start {trial.start} s, "
                         f"end {trial.end} s; need 0 <= start <= end.")
    for f in fractions:
        if not 0.0 <= f <= 1.0:
            raise ValueError(f"gating fractions must be in [0, 1], got {f}.")
    n = len(trial.waveform)
    lo = 0 if context == "utterance" else min(int(round(trial.start * sample_rate)), n)
    cuts = [min(int(round((trial.start + f * (trial.end - trial.start)) * sample_rate)), n) for f in fractions]
    return [trial.waveform[lo:max(cut, lo)] for cut in cuts]


def concept_rank(scores, relevant) -> int:
    """1-based rank of the best relevant item under `scores` ``[M]`` (higher = better); items scoring
    equal to it count as ranked before it. `relevant` is bool ``[M]`` with at least one True."""
    scores, relevant = np.asarray(scores, np.float64), np.asarray(relevant, bool)
    if scores.shape != relevant.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} must be equal 1-D shapes.")
    if not relevant.any():
        raise ValueError("no relevant image: the concept occurs in none of the split's images; drop the trial.")
    best = scores[relevant].max()
    return 1 + int(np.sum(scores[~relevant] >= best))


def chance_recall(num_items: int, num_relevant: int, k: int) -> float:
    """Probability that a uniformly random ranking of `num_items` puts one of `num_relevant` in the top k."""
    if not 1 <= num_relevant <= num_items or k < 1:
        raise ValueError(f"need 1 <= num_relevant ({num_relevant}) <= num_items ({num_items}) and k >= 1.")
    k = min(k, num_items)
    return 1.0 - math.comb(num_items - num_relevant, k) / math.comb(num_items, k)


def gating_curve(embed_fn: Callable[[list[np.ndarray]], np.ndarray], image_embeddings, trials: Sequence[GatingTrial],
                 fractions: Sequence[float] = DEFAULT_FRACTIONS, *, context: str = "utterance",
                 ks: Sequence[int] = (1, 5, 10), trials_per_call: int = 32) -> dict:
    """Ranks of the concept's images at each gate.

    Args:
      embed_fn: list of B int16 waveforms -> ``[B, E]`` speech embeddings (unit norm, or zero); it
        gets the gates of `trials_per_call` trials at a time.
      image_embeddings: ``[M, E]`` unit-norm image embeddings; each trial's `relevant` is ``[M]``.
    Returns:
      {"fractions", "context", "num_trials", "num_images", "mean_rank", "median_rank", "r<k>"
       (lists over gates), "chance_r10", "by_kind": {kind: {"num_trials", "mean_rank", "r10"}}}.
    """
    images = np.asarray(image_embeddings, np.float64)
    if images.ndim != 2 or images.shape[0] == 0:
        raise ValueError(f"image_embeddings must be [M > 0, E], got shape {images.shape}.")
    if not trials:
        raise ValueError("no gating trials: no target word in the analysed captions.")
    ranks = np.zeros((len(trials), len(fractions)), np.int64)
    for t, trial in enumerate(trials):
        if np.shape(trial.relevant) != (images.shape[0],):
            raise ValueError(f"trial {t} ({trial.word!r}): relevant has shape {np.shape(trial.relevant)}, "
                             f"expected [{images.shape[0]}] (one flag per image).")
    g = len(fractions)
    for lo in range(0, len(trials), trials_per_call):
        group = trials[lo:lo + trials_per_call]
        waves = [w for trial in group for w in gate_waveforms(trial, fractions, context=context)]
        z = np.asarray(embed_fn(waves), np.float64)
        if z.shape != (len(waves), images.shape[1]):
            raise ValueError(f"embed_fn returned {z.shape} for {len(waves)} waveforms; expected "
                             f"[{len(waves)}, {images.shape[1]}].")
        scores = (z @ images.T).reshape(len(group), g, -1)
        for t, trial in enumerate(group):
            for k in range(g):
                ranks[lo + t, k] = concept_rank(scores[t, k], trial.relevant)
    out = {"fractions": [float(f) for f in fractions], "context": context, "num_trials": len(trials),
           "num_images": int(images.shape[0]), "mean_rank": ranks.mean(axis=0).tolist(),
           "median_rank": np.median(ranks, axis=0).tolist()}
    for k in ks:
        out[f"r{k}"] = (ranks <= k).mean(axis=0).tolist()
    out["chance_r10"] = float(np.mean([chance_recall(images.shape[0], int(np.sum(t.relevant)), 10)
                                       for t in trials]))
    kinds = np.array([t.kind for t in trials])
    out["by_kind"] = {kind: {"num_trials": int(np.sum(kinds == kind)),
                             "mean_rank": ranks[kinds == kind].mean(axis=0).tolist(),
                             "r10": (ranks[kinds == kind] <= 10).mean(axis=0).tolist()}
                      for kind in sorted(set(kinds.tolist()))}
    return out


def model_embedder(template, params, featurizer: audio_features.Featurizer, *, batch_size: int = 32,
                   pad_multiple: int = 64, model_state=None) -> Callable[[list[np.ndarray]], np.ndarray]:
    """`embed_fn` for `gating_curve` from a DualEncoder template and params (`inference.embed_waveforms`):
    waveforms featurised by `featurizer`, batched by length and padded to `pad_multiple` times a
    power of two frames; ``[B, E]`` float32, zeros for a waveform shorter than one analysis window
    (400 samples) or too short for a single encoder frame (the masked pooling is empty)."""
    return functools.partial(inference.embed_waveforms, template, params, featurizer=featurizer,
                             batch_size=batch_size, pad_multiple=pad_multiple, model_state=model_state)


def split_images(source: Sequence[dict], *, image_key: str = "image"
                 ) -> tuple[np.ndarray, np.ndarray, list[set[tuple[str, str]]]]:
    """Unique images of a spoken_shapes split, first-seen order: (image_id int64 ``[M]``, pixels
    uint8 ``[M, H, W, 3]`` (or the `image_key` features), per image the set of concepts
    ``("shape", name)`` / ``("color", name)``)."""
    from tfds_builders.spoken_shapes import scenes  # deferred: only spoken_shapes has objects

    ids, pixels, concepts, seen = [], [], [], set()
    for i in range(len(source)):
        ex = source[i]
        if "objects" not in ex or "image_id" not in ex:
            raise KeyError(f"example {i} has no 'objects'/'image_id'; gating needs spoken_shapes-style object "
                           f"labels; keys present: {sorted(ex)}.")
        image_id = int(ex["image_id"])
        if image_id in seen:
            continue
        seen.add(image_id)
        ids.append(image_id)
        pixels.append(np.asarray(ex[image_key]))
        objs = ex["objects"]
        concepts.append({("shape", scenes.SHAPES[int(s)]) for s in objs["shape"]}
                        | {("color", scenes.COLORS[int(c)]) for c in objs["color"]})
    return np.asarray(ids, np.int64), np.stack(pixels), concepts


def word_concepts(language: str = "en") -> dict[str, tuple[str, str]]:
    """Spoken word -> concept: every shape noun (singular, plural) and colour word of the grammar."""
    from tfds_builders.spoken_shapes import grammar  # deferred: only spoken_shapes has this grammar

    lex = grammar.get_lexicon(language)
    out = {w: ("shape", shape) for shape, forms in lex.shapes.items() for w in forms}
    out.update({w: ("color", color) for color, w in lex.colors.items()})
    return out


def spoken_shapes_trials(source: Sequence[dict], meta: Sequence[dict], concepts: list[set[tuple[str, str]]],
                         *, max_trials: int, seed: int = 0, language: str = "en") -> list[GatingTrial]:
    """Gating trials for every shape/colour word of the first ``len(meta)`` captions of `source`
    (alignments from `meta`, `Activations.meta`), at most `max_trials` (a seeded sample)."""
    lookup = word_concepts(language)
    trials = []
    for i, m in enumerate(meta):
        ex = source[i]
        if int(ex["caption_id"]) != m["caption_id"]:
            raise ValueError(f"meta {i} is caption {m['caption_id']} but the split's example {i} is caption "
                             f"{int(ex['caption_id'])}; pass the meta extracted from this split.")
        for word, start, end in m["words"]:
            concept = lookup.get(word.lower())
            if concept is None or not end > start:
                continue
            relevant = np.array([concept in c for c in concepts])
            trials.append(GatingTrial(np.asarray(ex["audio"]), word, float(start), float(end), concept[0],
                                      relevant, int(ex["caption_id"])))
    if len(trials) > max_trials:
        keep = np.random.default_rng(seed).choice(len(trials), max_trials, replace=False)
        trials = [trials[k] for k in sorted(keep)]
    return trials


def gating_for_models(models, meta: list[dict], split: str, *, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                      context: str = "utterance", max_trials: int = 200, seed: int = 0) -> dict:
    """Gating curves {"trained", "random"} (`gating_curve`) for the shape/colour words of the captions
    in `meta` (the first captions of `split`) against all images of `split`. A corpus without
    object labels raises `data_fields.MissingFieldsError`.

    models: (step, config, template, {"trained": params, "random": params}) from `activations.load_models`.
    """
    _, config, template, params = models
    data = config.dataset
    source = data_sources.open_config_split(data, split)
    lacks = data_fields.missing_fields("gating", source[0])
    if lacks:
        raise data_fields.MissingFieldsError(data_fields.missing_fields_message(
            {"gating": lacks}, source[0], f"dataset {data.name!r} split {split!r}"))
    _, pixels, concepts = split_images(source, image_key=data.image_key)
    trials = spoken_shapes_trials(source, meta, concepts, max_trials=max_trials, seed=seed)
    featurizer = audio_features.Featurizer.from_recipe(config.features.recipe)
    out = {}
    for which in ("trained", "random"):
        # the random-init model also gets its initial BatchNorm statistics / codebooks
        state = template.model_state if which == "trained" else template.initial_model_state
        images = inference.embed_images(template, params[which], pixels, model_state=state)
        embed = model_embedder(template, params[which], featurizer, model_state=state)
        out[which] = gating_curve(embed, images, trials, fractions, context=context)
    return out
