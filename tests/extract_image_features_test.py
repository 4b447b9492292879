"""Tests for the image feature store and `python -m vgs_jax.extract_image_features` (ten-crop, resumable)."""
import math
import os
import shutil

import numpy as np
import pytest

from vgs_jax import extract_image_features as ex
from vgs_jax import image_feature_store as fs

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------- ten-crop geometry

def slow_ten_crop(img, crop):
    """Pixel loop following torchvision's five_crop / ten_crop definitions."""
    h, w = img.shape[:2]
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    corners = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), (top, left)]
    out = np.zeros((10, crop, crop, img.shape[2]), img.dtype)
    for k in range(10):
        y0, x0 = corners[k % 5]
        for y in range(crop):
            for x in range(crop):
                if k < 5:
                    out[k, y, x] = img[y0 + y, x0 + x]
                else:  # crop of the flipped image F[y, x] = img[y, w - 1 - x]
                    out[k, y, x] = img[y0 + y, w - 1 - (x0 + x)]
    return out


@pytest.mark.parametrize("h,w,crop", [(9, 12, 5), (10, 7, 4), (8, 8, 8), (11, 6, 3)])
def test_ten_crop_matches_slow_loop(h, w, crop):
    img = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ex.ten_crop(img, crop), slow_ten_crop(img, crop))


def test_ten_crop_by_hand():
    img = (10 * np.arange(4)[:, None] + np.arange(5)[None, :]).astype(np.uint8)[..., None]  # value = 10 y + x
    crops = ex.ten_crop(img, 2)[..., 0]
    np.testing.assert_array_equal(crops[0], [[0, 1], [10, 11]])  # top-left
    np.testing.assert_array_equal(crops[1], [[3, 4], [13, 14]])  # top-right
    np.testing.assert_array_equal(crops[3], [[23, 24], [33, 34]])  # bottom-right
    np.testing.assert_array_equal(crops[4], [[12, 13], [22, 23]])  # top round(1.0)=1, left round(1.5)=2
    np.testing.assert_array_equal(crops[5], [[4, 3], [14, 13]])  # flipped image's top-left
    np.testing.assert_array_equal(crops[9], [[12, 11], [22, 21]])  # flipped centre: left 2 in flipped coords


def test_resize_shorter_side():
    assert ex.resize_shorter(np.zeros((40, 60, 3), np.uint8), 20).shape == (20, 30, 3)
    assert ex.resize_shorter(np.zeros((60, 40, 3), np.uint8), 20).shape == (30, 20, 3)
    assert ex.resize_shorter(np.zeros((50, 70, 3), np.uint8), 32).shape == (32, 44, 3)  # int(44.8)
    img = RNG.integers(0, 256, (32, 45, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ex.resize_shorter(img, 32), img)  # already the right size: unchanged
    const = np.full((30, 50, 3), 77, np.uint8)
    assert np.all(ex.resize_shorter(const, 17) == 77)
    gray = RNG.integers(0, 256, (20, 30), dtype=np.uint8)
    rgb = ex.resize_shorter(gray, 20)
    assert rgb.shape == (20, 30, 3) and np.array_equal(rgb[..., 0], gray) and np.array_equal(rgb[..., 2], gray)
    np.testing.assert_array_equal(ex.resize_shorter(gray[..., None], 20), rgb)
    with pytest.raises(ValueError, match="uint8 image"):
        ex.resize_shorter(np.zeros((4, 4, 3), np.float32), 4)
    with pytest.raises(ValueError, match="smaller than the crop"):
        ex.ten_crop(np.zeros((4, 9, 3), np.uint8), 5)


def test_ten_crop_mean_is_mean_of_crop_vectors():
    crops = RNG.integers(0, 256, (3, 10, 4, 4, 3), dtype=np.uint8)

    def embed(x):
        return np.stack([x.reshape(len(x), -1).sum(1), x[:, 0, 0, 0], np.arange(len(x))], 1).astype(np.float32)

    out = ex.ten_crop_mean(embed, crops)
    for b in range(3):
        vecs = [[crops[b, k].sum(), crops[b, k, 0, 0, 0], b * 10 + k] for k in range(10)]
        np.testing.assert_allclose(out[b], np.mean(np.asarray(vecs, np.float64), 0), rtol=1e-6)
    assert out.dtype == np.float32 and out.shape == (3, 3)


# ---------------------------------------------------------------- store: resumable, deterministic

IMAGES = {int(i): RNG.integers(0, 256, (20 + i % 7, 18 + (3 * i) % 5, 3), dtype=np.uint8)
          for i in RNG.choice(1000, 23, replace=False)}
PROJ = RNG.standard_normal((4 * 4 * 3, 6)).astype(np.float32)
FP = {"model": "toy", "weights_sha256": "0" * 64, "resize": 20, "crop": 16}


class CountingEmbed:
    def __init__(self):
        self.crops = 0

    def __call__(self, x):
        self.crops += len(x)
        small = x[:, ::4, ::4].reshape(len(x), -1).astype(np.float32) / 255.0
        return small @ PROJ


def _extract(directory, ids, embed=None, **kw):
    return ex.extract_to_store(ids, IMAGES.__getitem__, str(directory), "toy", embed or CountingEmbed(), FP,
                               batch_size=3, chunk_size=5, resize=20, crop=16, progress=False, **kw)


def _bytes(directory):
    return {n: open(os.path.join(directory, n), "rb").read() for n in ("toy.npy", "toy.ids.npy", "toy.json")}


def test_store_resumes_after_failure_and_is_byte_identical(tmp_path):
    ids = np.asarray(sorted(IMAGES))
    full = _extract(tmp_path / "a", ids)
    assert len(full) == 23 and full.dim == 6 and np.array_equal(full.ids, ids)
    # the vector of one image, by hand: mean of the 10 crop vectors
    image_id = int(ids[7])
    crops = ex.ten_crop(ex.resize_shorter(IMAGES[image_id], 20), 16)
    np.testing.assert_allclose(full.vector(image_id), CountingEmbed()(crops).mean(0), rtol=1e-5, atol=1e-6)

    def fail_after(k):
        if k == 2:
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected"):
        _extract(tmp_path / "b", ids, on_chunk_done=fail_after)
    assert sorted(os.listdir(tmp_path / "b" / "toy.chunks")) == [f"chunk_0000{k}.npz" for k in range(3)]
    assert not os.path.exists(tmp_path / "b" / "toy.npy")
    embed = CountingEmbed()
    _extract(tmp_path / "b", ids, embed)
    assert embed.crops == 10 * 3 * 3  # chunks 3 and 4 only: 8 images, in padded batches of 3 -> 3 batches
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    assert not os.path.exists(tmp_path / "b" / "toy.chunks")
    # rerun with everything stored: the embed factory is never called, the files stay identical
    _extract(tmp_path / "b", ids, lambda: pytest.fail("nothing to compute"), lazy_embed=True)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    # incremental: a subset first, then all -> the same ids and vectors (batch composition differs,
    # so BLAS rounding may differ in the last bits)
    _extract(tmp_path / "c", ids[::2])
    inc = _extract(tmp_path / "c", ids)
    assert np.array_equal(inc.ids, full.ids)
    np.testing.assert_allclose(np.asarray(inc.features), np.asarray(full.features), rtol=1e-5, atol=1e-6)


def test_stale_or_corrupt_chunks_are_recomputed_and_fingerprints_checked(tmp_path):
    ids = np.asarray(sorted(IMAGES))[:10]
    fs.write_chunk(str(tmp_path), "toy", 0, ids[:5], np.zeros((5, 6)), {**FP, "crop": 8})  # other recipe
    os.makedirs(tmp_path / "toy.chunks", exist_ok=True)
    (tmp_path / "toy.chunks" / "chunk_00001.npz").write_bytes(b"truncated")
    store = _extract(tmp_path, ids)
    ref = _extract(tmp_path / "ref", ids)
    np.testing.assert_array_equal(np.asarray(store.features), np.asarray(ref.features))
    with pytest.raises(ValueError, match="extracted with .*delete toy.npy"):
        ex.extract_to_store(ids, IMAGES.__getitem__, str(tmp_path), "toy", CountingEmbed(), {**FP, "crop": 8},
                            resize=20, crop=8, progress=False)
    with pytest.raises(ValueError, match="unique"):
        _extract(tmp_path, np.asarray([1, 1]))


def test_lookup_and_joined_source(tmp_path):
    ids = np.asarray(sorted(IMAGES))
    store = _extract(tmp_path / "ds" / "image_features", ids)
    want = [int(ids[5]), int(ids[0]), int(ids[5])]
    np.testing.assert_array_equal(store.lookup(want), np.stack([store.vector(i) for i in want]))
    assert int(ids[3]) in store and 1001 not in store
    with pytest.raises(KeyError, match="image_id 1001 is not in the image feature store 'toy'"):
        store.lookup([int(ids[0]), 1001])
    source = [{"image_id": int(i), "audio": np.zeros(3)} for i in ids[::-1]]
    joined = fs.join_source(source, str(tmp_path / "ds"), dataset="toyset", data_dir="/d")
    assert len(joined) == 23
    np.testing.assert_array_equal(joined[0]["image_features"], store.vector(int(ids[-1])))
    assert [e["image_id"] for e in joined.__getitems__([1, 2])] == [int(ids[-2]), int(ids[-3])]
    with pytest.raises(FileNotFoundError, match=r"no image feature store 'resnet152'.*\n  python -m "
                       r"vgs_jax.extract_image_features --dataset=toyset --data_dir=/d --split=all "
                       r"--model=resnet152 --weights=/path/to/resnet152-394f9c45.pth"):
        fs.join_source(source, str(tmp_path / "ds"), dataset="toyset", data_dir="/d", model="resnet152")
    shutil.copy(tmp_path / "ds" / "image_features" / "toy.json", tmp_path / "ds" / "image_features" / "toy2.json")
    with pytest.raises(ValueError, match=r"Several image feature stores.*\['toy', 'toy2'\]"):
        fs.join_source(source, str(tmp_path / "ds"), dataset="toyset", data_dir="/d")


# ---------------------------------------------------------------- weights and the command line

def torch_resnet_state_dict(depth, rng):
    """Random torchvision-named ResNet weights (He-scaled convs, BN near identity), fc included."""
    from vgs_jax.models.image_trunks import resnet_stages

    def w(o, i, k, scale=1.0):
        return (rng.standard_normal((o, i, k, k), np.float32) * scale * math.sqrt(2 / (k * k * i)))

    def bn(name, c):
        sd[f"{name}.weight"] = np.ones(c, np.float32)
        sd[f"{name}.bias"] = np.zeros(c, np.float32)
        sd[f"{name}.running_mean"] = np.zeros(c, np.float32)
        sd[f"{name}.running_var"] = np.ones(c, np.float32)
        sd[f"{name}.num_batches_tracked"] = np.array(0, np.int64)

    sd = {"conv1.weight": w(64, 3, 7)}
    bn("bn1", 64)
    cin = 64
    for s, (width, blocks, _) in enumerate(resnet_stages(depth)):
        for j in range(blocks):
            p = f"layer{s + 1}.{j}"
            for c, (o, i, k) in enumerate(((width, cin, 1), (width, width, 3), (4 * width, width, 1)), 1):
                sd[f"{p}.conv{c}.weight"] = w(o, i, k, 0.2 if c == 3 else 1.0)
                bn(f"{p}.bn{c}", o)
            if j == 0:
                sd[f"{p}.downsample.0.weight"] = w(4 * width, cin, 1)
                bn(f"{p}.downsample.1", 4 * width)
            cin = 4 * width
    sd["fc.weight"] = np.zeros((1000, 2048), np.float32)
    sd["fc.bias"] = np.zeros(1000, np.float32)
    return sd


def test_missing_or_wrong_weights_name_the_file(tmp_path, shapes_data_dir):
    with pytest.raises(FileNotFoundError, match=r"'/no/such/r152.pth' for --model=resnet152 does not exist.*"
                       r"https://download.pytorch.org/models/resnet152-394f9c45.pth"):
        ex.main(ex.parse_own_flags(["prog", "--dataset=spoken_shapes/tiny:1.0.0", f"--data_dir={shapes_data_dir}",
                                    "--weights=/no/such/r152.pth"]))
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth.*legacy format"):
        ex.load_feature_model("vgg16", None)
    np.savez(tmp_path / "bad.npz", **{"conv1.weight": np.zeros((64, 3, 7, 7), np.float32)})
    with pytest.raises(ValueError, match=r"bad.npz' does not hold torchvision resnet152 weights.*missing keys "
                       r"\['bn1.bias'"):
        ex.load_feature_model("resnet152", str(tmp_path / "bad.npz"))
    with pytest.raises(ValueError, match="Unknown --model 'resnet18'"):
        ex.check_model("resnet18")
    with pytest.raises(SystemExit, match="--data_dir"):
        ex.parse_own_flags(["prog", "--dataset=x"])


def test_cli_end_to_end_on_spoken_shapes(tmp_path, shapes_data_dir):
    from vgs_jax import data_sources

    data_dir = str(tmp_path / "tfds")
    shutil.copytree(shapes_data_dir, data_dir)  # keep the shared dataset free of stores
    with pytest.raises(FileNotFoundError, match="python -m vgs_jax.extract_image_features "
                       f"--dataset=spoken_shapes/tiny:1.0.0 --data_dir={data_dir} --split=all --model=resnet152"):
        data_sources.open_split("spoken_shapes/tiny:1.0.0", "test", data_dir=data_dir, image_key="image_features")
    np.savez(tmp_path / "r50.npz", **torch_resnet_state_dict(50, np.random.default_rng(1)))
    argv = ["prog", "--dataset=spoken_shapes/tiny:1.0.0", f"--data_dir={data_dir}", "--split=validation,test",
            "--model=resnet50", f"--weights={tmp_path / 'r50.npz'}", "--batch_size=4", "--chunk_size=6",
            "--image_size=32"]
    store = ex.main(ex.parse_own_flags(argv))
    sources = [data_sources.open_split("spoken_shapes/tiny:1.0.0", s, data_dir=data_dir) for s in ("validation", "test")]
    want = sorted({int(src[i]["image_id"]) for src in sources for i in range(len(src))})
    assert store.ids.tolist() == want and store.features.shape == (len(want), 2048)
    assert store.directory == os.path.join(data_dir, "spoken_shapes", "tiny", "1.0.0", "image_features")
    feats = np.asarray(store.features)
    assert np.all(np.isfinite(feats)) and np.all(feats >= 0) and feats.std() > 0
    # one image by hand: resize 37 (= round(32 * 256 / 224)), ten 32-px crops, ResNet-50 pool, mean
    ex_test = sources[1][0]
    model = ex.load_feature_model("resnet50", str(tmp_path / "r50.npz"))
    crops = ex.ten_crop(ex.resize_shorter(np.asarray(ex_test["image"]), 37), 32)
    np.testing.assert_allclose(store.vector(int(ex_test["image_id"])), np.asarray(model(crops)).mean(0),
                               rtol=2e-4, atol=1e-5)
    # the input pipeline reads the vectors by image_id
    joined = data_sources.open_split("spoken_shapes/tiny:1.0.0", "test", data_dir=data_dir, image_key="image_features")
    got = joined[3]
    np.testing.assert_array_equal(got["image_features"], store.vector(int(got["image_id"])))
    assert "audio" in got and len(joined) == len(sources[1])
    assert len(data_sources.example_lengths(joined)) == len(joined)
    # a rerun finds everything done (no weights loaded) and leaves the files byte-identical
    before = open(os.path.join(store.directory, "resnet50.npy"), "rb").read()
    ex.main(ex.parse_own_flags(argv))
    assert open(os.path.join(store.directory, "resnet50.npy"), "rb").read() == before


# ---------------------------------------------------------------- manual corpora: the original images

FLICKR_DUMMY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfds_builders",
                            "flickr8k_audio", "dummy_data")


def toy_embed(crops):
    """uint8 [N, c, c, 3] -> float32 [N, 6]: a fixed projection of a 4 x 4 subsampling of each crop."""
    step = crops.shape[1] // 4
    return (crops[:, ::step, ::step][:, :4, :4].reshape(len(crops), -1).astype(np.float32) / 255.0) @ PROJ


def test_manual_corpus_vectors_ten_crop_the_original_image(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds
    from PIL import Image

    from tfds_builders.flickr8k_audio import Builder

    data_dir = str(tmp_path / "tfds")
    builder = Builder(data_dir=data_dir, config="karpathy")  # stores 224 x 224 centre crops
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=FLICKR_DUMMY))
    (tmp_path / "w.pth").write_bytes(b"toy weights")
    monkeypatch.setattr(ex, "load_feature_model", lambda name, weights: None)
    monkeypatch.setattr(ex, "make_embed_fn", lambda model: toy_embed)
    kwargs = dict(model="resnet50", weights=str(tmp_path / "w.pth"), image_size=32, progress=False)
    store = ex.extract_image_features("flickr8k_audio/karpathy", data_dir, manual_dir=FLICKR_DUMMY, **kwargs)
    test = builder.as_data_source(split="test")
    assert store.ids.tolist() == sorted({int(e["image_id"]) for s in ("train", "validation", "test")
                                          for e in builder.as_data_source(split=s)})
    example = test[0]
    original = np.asarray(Image.open(os.path.join(FLICKR_DUMMY, example["image_file"].decode())).convert("RGB"))
    assert original.shape[0] != original.shape[1]  # a non-square original: its crops are not the stored crop's
    got = store.vector(int(example["image_id"]))
    # platalea: Resize(256) and TenCrop(224) of the original (scaled here to 37 and 32)
    np.testing.assert_allclose(got, toy_embed(ex.ten_crop(ex.resize_shorter(original, 37), 32)).mean(0),
                               rtol=1e-5, atol=1e-6)
    from_stored = toy_embed(ex.ten_crop(ex.resize_shorter(np.asarray(example["image"]), 37), 32)).mean(0)
    assert np.abs(got - from_stored).max() > 1e-2  # what extraction did before: ten crops of the stored crop
    assert store.fingerprint["images"] == "original files"
    # a missing original is an error naming it and the manual directory
    manual = tmp_path / "manual"
    shutil.copytree(FLICKR_DUMMY, manual)
    os.remove(manual / example["image_file"].decode())
    shutil.rmtree(store.directory)
    with pytest.raises(FileNotFoundError, match=f"1 of 6 original images of 'flickr8k_audio/karpathy' are missing "
                       f"from the manual directory {manual} .*{os.path.basename(example['image_file'].decode())}"
                       ".*--manual_dir"):
        ex.extract_image_features("flickr8k_audio/karpathy", data_dir, manual_dir=str(manual), **kwargs)
