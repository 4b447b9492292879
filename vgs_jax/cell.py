"""CELL (Roy & Pentland 2002) on spoken_shapes: words and shapes from co-occurring speech and objects.

    python -m vgs_jax.cell --config=configs/shapes_cell.py:v1 --config.dataset.name=spoken_shapes/quick:1.0.0

Survey-systems.md A.1. A phone recogniser (`cell_speech`) is trained on the phone alignments of
config.dataset.recognizer_split; CELL then hears config.dataset.split in order: each utterance's
Viterbi-decoded phones give word candidates, its scene's objects give shape histograms
(`cell_vision`), and the short-/long-term memories (`cell_memory`) build a lexicon of word forms
paired with shapes. Three conditions, all scored the same way:

* `cell`: the system;
* `audio_only`: the baseline of the same architecture without the visual channel (`cell_memory`);
* `shuffled`: CELL with each utterance paired with another utterance's scene (a seeded
  permutation), a control that keeps every statistic but the pairing.

Metrics (percent of lexicon items; the paper's, against the alignments): segmentation accuracy =
items whose exemplar segment (the candidate that was promoted) starts and ends within
`boundary_tolerance_s` of a word boundary; word discovery = items whose segment is a single word
(>= `discovery_overlap` of the segment lies inside one word and covers >= that fraction of the
word); semantic accuracy = items that are a single shape word (singular or plural) naming the true
shape of the item's object. Also the recogniser's frame accuracy and phone error rate on the split.
Writes `<workdir>/results.json` when --workdir is given.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np

from vgs_jax import audio_features
from vgs_jax import cell_memory
from vgs_jax import cell_speech
from vgs_jax import cell_vision
from vgs_jax import data_sources
from vgs_jax import segment_view
from vgs_jax.analysis import gating
from vgs_jax.analysis import rsa

SYSTEM = "cell"
CONDITIONS = ("cell", "audio_only", "shuffled")


@dataclasses.dataclass(frozen=True)
class Stream:
    """What CELL hears and sees: per utterance features [T, F], true phones per frame [T], words
    [(word, first frame, end frame)], object indices; all objects' histograms [O, D] and shapes [O]."""
    features: list
    frame_phones: list
    words: list
    scene_objects: list
    histograms: np.ndarray
    shapes: list


def load_stream(source: Sequence[dict], featurizer, limit: int | None = None, *, with_objects: bool = True,
                with_features: bool = True) -> Stream:
    """The first `limit` (all when None) examples of a spoken_shapes split as a Stream (features left
    empty without `with_features`: the oracle recogniser needs only the frame count)."""
    from tfds_builders.spoken_shapes import scenes  # deferred: the label names of spoken_shapes

    n = len(source) if limit is None else min(limit, len(source))
    feats, frame_phones, words, scene_objects, hists, shapes = [], [], [], [], [], []
    for i in range(n):
        ex = source[i]
        segment_view.check_annotations(ex, i, SYSTEM)
        if "phones" not in ex or "phone" not in ex["phones"]:
            raise ValueError(f"cell trains its phone recogniser on phone alignments, but example {i} has none "
                             f"(keys {sorted(ex)}); spoken_shapes has them.")
        audio = np.asarray(ex["audio"])
        if with_features:
            feats.append(np.asarray(featurizer(audio), np.float32))
        p = ex["phones"]
        num_frames = audio_features.num_frames(len(audio), featurizer.recipe)
        frame_phones.append(cell_speech.frame_labels(num_frames, [cell_speech.clean(x) for x in p["phone"]],
                                                     p["start"], p["end"]))
        w = ex["words"]
        frame = lambda seconds: round(float(seconds) / cell_speech.FRAME_SECONDS)
        words.append([(cell_speech.clean(x).lower(), frame(a), frame(b))
                      for x, a, b in zip(w["word"], w["start"], w["end"])])
        if not with_objects:
            continue
        image = np.asarray(ex["image"], np.float64)
        background = np.median(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]), axis=0)
        objs = ex["objects"]
        scene_objects.append(np.arange(len(hists), len(hists) + len(objs["bbox"])))
        for box, shape in zip(objs["bbox"], objs["shape"]):
            alpha = cell_vision.foreground(cell_vision.box_pixels(image, box), background)
            hists.append(cell_vision.shape_histogram(alpha))
            shapes.append(scenes.SHAPES[int(shape)])
    return Stream(feats, frame_phones, words, scene_objects, np.asarray(hists, np.float64), shapes)


def oracle_log_posteriors(frame_phones: Sequence[str], phones: Sequence[str], p: float = 0.9) -> np.ndarray:
    """An ideal recogniser: log posteriors [T, S] with p on each frame's true phone (rest even)."""
    index = {q: k for k, q in enumerate(phones)}
    out = np.full((len(frame_phones), len(phones)), np.log((1.0 - p) / (len(phones) - 1)))
    out[np.arange(len(frame_phones)), [index[q] for q in frame_phones]] = np.log(p)
    return out


def decode(stream: Stream, log_posteriors, phones, config) -> tuple[list, dict]:
    """Viterbi segments -> candidates per utterance, and the recogniser's frame accuracy / PER (percent)."""
    c = config.candidates
    index = {q: k for k, q in enumerate(phones)}
    cands, correct, frames, errors, length = [], 0, 0, 0, 0
    for lp, truth in zip(log_posteriors, stream.frame_phones):
        segs = cell_speech.segments(cell_speech.viterbi(lp, config.recognizer.stay), phones)
        cands.append(cell_speech.candidates(segs, c.min_phones, c.max_phones))
        correct += int(np.sum(lp.argmax(1) == np.array([index.get(q, -1) for q in truth])))
        frames += len(truth)
        ref = [q for k, q in enumerate(truth) if (k == 0 or q != truth[k - 1]) and q != cell_speech.SILENCE]
        hyp = [q for q, _, _ in segs if q != cell_speech.SILENCE]
        errors += rsa.edit_distance(hyp, ref)
        length += len(ref)
    return cands, {"frame_accuracy": 100 * correct / max(frames, 1), "phone_error_rate": 100 * errors / max(length, 1)}


def score_items(items: Sequence[cell_memory.Item], cands, stream: Stream, config) -> dict:
    """The paper's three metrics (percent of items) and the lexicon as (form, word, shape, score)."""
    m = config.metrics
    tol = m.boundary_tolerance_s / cell_speech.FRAME_SECONDS
    concepts = gating.word_concepts()
    seg, disc, sem, listing = [], [], [], []
    for it in items:
        cand = cands[it.utterance][it.candidate]
        words = stream.words[it.utterance]
        bounds = np.array(sorted({b for _, a, e in words for b in (a, e)}))
        seg.append(all(np.min(np.abs(bounds - x)) <= tol for x in (cand.start, cand.end)))
        inside = [(max(0, min(cand.end, e) - max(cand.start, a)), e - a, w) for w, a, e in words]
        got, size, word = max(inside)
        single = got >= m.discovery_overlap * (cand.end - cand.start) and got >= m.discovery_overlap * max(size, 1)
        disc.append(single)
        shape = stream.shapes[it.obj]
        sem.append(single and concepts.get(word) == ("shape", shape))
        listing.append(("".join(it.form), word if single else "-", shape, round(it.score, 4)))
    pct = lambda xs: 100 * float(np.mean(xs)) if xs else 0.0
    return {"segmentation_accuracy": pct(seg), "word_discovery": pct(disc), "semantic_accuracy": pct(sem),
            "lexicon_size": len(items), "lexicon": listing}


def run_conditions(stream: Stream, cands, config) -> dict:
    """The three conditions' lexicons scored (module docstring)."""
    mem = config.memory
    kw = dict(form_distance=mem.form_distance)
    indexes = cell_memory.utterance_indexes(cands)
    index = cell_memory.FormIndex()
    for n, cand in enumerate(cands):
        index.add(n, [c.phones for c in cand])
    similar = cell_memory.shape_similarity(stream.histograms, mem.shape_distance)

    def cell(scene_objects):
        promoted = cell_memory.promote(cands, indexes, scene_objects, similar, stm_size=mem.stm_size, **kw)
        return cell_memory.lexicon(promoted, cands, index, similar, scene_objects, mi_threshold=mem.mi_threshold,
                                   min_together=mem.min_together, **kw), len(promoted)

    rng = np.random.default_rng(config.seed)
    items, promoted = cell(stream.scene_objects)
    shuffled_items, shuffled_promoted = cell([stream.scene_objects[k] for k in rng.permutation(len(cands))])
    audio_promoted = cell_memory.promote(cands, indexes, stream.scene_objects, None, stm_size=mem.stm_size,
                                         rng=rng, **kw)
    audio_items = cell_memory.audio_only(audio_promoted, cands, index, size=len(items), **kw)
    out = {}
    for name, its, count in (("cell", items, promoted), ("audio_only", audio_items, len(audio_promoted)),
                             ("shuffled", shuffled_items, shuffled_promoted)):
        out[name] = score_items(its, cands, stream, config)
        out[name]["promotions"] = count
    return out


def evaluate(config, stream: Stream | None = None, recognizer_data: Stream | None = None) -> dict:
    """Trains the recogniser (unless config.recognizer.oracle), runs CELL and its controls; returns the results."""
    if config.get("system") != SYSTEM:
        raise ValueError(f"config.system must be {SYSTEM!r} (configs/shapes_cell.py); got {config.get('system')!r}.")
    d, r = config.dataset, config.recognizer
    featurizer = audio_features.Featurizer.from_recipe(config.features.recipe)

    def open_split(split, limit, with_objects=True):
        source = data_sources.open_split(d.name, split, data_dir=d.data_dir, build_if_missing=d.build_if_missing)
        return load_stream(source, featurizer, limit or None, with_objects=with_objects, with_features=not r.oracle)

    stream = stream or open_split(d.split, d.max_captions)
    if r.oracle:
        phones = tuple(sorted({q for seq in stream.frame_phones for q in seq}))
        log_posteriors = [oracle_log_posteriors(seq, phones) for seq in stream.frame_phones]
    else:
        train = recognizer_data or open_split(d.recognizer_split, d.max_recognizer_captions, with_objects=False)
        recognizer = cell_speech.train_recognizer(train.features, train.frame_phones, hidden=r.hidden, layers=r.layers,
                                                  steps=r.steps, batch_size=r.batch_size, lr=r.lr, seed=config.seed,
                                                  log_every=r.log_every)
        phones, log_posteriors = recognizer.phones, recognizer.log_posteriors(stream.features)
    cands, recognition = decode(stream, log_posteriors, phones, config)
    results = {"system": SYSTEM, "dataset": d.name, "split": d.split, "utterances": len(cands),
               "recognizer": {"oracle": bool(r.oracle), **recognition}, **run_conditions(stream, cands, config)}
    return results


METRICS = (("segmentation_accuracy", "segmentation accuracy"), ("word_discovery", "word discovery"),
           ("semantic_accuracy", "semantic accuracy"))


def format_results(results: dict) -> str:
    rec = results["recognizer"]
    lines = [f"CELL on {results['utterances']} utterances of {results['dataset']} ({results['split']}); recogniser "
             f"{'oracle' if rec['oracle'] else 'trained'}: frame accuracy {rec['frame_accuracy']:.1f}, "
             f"phone error rate {rec['phone_error_rate']:.1f}",
             f"{'percent of lexicon items':28s} {'CELL':>8s} {'audio-only':>11s} {'shuffled':>9s}"]
    for key, name in METRICS + (("lexicon_size", "lexicon items"), ("promotions", "STM promotions")):
        lines.append(f"{name:28s} " + " ".join(f"{results[c][key]:{w}.1f}" if isinstance(results[c][key], float)
                                               else f"{results[c][key]:{w}d}" for c, w in zip(CONDITIONS, (8, 11, 9))))
    lines.append("CELL's lexicon (form: word it is, shape of its object, MI bits):")
    lines += [f"  {form}: {word}, {shape}, {mi:.3f}" for form, word, shape, mi in results["cell"]["lexicon"]]
    return "\n".join(lines)


def main(argv):
    from absl import app  # pylint: disable=import-outside-toplevel

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    results = evaluate(FLAGS.config)
    if FLAGS.workdir:
        os.makedirs(FLAGS.workdir, exist_ok=True)
        with open(os.path.join(FLAGS.workdir, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
    print(format_results(results), flush=True)


if __name__ == "__main__":
    from absl import flags
    from vgs_jax import cli
    from vgs_jax import config_lib

    FLAGS = flags.FLAGS
    config_lib.define_config_flag("config", "configs/shapes_cell.py[:tiny,v1].")
    flags.DEFINE_string("workdir", None, "Optional directory for results.json.")
    flags.mark_flags_as_required(["config"])
    cli.run(main)
