"""Tests of vgs_jax.input_pipeline on a tiny in-memory source and a tiny TFDS build."""
import json
import logging
import os
import re
import shutil

import absl.logging
import jax
import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds
from jax.sharding import PartitionSpec as P

from vgs_jax import audio_features
from vgs_jax import data_sources
from vgs_jax import dataset_files
from vgs_jax import input_pipeline as ip

HOP = 160  # samples per frame of the toy featuriser


def toy_featurize(waveform):
    """[N] int16 -> float32 [N // HOP, 3]: frame sum, frame index, first sample."""
    w = np.asarray(waveform, np.float64)
    frames = w.shape[0] // HOP
    out = np.zeros((frames, 3), np.float32)
    for t in range(frames):
        out[t] = (w[t * HOP:(t + 1) * HOP].sum(), t, w[0])
    return out


def toy_featurizer(pad_value: float, num_features: int = 3) -> audio_features.Featurizer:
    """`toy_featurize` as the pipeline's featurizer object, padding with `pad_value`."""
    return audio_features.Featurizer(toy_featurize, pad_value=pad_value, num_features=num_features)


def make_source(n=40, seed=0, min_frames=5, max_frames=60, image_key="image"):
    """caption_id == index, image_id == index // 5; images are filled with the index."""
    rng = np.random.default_rng(seed)
    src = []
    for i in range(n):
        length = int(rng.integers(min_frames, max_frames + 1)) * HOP + int(rng.integers(0, HOP))
        ex = {"audio": rng.integers(-3000, 3000, length).astype(np.int16),
              "image_id": i // 5, "caption_id": i, "text": b"a red circle"}
        if image_key == "image":
            ex["image"] = np.full((4, 4, 3), i, np.uint8)
        else:
            ex[image_key] = np.arange(5, dtype=np.float64) + i
        src.append(ex)
    return src


def reference_batch(src, rows, t, pad_value, max_frames=None, image_key="image"):
    """Slow loop version of one collated batch; rows hold indices or -1 for padding."""
    b = len(rows)
    out = {"audio": np.full((b, t, 3), pad_value, np.float32), "audio_mask": np.zeros((b, t), bool),
           "audio_len": np.zeros(b, np.int32), "image_id": np.full(b, -1, np.int32),
           "caption_id": np.full(b, -1, np.int32), "example_mask": np.zeros(b, bool)}
    shape = np.asarray(src[0][image_key]).shape
    out[image_key] = np.zeros((b,) + shape, np.uint8 if image_key == "image" else np.float32)
    for r, i in enumerate(rows):
        if i < 0:
            continue
        feats = toy_featurize(src[i]["audio"])
        if max_frames is not None:
            feats = feats[:max_frames]
        for f in range(feats.shape[0]):
            out["audio"][r, f] = feats[f]
            out["audio_mask"][r, f] = True
        out["audio_len"][r] = feats.shape[0]
        out[image_key][r] = src[i][image_key]
        out["image_id"][r], out["caption_id"][r] = src[i]["image_id"], src[i]["caption_id"]
        out["example_mask"][r] = True
    return out


def assert_batches_equal(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def train_iter(src, **kw):
    args = dict(global_batch_size=8, featurizer=toy_featurizer(-1.5), seed=0, max_frames=None,
                bucket_boundaries=None)
    args.update(kw)
    return ip.make_train_iterator(src, **args)


def take(it, k):
    return [next(it) for _ in range(k)]


@pytest.mark.parametrize("buckets", [None, (16, 32, 48, 64)])
def test_same_seed_same_batches_and_threads_do_not_matter(buckets):
    src = make_source()
    a = take(train_iter(src, bucket_boundaries=buckets, num_threads=0, prefetch_batches=0), 9)
    b = take(train_iter(src, bucket_boundaries=buckets, num_threads=4), 9)
    for x, y in zip(a, b):
        assert_batches_equal(x, y)
    c = take(train_iter(src, bucket_boundaries=buckets, seed=1), 9)
    assert any(not np.array_equal(x["caption_id"], y["caption_id"]) for x, y in zip(a, c))


@pytest.mark.parametrize("buckets", [None, (16, 32, 48, 64)])
def test_each_epoch_is_a_permutation_with_remainder_dropped(buckets):
    src = make_source(n=44)  # 44 // 16 = 2 batches per epoch, 12 examples dropped each epoch
    batches = list(train_iter(src, global_batch_size=16, bucket_boundaries=buckets,
                              num_epochs=3))
    assert len(batches) == 6
    epochs = [np.concatenate([b["caption_id"] for b in batches[2 * e:2 * e + 2]])
              for e in range(3)]
    for ids in epochs:
        assert len(ids) == 32 and len(set(ids.tolist())) == 32
        assert set(ids.tolist()) <= set(range(44))
    assert not np.array_equal(epochs[0], epochs[1])
    assert all(b["example_mask"].all() for b in batches)


def test_padding_and_masks_match_loop_reference():
    src = make_source()
    for batch in take(train_iter(src, featurizer=toy_featurizer(-7.0)), 8):
        rows = batch["caption_id"].tolist()
        longest = max(len(src[i]["audio"]) // HOP for i in rows)
        t = ip.PAD_MULTIPLE * -(-longest // ip.PAD_MULTIPLE)
        assert batch["audio"].shape == (8, t, 3)
        assert_batches_equal(batch, reference_batch(src, rows, t, -7.0))


def test_truncation_to_max_frames():
    src = make_source()
    batches = take(train_iter(src, max_frames=20), 5)
    assert any((b["audio_len"] == 20).any() for b in batches)
    for batch in batches:
        assert batch["audio"].shape == (8, 20, 3)
        ref = reference_batch(src, batch["caption_id"].tolist(), 20, -1.5, max_frames=20)
        assert_batches_equal(batch, ref)


def test_padded_length_rules():
    mk = lambda mf, bb: ip._BatchMaker([], toy_featurizer(0.0), mf, bb, "image")
    assert [mk(None, (10, 20)).padded_length(x) for x in (1, 10, 11, 20, 21, 45)] == \
        [10, 10, 20, 20, 40, 60]
    assert [mk(25, (10, 20, 30)).padded_length(x) for x in (5, 15, 21, 25)] == [10, 20, 25, 25]
    assert mk(25, None).padded_length(3) == 25
    assert [mk(None, None).padded_length(x) for x in (1, 64, 65)] == [64, 64, 128]


def test_bucketing_uses_boundaries_and_cuts_padding():
    src = make_source(n=96, min_frames=3, max_frames=90)
    bounds = (16, 32, 48, 64, 80, 96)

    def padding(it):
        total = 0
        for batch in it:
            total += batch["audio_mask"].size - batch["audio_len"].sum()
            yield batch, total

    plain = list(padding(train_iter(src, max_frames=96, num_epochs=2)))
    bucketed = list(padding(train_iter(src, max_frames=96, bucket_boundaries=bounds,
                                       num_epochs=2)))
    assert len(plain) == len(bucketed) == 24
    for batch, _ in bucketed:
        t = batch["audio"].shape[1]
        assert t in bounds
        assert t == min(b for b in bounds if b >= batch["audio_len"].max())
        ref = reference_batch(src, batch["caption_id"].tolist(), t, -1.5, max_frames=96)
        assert_batches_equal(batch, ref)
    assert bucketed[-1][1] < 0.5 * plain[-1][1], (bucketed[-1][1], plain[-1][1])


@pytest.mark.parametrize("buckets", [None, (16, 32, 48, 64)])
def test_resume_from_saved_state(buckets):
    src = make_source(n=30)  # 3 batches per epoch: the 7 batches cross two epoch boundaries
    expected = take(train_iter(src, bucket_boundaries=buckets), 7)
    it = train_iter(src, bucket_boundaries=buckets)
    take(it, 3)
    state = json.loads(json.dumps(it.get_state()))
    resumed = train_iter(src, bucket_boundaries=buckets)
    resumed.set_state(state)
    for x, y in zip(expected[3:], take(resumed, 4)):
        assert_batches_equal(x, y)


def test_eval_covers_every_example_once_in_order():
    src = make_source(n=37)
    batches = list(ip.make_eval_batches(src, batch_size=8, featurizer=toy_featurizer(0.25),
                                        max_frames=None, bucket_boundaries=(32, 64)))
    assert len(batches) == 5
    ids = np.concatenate([b["caption_id"][b["example_mask"]] for b in batches])
    np.testing.assert_array_equal(ids, np.arange(37))
    assert batches[-1]["example_mask"].tolist() == [True] * 5 + [False] * 3
    for k, batch in enumerate(batches):
        rows = [i if i < 37 else -1 for i in range(8 * k, 8 * k + 8)]
        assert_batches_equal(batch, reference_batch(src, rows, batch["audio"].shape[1], 0.25))
    small = list(ip.make_eval_batches(src[:3], batch_size=16, featurizer=toy_featurizer(0.0),
                                      max_frames=12, bucket_boundaries=None))
    assert len(small) == 1 and small[0]["example_mask"].sum() == 3


def test_image_features_key():
    src = make_source(n=16, image_key="image_features")
    batch = next(train_iter(src, image_key="image_features"))
    assert "image" not in batch and batch["image_features"].dtype == np.float32
    assert_batches_equal(batch, reference_batch(src, batch["caption_id"].tolist(),
                                                batch["audio"].shape[1], -1.5,
                                                image_key="image_features"))


def test_host_shards_concatenate_to_the_global_batch():
    src = make_source(n=48)
    kw = dict(global_batch_size=16, bucket_boundaries=(16, 32, 48, 64))
    full = take(train_iter(src, **kw, shard_index=0, shard_count=1), 4)
    halves = [take(train_iter(src, **kw, shard_index=h, shard_count=2), 4) for h in (0, 1)]
    for k in range(4):
        joined = {key: np.concatenate([halves[0][k][key], halves[1][k][key]])
                  for key in full[k]}
        assert_batches_equal(full[k], joined)
    # Eval: host 1's share of the last batch is all padding but keeps the global shapes.
    ev = [list(ip.make_eval_batches(src[:20], batch_size=16, featurizer=toy_featurizer(0.0),
                                    max_frames=None, bucket_boundaries=(16, 32, 48, 64), shard_index=h, shard_count=2))
          for h in (0, 1)]
    assert ev[0][1]["example_mask"].sum() == 4 and ev[1][1]["example_mask"].sum() == 0
    assert ev[0][1]["audio"].shape == ev[1][1]["audio"].shape


def test_shard_batch_on_eight_devices():
    assert jax.device_count() == 8
    mesh = ip.data_mesh()
    assert mesh.axis_names == ("data",)
    assert mesh.axis_types == (jax.sharding.AxisType.Auto,)
    batch = next(train_iter(make_source(), global_batch_size=16))
    arrays = ip.shard_batch(batch, mesh)
    for key, value in batch.items():
        arr = arrays[key]
        assert arr.shape == value.shape and arr.dtype == value.dtype
        assert arr.sharding.spec == P("data")
        np.testing.assert_array_equal(np.asarray(arr), value)
        assert {s.data.shape[0] for s in arr.addressable_shards} == {2}
    with pytest.raises(ValueError, match="multiple of the 8 local devices"):
        ip.shard_batch({"x": np.zeros(4)}, mesh)


def test_bad_inputs_raise_clear_errors():
    src = make_source(n=16)
    with pytest.raises(ValueError, match="source is empty"):
        train_iter([])
    with pytest.raises(ValueError, match="source is empty"):
        ip.make_eval_batches([], batch_size=8, featurizer=toy_featurizer(0.0), max_frames=None,
                             bucket_boundaries=None)
    no_image = [{k: v for k, v in ex.items() if k != "image"} for ex in src]
    with pytest.raises(KeyError, match=r"no key 'image'.*keys present: \['audio', 'caption_id'"):
        train_iter(no_image)
    broken = list(src)
    broken[5] = dict(src[5], audio=np.zeros(0, np.int16))
    with pytest.raises(ValueError, match="caption_id=5"):
        train_iter(broken, bucket_boundaries=(32,))
    with pytest.raises(ValueError, match="caption_id=5"):  # found while reading, no buckets
        list(train_iter(broken, num_epochs=1))
    with pytest.raises(ValueError, match="larger than the split"):
        train_iter(src, global_batch_size=24)
    with pytest.raises(ValueError, match="batch size must be >= 1, got 0"):
        train_iter(src, global_batch_size=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        train_iter(src, bucket_boundaries=(32, 16))
    flat = audio_features.Featurizer(lambda w: np.zeros(3, np.float32), pad_value=0.0, num_features=3)
    with pytest.raises(ValueError, match="expected \\[frames>0, 3\\]"):
        next(train_iter(src, featurizer=flat))
    with pytest.raises(ValueError, match=r"shape \(\d+, 3\).*expected \[frames>0, 4\] \(its num_features\)"):
        next(train_iter(src, featurizer=toy_featurizer(0.0, num_features=4)))


class InputPipelineToyCaptions(tfds.core.GeneratorBasedBuilder):
    """Tiny TFDS builder (train 20 / test 7 examples, PNG images) for open_split tests."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        # tfds.features.Audio needs TensorFlow, so the waveform is a plain int16 Tensor.
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
            "image": tfds.features.Image(shape=(4, 4, 3)),
            "image_id": np.int64, "caption_id": np.int64, "text": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(20), "test": self._generate_examples(7)}

    def _generate_examples(self, n):
        for i, ex in enumerate(make_source(n=n, seed=n)):
            yield i, dict(ex, image=PIL.Image.fromarray(ex["image"]), text="a red circle")


def test_open_split_tfds(tmp_path):
    name = InputPipelineToyCaptions.name
    with pytest.raises(FileNotFoundError, match=f"{name}.*{tmp_path}.*build_if_missing"):
        data_sources.open_split(name, "train", data_dir=str(tmp_path))
    src = data_sources.open_split(name, "train", data_dir=str(tmp_path), build_if_missing=True)
    assert len(src) == 20
    with pytest.raises(ValueError, match=r"Unknown split 'valid'.*\['test', 'train'\]"):
        data_sources.open_split(name, "valid", data_dir=str(tmp_path))
    test = data_sources.open_split(name, "test", data_dir=str(tmp_path))
    assert len(test) == 7
    made = make_source(n=7, seed=7)  # TFDS stores examples in its own (hashed-key) order
    expect = [made[test[i]["caption_id"]] for i in range(7)]
    fast = data_sources.example_lengths(test)  # decodes audio only
    np.testing.assert_array_equal(fast, [len(ex["audio"]) for ex in expect])
    np.testing.assert_array_equal(fast, data_sources.example_lengths([test[i] for i in range(7)]))
    got = list(ip.make_eval_batches(test, batch_size=8, featurizer=toy_featurizer(0.0), max_frames=None,
                                    bucket_boundaries=(32, 64)))
    assert len(got) == 1
    rows = list(range(7)) + [-1]
    assert_batches_equal(got[0], reference_batch(expect, rows, got[0]["audio"].shape[1], 0.0))
    batch = next(ip.make_train_iterator(src, global_batch_size=8, featurizer=toy_featurizer(0.0),
                                        seed=3, max_frames=40, bucket_boundaries=(20, 40)))
    assert batch["audio"].shape[1] in (20, 40) and batch["image"].dtype == np.uint8


def test_real_platalea_mfcc_features():
    src = make_source(n=16)
    featurizer = audio_features.Featurizer.from_recipe("platalea_mfcc")
    batch = next(ip.make_train_iterator(
        src, global_batch_size=8, featurizer=featurizer, seed=0, max_frames=None,
        bucket_boundaries=(64, 128)))
    d = audio_features.num_features("platalea_mfcc")
    assert batch["audio"].shape[0] == 8 and batch["audio"].shape[2] == d
    for r, i in enumerate(batch["caption_id"]):
        ref = audio_features.compute(src[i]["audio"], "platalea_mfcc")
        n = audio_features.num_frames(len(src[i]["audio"]), "platalea_mfcc")
        assert batch["audio_len"][r] == n == ref.shape[0]
        np.testing.assert_allclose(batch["audio"][r, :n], ref, rtol=1e-6, atol=1e-6)
        assert (batch["audio"][r, n:] == audio_features.pad_value("platalea_mfcc")).all()
    assert featurizer.pad_value == audio_features.pad_value("platalea_mfcc") and featurizer.num_features == d
    with pytest.raises(ValueError, match="unknown feature recipe 'nope'"):
        audio_features.Featurizer.from_recipe("nope")


# ---- Batches padded to the device count -----------------------------------------------------

def test_padded_batch_size_is_the_next_multiple_of_the_device_count():
    assert jax.device_count() == 8
    assert [ip.padded_batch_size(b) for b in (1, 8, 9, 100, 104)] == [8, 8, 16, 104, 104]
    assert ip.padded_batch_size(12, shard_count=2) == 16  # 8 rows on each of two hosts
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        ip.padded_batch_size(0)


def test_train_batch_not_divisible_by_the_devices_is_padded_with_masked_rows():
    src = make_source(n=40)
    batches = list(train_iter(src, global_batch_size=12, num_epochs=2))
    assert len(batches) == 2 * (40 // 12)  # steps per epoch count examples, not padded rows
    for batch in batches:
        ids = batch["caption_id"][:12].tolist()
        assert batch["example_mask"].tolist() == [True] * 12 + [False] * 4
        assert_batches_equal(batch, reference_batch(src, ids + [-1] * 4, batch["audio"].shape[1], -1.5))
    epoch = np.concatenate([b["caption_id"][:12] for b in batches[:3]])
    assert len(set(epoch.tolist())) == 36
    # Two hosts: each holds 8 of the 16 rows; together they are the one-host batch.
    halves = [take(train_iter(src, global_batch_size=12, bucket_boundaries=(16, 32, 48, 64),
                              shard_index=h, shard_count=2), 3) for h in (0, 1)]
    full = take(train_iter(src, global_batch_size=12, bucket_boundaries=(16, 32, 48, 64)), 3)
    for k in range(3):
        assert len(halves[0][k]["caption_id"]) == len(halves[1][k]["caption_id"]) == 8
        assert_batches_equal(full[k], {key: np.concatenate([halves[0][k][key], halves[1][k][key]])
                                       for key in full[k]})


def test_eval_batches_hold_batch_size_examples_plus_padding():
    src = make_source(n=30)
    batches = list(ip.make_eval_batches(src, batch_size=12, featurizer=toy_featurizer(0.0), max_frames=None,
                                        bucket_boundaries=None))
    assert [b["example_mask"].tolist() for b in batches] == [
        [True] * 12 + [False] * 4, [True] * 12 + [False] * 4, [True] * 6 + [False] * 10]
    ids = np.concatenate([b["caption_id"][b["example_mask"]] for b in batches])
    np.testing.assert_array_equal(ids, np.arange(30))


# ---- Damaged dataset files, start-up logs -----------------------------------------------------

def _damaged_copy(shapes_data_dir, tmp_path, damage):
    """A copy of the session's spoken_shapes/tiny whose validation shard is `damage`d in place."""
    data_dir = tmp_path / damage
    shutil.copytree(os.path.join(shapes_data_dir, "spoken_shapes"), data_dir / "spoken_shapes")
    version_dir = data_dir / "spoken_shapes" / "tiny" / "1.0.0"
    (shard,) = version_dir.glob("spoken_shapes-validation.array_record-*")
    size = shard.stat().st_size
    if damage == "truncated":
        os.truncate(shard, size // 2)
    else:  # garbled: flip bytes in the middle of the file (inside a chunk of records)
        with open(shard, "r+b") as f:
            f.seek(size // 3)
            chunk = f.read(64)
            f.seek(size // 3)
            f.write(bytes(b ^ 0xFF for b in chunk))
    return str(data_dir), str(version_dir), str(shard)


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_damaged_dataset_file_is_named_with_how_to_rebuild(shapes_data_dir, tmp_path, damage):
    data_dir, version_dir, shard = _damaged_copy(shapes_data_dir, tmp_path, damage)
    message = re.escape(shard) + r".*truncated, corrupt or missing.*Riegeli.*delete " + re.escape(version_dir)
    opened = lambda: data_sources.open_split("spoken_shapes/tiny:1.0.0", "validation", data_dir=data_dir)
    readers = {
        "items": lambda src: [src[i] for i in range(len(src))],
        "getitems": lambda src: src.__getitems__(list(range(len(src)))),
        "lengths": data_sources.example_lengths,
        "eval batches": lambda src: list(ip.make_eval_batches(
            src, batch_size=16, featurizer=toy_featurizer(0.0), max_frames=None, bucket_boundaries=None)),
    }
    for name, read in readers.items():
        with pytest.raises(dataset_files.CorruptDatasetError, match=message) as info:
            read(opened())
        assert "\n" not in str(info.value), name
    assert issubclass(dataset_files.CorruptDatasetError, RuntimeError)
    assert len(opened()) == 40  # the intact copy next to it still reads: only reads are checked
    intact = data_sources.open_split("spoken_shapes/tiny:1.0.0", "validation", data_dir=shapes_data_dir)
    assert len(data_sources.example_lengths(intact)) == 40


def test_first_build_and_image_read_log_no_tfds_noise_but_real_warnings(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(absl.logging, "_log_counter_per_token", {})  # TFDS warns about OpenCV once
    name = InputPipelineToyCaptions.name
    with caplog.at_level(logging.INFO):
        src = data_sources.open_split(name, "train", data_dir=str(tmp_path), build_if_missing=True)
        assert src[0]["image"].shape == (4, 4, 3)
        logging.getLogger("absl").warning("Variant folder %s has no %s", "elsewhere", "features.json")
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "has no dataset_info.json" in m or "OpenCV is not installed" in m]
    assert "Variant folder elsewhere has no features.json" in messages
