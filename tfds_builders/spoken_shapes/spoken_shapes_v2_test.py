"""Tests of spoken_shapes 2.0.0: versions, splits, languages, consistency, baselines."""

import dataclasses
import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders.spoken_shapes import (baselines, builder_v2, consistency, generation_v2, grammar,
                                         meanings, plan_v2, scenes, scenes_v2, stats_v2)
from tfds_builders.spoken_shapes.consistency import Meaning, Mention, Relation
from tfds_builders.spoken_shapes.spoken_shapes_dataset_builder import Builder

SPLITS = {"train": 8, "validation": 4, "test": 4, "test_compositional": 4,
          "test_unseen_speakers": 4}
LANGS = ("en", "hi", "ja")
# tiny_multi's images, fewer of them: 24 images x 5 captions x 3 languages, built in seconds.
MINI = dataclasses.replace(Builder.builder_configs["tiny_multi"], name="mini_multi", num_train=8,
                           num_validation=4, num_test=4, num_compositional=4)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = Builder(config=MINI, data_dir=tmp_path_factory.mktemp("v2"))  # the default version
    assert str(builder.version) == "2.0.0"
    builder.download_and_prepare()
    return {split: [src[i] for i in range(len(src))] for split in SPLITS
            for src in [builder.as_data_source(split=split)]}


@pytest.fixture(scope="module")
def tiny_plan():
    return builder_v2.plan_config(MINI)


@pytest.fixture(scope="module")
def quick_plan():
    return builder_v2.plan_config(Builder.builder_configs["quick"])


def test_versions_and_config_errors():
    assert str(tfds.builder("spoken_shapes/tiny", data_dir="/nonexistent").version) == "2.0.0"
    assert str(tfds.builder("spoken_shapes/tiny:1.0.0", data_dir="/nonexistent").version) == "1.0.0"
    assert str(tfds.builder("spoken_shapes/tiny_hi", data_dir="/nonexistent").version) == "2.0.0"
    with pytest.raises(ValueError, match=r"'tiny_hi'.*only at version 2\.0\.0 \(the default\); load "
                                         r"'spoken_shapes/tiny_hi' or"):
        tfds.builder("spoken_shapes/tiny_hi:1.0.0", data_dir="/nonexistent")
    with pytest.raises(ValueError, match=r"'nope'.*at version 2\.0\.0 also \[.*'small_multi'"):
        tfds.builder("spoken_shapes/nope")
    with pytest.raises(ValueError, match=r"'xx'.*'hi', 'ja', 'multi'"):
        Builder.builder_configs["tiny"].__class__(name="bad", language="xx")


def test_splits_languages_and_parallel_captions(built, tiny_plan):
    for split, num_images in SPLITS.items():
        exs = built[split]
        assert len(exs) == num_images * 5 * len(LANGS)
        by_meaning = {}
        for e in exs:
            by_meaning.setdefault(e["meaning_id"], {})[e["language"].decode()] = e
        assert len(by_meaning) == num_images * 5 and all(
            sorted(v) == sorted(LANGS) for v in by_meaning.values())
        assert len({e["caption_id"] for e in exs}) == len(exs)
    # The built texts are the plan's, and the language configs of a size share the images.
    planned = {(im.image_id, c.k): c for im in tiny_plan["test"] for c in im.captions}
    for e in built["test"]:
        cap = planned[(e["image_id"], e["meaning_id"] % 5)]
        assert e["text"].decode() == cap.texts[e["language"].decode()]
        np.testing.assert_array_equal(e["consistent_image_ids"], cap.consistent)
    hi = Builder.builder_configs["tiny_hi"]
    assert builder_v2.split_sizes(hi) == builder_v2.split_sizes(Builder.builder_configs["tiny"])
    assert hi.id_base == Builder.builder_configs["tiny"].id_base and hi.seed == 0


def test_unseen_speakers_are_the_test_captions_with_held_out_voices(built):
    train_speakers = {e["speaker_id"] for e in built["train"]}
    test = {(e["meaning_id"], e["language"]): e for e in built["test"]}
    for e in built["test_unseen_speakers"]:
        twin = test[(e["meaning_id"], e["language"])]
        assert e["text"] == twin["text"] and e["image_id"] == twin["image_id"]
        assert e["speaker_id"] not in train_speakers
    assert len(train_speakers) > 20


def test_audio_and_alignments(built):
    for e in built["train"][::7] + built["test_unseen_speakers"][::7]:
        audio = e["audio"]
        duration = len(audio) / 16000
        words = [w.decode() for w in e["words"]["word"]]
        assert words == e["text"].decode().split()
        for name in ("words", "phones"):
            start, end = np.array(e[name]["start"]), np.array(e[name]["end"])
            assert len(start) > 0 and np.all(start <= end) and np.all(np.diff(start) >= 0)
            assert start[0] >= 0 and end[-1] <= duration + 1e-4
        assert e["words"]["start"][0] > 0.04  # Leading silence of the recording conditions.
        # Dither: no run of 16 exact zeros (1 ms) anywhere.
        zero = np.concatenate([[0], (audio == 0).astype(int), [0]])
        runs = np.diff(np.flatnonzero(np.diff(zero)))[::2]
        assert runs.size == 0 or runs.max() < 16


def test_no_evaluation_caption_occurs_in_train(built):
    train = {e["text"] for e in built["train"]}
    for split in ("validation", "test", "test_compositional", "test_unseen_speakers"):
        assert not train & {e["text"] for e in built[split]}


def test_consistent_ids_are_exact(built, tiny_plan):
    for split, images in tiny_plan.items():
        by_id = {im.image_id: im.objects for im in images}
        for im in images:
            for c in im.captions:
                slow = [i for i, objs in by_id.items() if consistency.satisfies(c.meaning, objs)]
                assert list(c.consistent) == slow and im.image_id in slow
    for e in built["test"]:
        assert e["image_id"] in e["consistent_image_ids"]


def test_satisfies_on_hand_made_scenes():
    def obj(color, shape, cx, cy, size="small"):
        return scenes.SceneObject(shape, color, size, cx, cy)
    scene = [obj("red", "circle", 0.2, 0.2), obj("blue", "square", 0.2, 0.8),
             obj("red", "star", 0.8, 0.2, "large"), obj("red", "circle", 0.8, 0.8)]
    red_circle, blue_square = Mention("red", "circle"), Mention("blue", "square")
    assert consistency.satisfies(Meaning((red_circle, blue_square), (Relation(0, "above", 1),)),
                                 scene)
    assert not consistency.satisfies(
        Meaning((red_circle, blue_square), (Relation(0, "below", 1),)), scene)
    assert consistency.satisfies(Meaning((Mention("red", "circle", count=2),)), scene)
    assert not consistency.satisfies(Meaning((Mention("red", "circle", count=1),)), scene)
    assert consistency.satisfies(Meaning((Mention(color="red", count=3),)), scene)
    assert consistency.satisfies(Meaning((Mention(count=4),)), scene)
    assert consistency.satisfies(Meaning((Mention("red", "star", "large", where=("top", "right")),)),
                                 scene)
    assert not consistency.satisfies(Meaning((Mention("red", "star", "small"),)), scene)
    # Two singular mentions need two different objects.
    assert not consistency.satisfies(Meaning((Mention("red", "star"), Mention(shape="star"))),
                                     scene)


def test_splits_hold_out_pairs_and_relations(quick_plan):
    for split in ("train", "validation", "test", "test_unseen_speakers"):
        for im in quick_plan[split]:
            assert not scenes_v2.has_held_out_pair(im.objects)
            for c in im.captions:
                for r in c.meaning.relations:
                    subject = c.meaning.mentions[r.subject].color
                    assert (subject, r.relation) not in meanings.HELD_OUT_RELATIONS
    for im in quick_plan["test_compositional"]:
        for c in im.captions:
            m0 = c.meaning.mentions[0]
            pair = (m0.color, m0.shape) in scenes_v2.HELD_OUT_PAIRS
            rel = any((c.meaning.mentions[r.subject].color, r.relation)
                      in meanings.HELD_OUT_RELATIONS for r in c.meaning.relations)
            assert pair or rel


def test_scenes_minimal_pairs_and_ids(quick_plan):
    counts = [len(im.objects) for im in quick_plan["train"]]
    assert min(counts) == 1 and max(counts) == 6
    assert np.mean([len({o.color for o in im.objects}) < len({(o.color, o.shape)
                                                              for o in im.objects})
                    for im in quick_plan["train"]]) > 0.2  # Colour distractors are common.
    test = {im.image_id: im for im in quick_plan["test"]}
    pairs = [im for im in quick_plan["test"] if im.minimal_pair_of >= 0]
    assert len(pairs) >= 0.4 * len(test)
    for im in pairs:
        a, b = test[im.minimal_pair_of].objects, im.objects
        diff = [(x, y) for x, y in zip(a, b) if x != y]
        if im.edit == "swap":
            assert len(diff) == 2 and {(x.cx, x.cy) for x, _ in diff} == {(y.cx, y.cy) for _, y in diff}
        else:
            assert len(diff) == 1
            x, y = diff[0]
            assert (x.size != y.size) if im.edit == "size" else (
                grammar.position(x) != grammar.position(y))


def test_image_ids_disjoint_across_sizes():
    # No config's evaluation image is another's train image: sizes use disjoint ids (and so
    # disjoint random streams [seed, 2, image_id]); the language configs of a size share them.
    ids = {c.name: plan_v2.split_ids(c.id_base, builder_v2.split_sizes(c))
           for c in Builder.BUILDER_CONFIGS}
    for a, b in itertools.permutations(ids, 2):
        if a.split("_")[0] == b.split("_")[0]:
            assert ids[a] == ids[b]
            continue
        every_b = set().union(*(set(r) for r in ids[b].values()))
        assert not every_b & set().union(*(set(r) for r in ids[a].values())), (a, b)
    for name, ranges in ids.items():
        train = set(ranges["train"])
        assert not any(train & set(ranges[s]) for s in ("validation", "test", "test_compositional"))


def test_expected_recall_against_all_orderings():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, size=(6, 5)).astype(float)
    own = rng.integers(0, 5, size=6)
    got = baselines.recall_table(scores, own, ks=(1, 2, 3))
    hits = {k: [] for k in (1, 2, 3)}
    for c in range(6):
        for order in itertools.permutations(range(5)):  # Every tie-breaking, equally likely.
            ranked = sorted(range(5), key=lambda i: (-scores[c, i], order.index(i)))
            for k in hits:
                hits[k].append(ranked.index(own[c]) < k)
    for k in hits:
        assert got[f"r{k}"] == pytest.approx(np.mean(hits[k]))


def test_benchmark_needs_more_than_one_attribute(quick_plan):
    # quick is the largest 2.0 config planned in tests (100 test images: R@10 means something).
    table = baselines.evaluate(quick_plan, ["test", "test_compositional"], ("en",))
    assert table["test_compositional"]["oracle"]["r10"] < 1.0
    for split in table.values():
        for name in ("colour_only", "shape_only"):
            for k in ("r1", "r10"):
                assert split[name][k] < split["oracle"][k] - 0.2, (name, k, split)
    stats = stats_v2.statistics(quick_plan, 1, ("en",))
    # The issue asks for >= 200 words per language; quick already reaches it (small: README).
    assert min(stats_v2.vocabulary(quick_plan).values()) >= 200, stats_v2.vocabulary(quick_plan)
    assert stats["splits"]["test_unseen_speakers"]["en"]["speakers"] <= 15


def test_meanings_are_true_of_their_scenes():
    rng = np.random.default_rng(3)
    for _ in range(200):
        objects = scenes_v2.sample_scene(rng)
        m = meanings.sample_meaning(objects, rng)  # Raises if false.
        assert m.mentions[0].color and m.mentions[0].shape
    with pytest.raises(ValueError, match="singular mentions"):
        Meaning((Mention("red", "circle", count=2), Mention("blue", "star")),
                (Relation(0, "above", 1),))


def test_custom_v2_config_replaces_fields():
    config = dataclasses.replace(Builder.builder_configs["tiny"], name="mine", num_compositional=2)
    assert builder_v2.split_sizes(config)["test_compositional"] == 2


def test_scene_index_matches_the_slow_definition():
    rng = np.random.default_rng(5)
    scenes_by_id = {i: scenes_v2.sample_scene(rng, allow_held_out=True) for i in range(150)}
    index = consistency.SceneIndex(scenes_by_id)
    rel = consistency.Relation
    tried = 0
    for objects in list(scenes_by_id.values())[:60]:
        found = [meanings.sample_meaning(objects, rng) for _ in range(4)]
        singles = [o for o in objects if sum(p.color == o.color and p.shape == o.shape
                                             for p in objects) == 1]
        if len(singles) >= 3:  # Three singular mentions, relation from the third to the first.
            a, b, c = singles[:3]
            found.append(Meaning((Mention(a.color, a.shape), Mention(b.color),
                                  Mention(shape=c.shape)), (rel(2, "next_to", 0),)))
        for m in found:
            slow = [i for i, objs in scenes_by_id.items() if consistency.satisfies(m, objs)]
            assert list(index.consistent_images(m)) == slow
            tried += 1
    assert tried > 240


def test_examples_do_not_depend_on_the_process(built, tiny_plan):
    # A fresh worker regenerates the first train image exactly as the build did.
    spec = generation_v2.SpecV2(MINI.seed, MINI.image_size, LANGS)
    (again,) = generation_v2.iter_image_examples(tiny_plan["train"][:1], spec, num_workers=1)
    want = {e["caption_id"]: e for e in built["train"]}
    assert len(again) == 5 * len(LANGS)
    for e in again:
        ref = want[e["caption_id"]]
        assert e["text"] == ref["text"].decode() and e["speaker_id"] == ref["speaker_id"]
        np.testing.assert_array_equal(e["audio"], ref["audio"])
        np.testing.assert_array_equal(e["words"]["start"], ref["words"]["start"])
