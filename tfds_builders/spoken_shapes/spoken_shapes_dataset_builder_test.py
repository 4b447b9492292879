"""Tests of the spoken_shapes builder and its scene, grammar and speech modules."""

import dataclasses
import operator
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
import tensorflow_datasets as tfds
from PIL import Image

from tfds_builders import spoken_shapes
from tfds_builders.spoken_shapes import generation, grammar, scenes, speech
from tfds_builders.spoken_shapes.spoken_shapes_dataset_builder import (
    Builder, SpokenShapesConfig)

SPLITS = {"train": 24, "validation": 8, "test": 8}
V1 = "1.0.0"  # These tests are of version 1.0.0 (spoken_shapes_v2_test.py: 2.0.0, the default).
ROOT = str(pathlib.Path(__file__).resolve().parents[2])  # Holds the tfds_builders package.
# A user's build script, without an `if __name__ == "__main__":` guard.
BUILD_SCRIPT = """\
import sys
sys.path.insert(0, {root!r})
from tfds_builders.spoken_shapes import Builder, SpokenShapesConfig
Builder(config={config}, data_dir={data_dir!r}, version="1.0.0").download_and_prepare()
"""
BUILD_TIMEOUT_S = 180  # A build that hangs fails the test instead of the test hanging.
# Two blocks of 4 images in train, so generation goes through the worker pool.
FIVE = 'SpokenShapesConfig(name="five", num_train=5, num_validation=1, num_test=1, num_workers=1)'


def _build(data_dir) -> dict:
    Builder(config="tiny", data_dir=data_dir, version=V1).download_and_prepare()
    return {split: tfds.data_source("spoken_shapes/tiny:1.0.0", split=split, data_dir=data_dir,
                                    download=False) for split in SPLITS}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("build1")
    return data_dir, _build(data_dir)


@pytest.fixture(scope="module")
def examples(built):
    return {split: [src[i] for i in range(len(src))] for split, src in built[1].items()}


def test_split_counts_and_five_captions_per_image(examples):
    for split, num_images in SPLITS.items():
        exs = examples[split]
        assert len(exs) == num_images * 5
        ids = sorted(e["image_id"] for e in exs)
        assert len(set(ids)) == num_images and all(ids.count(i) == 5 for i in set(ids))
        assert sorted(e["caption_id"] for e in exs) == sorted(
            i * 5 + k for i in set(ids) for k in range(5))
        # The 5 captions of an image share the image pixels.
        by_image = {}
        for e in exs:
            by_image.setdefault(e["image_id"], []).append(e["image"])
        assert all(all(np.array_equal(v[0], x) for x in v) for v in by_image.values())


def test_image_ids_disjoint_across_splits(examples):
    sets = {s: {e["image_id"] for e in exs} for s, exs in examples.items()}
    assert not sets["train"] & sets["validation"]
    assert not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]


def test_decoded_types(examples):
    e = examples["train"][0]
    assert e["audio"].dtype == np.int16 and e["audio"].ndim == 1
    assert e["image"].dtype == np.uint8 and e["image"].shape == (64, 64, 3)
    assert isinstance(e["text"], bytes) and isinstance(e["phonemes"], bytes)
    assert "tensorflow" not in sys.modules


def test_audio_nonsilent_and_alignments_within_audio(examples):
    for e in examples["train"] + examples["test"]:
        audio = e["audio"]
        duration = audio.shape[0] / speech.SAMPLE_RATE
        assert 0.5 < duration < 15.0
        assert np.abs(audio.astype(np.int32)).max() > 1000
        words = e["words"]
        assert [w.decode() for w in words["word"]] == e["text"].decode().split()
        for name, key in (("words", "word"), ("phones", "phone")):
            start, end = np.array(e[name]["start"]), np.array(e[name]["end"])
            assert len(start) == len(e[name][key]) > 0
            assert np.all(start <= end) and np.all(np.diff(start) >= 0)
            assert np.all(end[:-1] <= start[1:] + 1e-6)
            assert start[0] >= 0 and end[-1] <= duration + 1e-4
        assert all(p for p in e["phones"]["phone"])
        assert len(e["phonemes"]) > 0
        # Speech is louder inside the words than in the leading/trailing silence.
        assert end[-1] > 0.5 * duration


def test_captions_name_every_object(examples):
    for e in examples["train"]:
        text = e["text"].decode().split()
        objs = e["objects"]
        assert 1 <= len(objs["shape"]) <= 3
        for shape, color in zip(objs["shape"], objs["color"]):
            assert spoken_shapes.COLORS[color] in text
            singular, plural = grammar.ENGLISH.shapes[spoken_shapes.SHAPES[shape]]
            assert singular in text or plural in text


def test_bboxes_match_rendered_pixels(examples):
    for e in examples["validation"][::5]:
        bboxes = np.array(e["objects"]["bbox"])
        assert bboxes.dtype == np.float32 and bboxes.shape[1] == 4
        assert np.all((bboxes >= 0) & (bboxes <= 1))
        assert np.all(bboxes[:, 2] > bboxes[:, 0]) and np.all(bboxes[:, 3] > bboxes[:, 1])
        # Every object pixel lies in some box (1 pixel tolerance for antialiasing).
        fg = np.any(e["image"].astype(int) != scenes.BACKGROUND, axis=-1)
        inside = np.zeros_like(fg)
        for ymin, xmin, ymax, xmax in bboxes * 64:
            inside[int(ymin) - 1:int(np.ceil(ymax)) + 1, int(xmin) - 1:int(np.ceil(xmax)) + 1] = 1
        assert fg.any() and not np.any(fg & ~inside)


def test_speakers(examples):
    assert len(spoken_shapes.SPEAKERS) >= 12
    assert len(set(spoken_shapes.SPEAKERS)) == len(spoken_shapes.SPEAKERS)
    used = {e["speaker_id"] for exs in examples.values() for e in exs}
    assert len(used) > 1 and max(used) < len(spoken_shapes.SPEAKERS)


def test_two_builds_are_identical(built, examples, tmp_path):
    # Same process here; the worker-pool test below compares against other processes (whose
    # espeak was initialised at another time, which matters: see speech.py).
    data_dir, _ = built
    second = _build(tmp_path)
    for split in SPLITS:
        files1 = sorted(pathlib.Path(data_dir).glob(f"spoken_shapes/tiny/1.0.0/*{split}*"))
        files2 = sorted(pathlib.Path(tmp_path).glob(f"spoken_shapes/tiny/1.0.0/*{split}*"))
        assert files1 and [f.read_bytes() for f in files1] == [f.read_bytes() for f in files2]
        for i in range(0, len(second[split]), 7):
            a, b = examples[split][i], second[split][i]
            assert a["text"] == b["text"] and np.array_equal(a["audio"], b["audio"])


def test_split_over_the_shuffle_memory_limit_builds_without_tensorflow(built, tmp_path,
                                                                      monkeypatch):
    # TFDS spills splits over 1 GB to bucket files written with tf.io.gfile; with the limit at
    # 1 MB the tiny build takes that path, and must still match the in-memory build exactly.
    from tensorflow_datasets.core import shuffle  # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(shuffle, "MAX_MEM_BUFFER_SIZE", 1 << 20)
    Builder(config="tiny", data_dir=tmp_path, version=V1).download_and_prepare()
    assert "tensorflow" not in sys.modules
    files1 = sorted(pathlib.Path(built[0]).glob("spoken_shapes/tiny/1.0.0/*.array_record*"))
    files2 = sorted(pathlib.Path(tmp_path).glob("spoken_shapes/tiny/1.0.0/*.array_record*"))
    assert len(files1) == 3 and [f.read_bytes() for f in files1] == [f.read_bytes() for f in files2]
    assert shuffle._Bucket.add is not None and "tfds_compat" not in shuffle._Bucket.add.__module__


def test_worker_pool_gives_the_same_bytes_as_in_process(examples):
    spec = generation.GenerationSpec(seed=0, image_size=64, language="en")
    ids = [0, 1, 2, 3, 4, 5]
    pooled = list(generation.iter_image_examples(ids, spec, num_workers=2))
    built = {e["caption_id"]: e for e in examples["train"]}
    for image_id, image_exs in zip(ids, pooled):
        for k, ex in enumerate(image_exs):
            ref = built[image_id * 5 + k]
            assert ex["text"] == ref["text"].decode()
            assert np.array_equal(ex["audio"], ref["audio"])
            assert np.array_equal(np.asarray(Image.open(__import__("io").BytesIO(ex["image"]))),
                                  ref["image"])


def _run(command: list[str], cwd, stdin: str | None = None) -> None:
    done = subprocess.run(command, input=stdin, cwd=cwd, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def _fields(example: dict, prefix: str = "") -> dict:
    """{"words/start": [...], ...}: every decoded field of an example, flattened."""
    flat = {}
    for key, value in example.items():
        if isinstance(value, dict):
            flat.update(_fields(value, f"{prefix}{key}/"))
        else:
            flat[prefix + key] = value
    return flat


def _assert_same_examples(got, want) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        fields_a, fields_b = _fields(a), _fields(b)
        assert fields_a.keys() == fields_b.keys()
        for key, value in fields_a.items():
            other = fields_b[key]
            if isinstance(value, list):  # Sequence fields decode to lists of arrays.
                same = len(value) == len(other) and all(map(np.array_equal, value, other))
            else:
                same = np.array_equal(value, other)
            assert same, key


@pytest.mark.parametrize("entry_point", ["stdin", "-c", "script", "-m", "notebook"])
def test_build_from_every_entry_point(entry_point, examples, tmp_path):
    # multiprocessing's spawn workers re-import __main__: from stdin they died re-reading
    # '<stdin>' and the build hung; unguarded scripts and modules re-ran the build in them.
    script = BUILD_SCRIPT.format(root=ROOT, config=FIVE, data_dir=str(tmp_path / "data"))
    (tmp_path / "build_five.py").write_text(script)
    if entry_point == "stdin":
        _run([sys.executable, "-"], tmp_path, stdin=script)
    elif entry_point == "-c":
        _run([sys.executable, "-c", script], tmp_path)
    elif entry_point == "script":
        _run([sys.executable, str(tmp_path / "build_five.py")], tmp_path)
    elif entry_point == "-m":
        _run([sys.executable, "-m", "build_five"], tmp_path)
    else:  # A Jupyter kernel: __main__ is the kernel's, with no file.
        nbformat = pytest.importorskip("nbformat")
        nbclient = pytest.importorskip("nbclient")
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(script)])
        nbclient.NotebookClient(notebook, timeout=BUILD_TIMEOUT_S, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    built_five = {}
    for split, num_images in {"train": 5, "validation": 1, "test": 1}.items():
        source = tfds.data_source("spoken_shapes/five:1.0.0", split=split, data_dir=tmp_path / "data",
                                  download=False)
        assert len(source) == 5 * num_images
        built_five[split] = [source[i] for i in range(len(source))]
    # Images 0-3 form the same block as in the tiny build of this process: same examples.
    by_caption = operator.itemgetter("caption_id")
    got = sorted((e for e in built_five["train"] if e["image_id"] < 4), key=by_caption)
    want = sorted((e for e in examples["train"] if e["image_id"] < 4), key=by_caption)
    _assert_same_examples(got, want)


def test_failed_build_leaves_no_dataset(tmp_path, monkeypatch):
    real = generation.image_examples

    def failing(image_id, spec):
        if image_id == 10:
            raise RuntimeError("injected failure")
        return real(image_id, spec)

    monkeypatch.setattr(generation, "image_examples", failing)
    in_process = dataclasses.replace(  # generates in this process, so it sees the patch
        Builder.builder_configs["tiny"], name="tiny_in_process", num_workers=0)
    with pytest.raises(RuntimeError, match="injected failure"):
        Builder(config=in_process, data_dir=tmp_path, version=V1).download_and_prepare()
    builder = Builder(config=in_process, data_dir=tmp_path, version=V1)
    assert not builder.is_prepared()
    with pytest.raises(KeyError, match="not been generated"):
        builder.as_data_source(split="train")
    assert not list(pathlib.Path(tmp_path).glob("spoken_shapes/tiny_in_process/*/*.array_record*"))
    assert not list(pathlib.Path(tmp_path).glob("spoken_shapes/tiny_in_process/*incomplete*"))


def test_bad_configs():
    with pytest.raises(ValueError, match=r"'nope'.*\['tiny', 'quick', 'small', 'large'\]"):
        tfds.builder("spoken_shapes/nope")
    with pytest.raises(ValueError, match=r"'xx'.*\['en'\]"):
        SpokenShapesConfig(name="bad", language="xx")
    with pytest.raises(ValueError, match="image_size=16 is too small"):
        SpokenShapesConfig(name="bad", image_size=16)
    with pytest.raises(ValueError, match="num_test"):
        SpokenShapesConfig(name="bad", num_test=0)
    assert Builder(config="tiny", data_dir="/nonexistent").info.file_format.value == "array_record"
    assert tfds.builder("spoken_shapes", data_dir="/nonexistent").builder_config.name == "small"


def test_silent_text_is_an_error_naming_it():
    def speak():
        return speech.get_synthesizer().synthesize("...", spoken_shapes.SPEAKERS[0])
    with pytest.raises(speech.EspeakError, match=r"no audio for text '\.\.\.'"):
        speech.run_isolated(speak)


def test_broken_or_missing_espeak_library(monkeypatch):
    with pytest.raises(speech.EspeakError, match="pip install espeakng-loader"):
        speech.Synthesizer(library_path="/nonexistent/libespeak-ng.so", data_path="/nonexistent")
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # Makes the import fail.
    with pytest.raises(speech.EspeakError, match="pip install espeakng-loader"):
        speech.Synthesizer()


def test_resample_matches_scipy_default_and_rate():
    x = (np.random.default_rng(0).normal(size=22050) * 5000).astype(np.int16)
    y = speech.resample_to_16k(x)
    slow = np.clip(np.round(scipy.signal.resample_poly(x.astype(float), 320, 441)), -32768, 32767)
    assert y.dtype == np.int16 and y.shape == (16000,)
    np.testing.assert_array_equal(y, slow.astype(np.int16))


def test_alignments_from_hand_made_events():
    ipa_a, pause = "ɐ".encode(), b""
    events = [(1, 1, 1, 0, b""), (7, 1, 0, 0, ipa_a), (1, 3, 3, 100, b""), (7, 3, 0, 110, b"r"),
              (7, 3, 0, 150, b"d"), (7, 3, 0, 260, pause), (5, 5, 0, 300, b"")]
    words, phones = speech.alignments_from_events(events, "a red", duration=0.28)
    assert words == (("a", 0.0, 0.1), ("red", 0.1, 0.28))  # End clipped to the duration.
    assert phones == (("ɐ", 0.0, 0.11), ("r", 0.11, 0.15), ("d", 0.15, 0.26))


def test_alignments_split_words_that_espeak_joins():
    # espeak sends one WORD event for "of a" and tags all its phonemes with "of".
    events = [(1, 1, 2, 0, b""), (7, 1, 0, 0, "ə".encode()), (7, 1, 0, 50, b"v"),
              (7, 1, 0, 90, "ə".encode()), (1, 6, 3, 150, b""), (7, 6, 0, 150, b"r"),
              (7, 6, 0, 260, b"d"), (5, 9, 0, 300, b"")]
    words, _ = speech.alignments_from_events(events, "of a red", 1.0, {"a": 1})
    assert words == (("of", 0.0, 0.09), ("a", 0.09, 0.15), ("red", 0.15, 0.3))
    # Without the phone count, the unit's time is shared by letters: "of" 2/3, "a" 1/3.
    words, _ = speech.alignments_from_events(events, "of a red", 1.0)
    assert [w for w, _, _ in words] == ["of", "a", "red"]
    np.testing.assert_allclose([s for _, s, _ in words], [0.0, 0.1, 0.15])


def test_relation_position_and_noun_phrases():
    def obj(cx, cy, color="red", shape="circle", size="small"):
        return scenes.SceneObject(shape, color, size, cx, cy)
    assert grammar.relation(obj(0.2, 0.5), obj(0.8, 0.4)) == "left_of"
    assert grammar.relation(obj(0.8, 0.5), obj(0.2, 0.4)) == "right_of"
    assert grammar.relation(obj(0.5, 0.1), obj(0.4, 0.9)) == "above"
    assert grammar.relation(obj(0.5, 0.9), obj(0.4, 0.1)) == "below"
    assert grammar.position(obj(0.1, 0.1)) == ("top", "left")
    assert grammar.position(obj(0.5, 0.5)) == ("middle", "center")
    assert grammar.position(obj(0.9, 0.7)) == ("bottom", "right")
    lex = grammar.ENGLISH
    assert lex.noun_phrase(lex, 1, "orange", "star", None) == "an orange star"
    assert lex.noun_phrase(lex, 1, "red", "cross", "big") == "a big red cross"
    assert lex.noun_phrase(lex, 2, "red", "cross", None) == "two red crosses"
    rng = np.random.default_rng(0)
    ents = grammar.group_entities([obj(0.2, 0.5, "red", "circle"), obj(0.8, 0.5, "blue", "square")])
    text = grammar.caption(lex, ents, "{e1} {r12} {e2}", rng, size_prob=0.0)
    assert text in {"a red circle to the left of a blue square",
                    "a red circle next to a blue square", "a red circle beside a blue square"}
    pair = grammar.group_entities([obj(0.2, 0.5), obj(0.8, 0.5), obj(0.5, 0.1, "blue")])
    assert grammar.caption(lex, pair, "{e1} {r12} {e2}", rng) is None  # No relation to a group.
    assert (grammar.caption(lex, pair, "{e1} and {e2}", rng, 0.0)
            == "two red circles and a blue circle")
    captions = grammar.make_captions([obj(0.3, 0.3)], lex, np.random.default_rng(1))
    assert len(captions) == 5 == len(set(captions))


def test_scene_boxes_and_overlap_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(300):
        a, b = np.sort(rng.uniform(size=(2, 2, 2)), axis=1)  # [box, corner(lo,hi), axis(y,x)]
        box_a, box_b = np.array([a[0, 0], a[0, 1], a[1, 0], a[1, 1]]), np.array(
            [b[0, 0], b[0, 1], b[1, 0], b[1, 1]])
        grid = np.linspace(0, 1, 401)
        ya = (grid >= box_a[0]) & (grid <= box_a[2]); xa = (grid >= box_a[1]) & (grid <= box_a[3])
        yb = (grid >= box_b[0]) & (grid <= box_b[2]); xb = (grid >= box_b[1]) & (grid <= box_b[3])
        slow = bool((ya & yb).any() and (xa & xb).any())
        edge = min(abs(box_a[2] - box_b[0]), abs(box_b[2] - box_a[0]),
                   abs(box_a[3] - box_b[1]), abs(box_b[3] - box_a[1]))
        if edge > 0.005:  # Away from the grid's resolution.
            assert scenes.boxes_overlap(box_a, box_b) == slow
    big = scenes.SceneObject("circle", "red", "large", 0.5, 0.5)
    np.testing.assert_allclose(big.bbox(), [0.33, 0.33, 0.67, 0.67], atol=1e-6)
    for seed in range(200):
        objs = scenes.sample_scene(np.random.default_rng([7, seed]))
        boxes = [o.bbox() for o in objs]
        assert all(np.all((bx >= 0) & (bx <= 1)) for bx in boxes)
        assert not any(scenes.boxes_overlap(boxes[i], boxes[j])
                       for i in range(len(boxes)) for j in range(i))
    with pytest.raises(ValueError, match="image_size=8 is too small"):
        scenes.render(objs, 8)
