"""Tests for VGG16Trunk / ResNet50Trunk and the torchvision weight converters (NumPy references)."""
import collections
import io
import math
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax.models import registry
from vgs_jax.models import image_trunks as it
from vgs_jax.models import weight_conversion as wc

RNG = np.random.default_rng(0)


def _count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


# ---------------------------------------------------------------- parameter counts (by formula)

def _vgg16_features_count() -> int:
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
    total, cin = 0, 3
    for c in cfg:
        if c != "M":
            total += 3 * 3 * cin * c + c
            cin = c
    return total


def _resnet50_count_without_fc(blocks_per_stage=(3, 4, 6, 3)) -> int:
    total = 3 * 64 * 7 * 7 + 2 * 64
    cin = 64
    for width, blocks in zip((64, 128, 256, 512), blocks_per_stage):
        for j in range(blocks):
            total += cin * width + 2 * width + 9 * width * width + 2 * width + width * 4 * width + 2 * 4 * width
            if j == 0:
                total += cin * 4 * width + 2 * 4 * width
            cin = 4 * width
    return total


def test_parameter_counts_match_torchvision():
    assert _vgg16_features_count() == 14_714_688
    assert _resnet50_count_without_fc() == 23_508_032
    vgg = nnx.eval_shape(lambda: it.VGG16Trunk(rngs=nnx.Rngs(0)))
    assert _count(nnx.state(vgg, nnx.Param)) == 14_714_688 + 512 * 1024 * 9 + 1024
    res = nnx.eval_shape(lambda: it.ResNet50Trunk(rngs=nnx.Rngs(0)))
    assert _count(nnx.state(res, nnx.Param)) == 23_508_032 + 2048 * 1024 + 1024
    # BatchNorm running statistics are BatchStat: 2 per BN channel (53 BNs in ResNet-50).
    assert _count(nnx.state(res, nnx.BatchStat)) == 2 * 26_560
    assert _count(nnx.state(vgg, nnx.BatchStat)) == 0


@pytest.fixture(scope="module")
def resnet152():
    """Abstract ResNetFeatures(depth=152) (built once: constructing 155 modules takes seconds)."""
    return nnx.eval_shape(lambda: it.ResNetFeatures(depth=152, rngs=nnx.Rngs(0)))


def test_deep_resnet_and_vgg_features_counts_match_torchvision(resnet152):
    # torchvision totals minus their last Linear: resnet152 60,192,808 - 2,049,000; resnet101 44,549,160 -
    # 2,049,000; vgg16 138,357,544 - 4,097,000 (classifier.6).
    assert _resnet50_count_without_fc((3, 8, 36, 3)) == 60_192_808 - 2_049_000 == 58_143_808
    assert _resnet50_count_without_fc((3, 4, 23, 3)) == 44_549_160 - 2_049_000
    r152 = resnet152
    assert _count(nnx.state(r152, nnx.Param)) == 58_143_808
    assert _count(nnx.state(r152, nnx.BatchStat)) == 2 * 75_712  # 155 BatchNorms
    vgg = nnx.eval_shape(lambda: it.VGG16Features(rngs=nnx.Rngs(0)))
    assert _count(nnx.state(vgg, nnx.Param)) == 138_357_544 - 4_097_000 == 134_260_544
    # output shapes at 224 x 224, by abstract evaluation: fc7 4096-d, pooled ResNet 2048-d
    img = jax.ShapeDtypeStruct((2, 224, 224, 3), jnp.uint8)
    for model, dim in ((vgg, 4096), (r152, 2048)):
        graphdef, state = nnx.split(model)
        out = jax.eval_shape(lambda st, x: nnx.merge(graphdef, st)(x), state, img)
        assert out.shape == (2, dim) and out.dtype == jnp.float32
    with pytest.raises(ValueError, match="depth 18 is not supported.*\\[50, 101, 152\\]"):
        it.resnet_stages(18)


# ---------------------------------------------------------------- synthetic torchvision state dicts

def _torch_vgg16_state_dict(out_features: int) -> dict:
    sd, cin = {}, 3
    widths = [c for block in it.VGG16_WIDTHS for c in block]
    for t, c in zip(wc.VGG16_TORCH_CONV_INDICES, widths):
        sd[f"features.{t}.weight"] = (RNG.standard_normal((c, cin, 3, 3)) * math.sqrt(2 / (9 * cin))).astype(np.float32)
        sd[f"features.{t}.bias"] = (0.1 * RNG.standard_normal(c)).astype(np.float32)
        cin = c
    sd["classifier.0.weight"] = np.zeros((4, 8), np.float32)  # stand-in for the ignored classifier
    sd["embedder.weight"] = (RNG.standard_normal((out_features, 512, 3, 3)) * 0.02).astype(np.float32)
    sd["embedder.bias"] = (0.1 * RNG.standard_normal(out_features)).astype(np.float32)
    return sd


def _bn(sd: dict, name: str, c: int) -> None:
    sd[f"{name}.weight"] = RNG.uniform(0.5, 1.5, c).astype(np.float32)
    sd[f"{name}.bias"] = (0.1 * RNG.standard_normal(c)).astype(np.float32)
    sd[f"{name}.running_mean"] = (0.1 * RNG.standard_normal(c)).astype(np.float32)
    sd[f"{name}.running_var"] = RNG.uniform(0.5, 1.5, c).astype(np.float32)
    sd[f"{name}.num_batches_tracked"] = np.array(7, np.int64)


def _w(o, i, k):
    return (RNG.standard_normal((o, i, k, k)) * math.sqrt(2 / (k * k * i))).astype(np.float32)


def _torch_resnet50_state_dict(out_features, depth: int = 50) -> dict:
    """Random torchvision-named ResNet-`depth` weights (+ an embedder unless out_features is None)."""
    sd = {"conv1.weight": _w(64, 3, 7)}
    _bn(sd, "bn1", 64)
    cin = 64
    for s, (width, blocks, _) in enumerate(it.resnet_stages(depth)):
        for j in range(blocks):
            p = f"layer{s + 1}.{j}"
            sd[f"{p}.conv1.weight"] = _w(width, cin, 1)
            _bn(sd, f"{p}.bn1", width)
            sd[f"{p}.conv2.weight"] = _w(width, width, 3)
            _bn(sd, f"{p}.bn2", width)
            sd[f"{p}.conv3.weight"] = _w(4 * width, width, 1) * 0.3
            _bn(sd, f"{p}.bn3", 4 * width)
            if j == 0:
                sd[f"{p}.downsample.0.weight"] = _w(4 * width, cin, 1)
                _bn(sd, f"{p}.downsample.1", 4 * width)
            cin = 4 * width
    sd["fc.weight"] = np.zeros((10, 2048), np.float32)
    sd["fc.bias"] = np.zeros((10,), np.float32)
    if out_features is not None:
        sd["embedder.weight"] = _w(out_features, 2048, 1)
        sd["embedder.bias"] = (0.1 * RNG.standard_normal(out_features)).astype(np.float32)
    return sd


# ---------------------------------------------------------------- slow NumPy references (NHWC, torch OIHW weights)

def np_conv(x, w, b=None, stride=1, pad=0):
    """Direct conv: loop over kernel offsets, sum x[window] . w[:, :, dy, dx] over input channels."""
    x = np.pad(x.astype(np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    o, _, kh, kw = w.shape
    ho = (x.shape[1] - kh) // stride + 1
    wo = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, o))
    for dy in range(kh):
        for dx in range(kw):
            patch = x[:, dy:dy + stride * (ho - 1) + 1:stride, dx:dx + stride * (wo - 1) + 1:stride, :]
            out += patch @ w[:, :, dy, dx].astype(np.float64).T
    return out if b is None else out + b


def np_maxpool(x, k, s, pad):
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=-np.inf)
    ho = (x.shape[1] - k) // s + 1
    wo = (x.shape[2] - k) // s + 1
    out = np.full((x.shape[0], ho, wo, x.shape[3]), -np.inf)
    for i in range(ho):
        for j in range(wo):
            out[:, i, j] = x[:, i * s:i * s + k, j * s:j * s + k].max(axis=(1, 2))
    return out


def np_bn(x, sd, name, train=False):
    if train:
        mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
    else:
        mean, var = sd[f"{name}.running_mean"], sd[f"{name}.running_var"]
    return (x - mean) / np.sqrt(var + 1e-5) * sd[f"{name}.weight"] + sd[f"{name}.bias"]


def np_normalize(img_u8):
    return (img_u8 / 255.0 - np.array(it.IMAGENET_MEAN)) / np.array(it.IMAGENET_STD)


def np_vgg16(img_u8, sd):
    x, i = np_normalize(img_u8), 0
    for b, block in enumerate(it.VGG16_WIDTHS):
        for _ in block:
            t = wc.VGG16_TORCH_CONV_INDICES[i]
            x = np.maximum(np_conv(x, sd[f"features.{t}.weight"], sd[f"features.{t}.bias"], 1, 1), 0)
            i += 1
        if b < 4:
            x = np_maxpool(x, 2, 2, 0)
    return np_conv(x, sd["embedder.weight"], sd["embedder.bias"], 1, 1)


def np_bottleneck(x, sd, p, stride, train=False):
    y = np.maximum(np_bn(np_conv(x, sd[f"{p}.conv1.weight"]), sd, f"{p}.bn1", train), 0)
    y = np.maximum(np_bn(np_conv(y, sd[f"{p}.conv2.weight"], stride=stride, pad=1), sd, f"{p}.bn2", train), 0)
    y = np_bn(np_conv(y, sd[f"{p}.conv3.weight"]), sd, f"{p}.bn3", train)
    if f"{p}.downsample.0.weight" in sd:
        x = np_bn(np_conv(x, sd[f"{p}.downsample.0.weight"], stride=stride), sd, f"{p}.downsample.1", train)
    return np.maximum(y + x, 0)


def np_resnet50_body(img_u8, sd):
    x = np.maximum(np_bn(np_conv(np_normalize(img_u8), sd["conv1.weight"], stride=2, pad=3), sd, "bn1"), 0)
    x = np_maxpool(x, 3, 2, 1)
    for s, (_, blocks, stride) in enumerate(it.RESNET50_STAGES):
        for j in range(blocks):
            x = np_bottleneck(x, sd, f"layer{s + 1}.{j}", stride if j == 0 else 1)
    return x


def np_adaptive_avg_pool(x, oh, ow):
    h, w = x.shape[1:3]
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(oh):
        for j in range(ow):
            r0, r1 = math.floor(i * h / oh), math.ceil((i + 1) * h / oh)
            c0, c1 = math.floor(j * w / ow), math.ceil((j + 1) * w / ow)
            out[:, i, j] = x[:, r0:r1, c0:c1].mean(axis=(1, 2))
    return out


def _close(ours, ref, rel=2e-4):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) <= rel * max(np.max(np.abs(ref)), 1e-6)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def vgg_sd():
    return _torch_vgg16_state_dict(8)


@pytest.fixture(scope="module")
def resnet_sd():
    return _torch_resnet50_state_dict(8)


@pytest.fixture(scope="module")
def resnet_case(resnet_sd):
    """An image batch and its NumPy ResNet-50 layer4 output (computed once)."""
    img = RNG.integers(0, 256, (2, 64, 48, 3), dtype=np.uint8)
    return img, np_resnet50_body(img, resnet_sd)


@pytest.fixture(scope="module")
def resnet(resnet_sd):
    model = nnx.eval_shape(lambda: it.ResNet50Trunk(out_features=8, rngs=nnx.Rngs(1)))
    wc.apply_converted(model, wc.convert_resnet50(resnet_sd))  # fills every entry: no random init needed
    return model


# ---------------------------------------------------------------- forward passes vs NumPy

def test_vgg16_converted_forward_matches_numpy(vgg_sd, tmp_path):
    np.savez(tmp_path / "vgg16.npz", **vgg_sd)
    loaded = wc.load_torchvision_state_dict(tmp_path / "vgg16.npz")
    model = nnx.eval_shape(lambda: it.VGG16Trunk(out_features=8, rngs=nnx.Rngs(0)))
    wc.apply_converted(model, wc.convert_vgg16(loaded))
    img = RNG.integers(0, 256, (2, 32, 47, 3), dtype=np.uint8)
    out, mask = model(jnp.asarray(img))
    assert out.shape == (2, 2, 2, 8) and out.dtype == jnp.float32
    assert mask.shape == (2, 2, 2) and bool(mask.all())
    _close(out, np_vgg16(img, vgg_sd))
    # float input is taken as already normalised
    out_f, _ = model(jnp.asarray(np_normalize(img), jnp.float32))
    _close(out_f, out, 1e-5)


def test_resnet50_converted_forward_matches_numpy_eval(resnet, resnet_sd, resnet_case):
    resnet.eval()
    img, body = resnet_case
    out, mask = resnet(jnp.asarray(img))
    assert out.shape == (2, 2, 2, 8) and mask.shape == (2, 2, 2)
    _close(out, np_conv(body, resnet_sd["embedder.weight"], resnet_sd["embedder.bias"]))
    resnet.train()


def test_resnet_features_is_pooled_layer4(resnet_sd, resnet_case):
    img, body = resnet_case
    model = nnx.eval_shape(lambda: it.ResNetFeatures(depth=50, rngs=nnx.Rngs(0)))
    trunk_only = {k: v for k, v in resnet_sd.items() if not k.startswith("embedder")}
    wc.apply_converted(model, wc.convert_resnet(trunk_only, 50))  # BatchNorm starts in eval mode
    out = model(jnp.asarray(img))
    assert out.shape == (2, 2048) and out.dtype == jnp.float32
    _close(out, body.mean(axis=(1, 2)))
    with pytest.raises(ValueError, match="no entry 'embedder/kernel'"):
        wc.apply_converted(model, wc.convert_resnet(resnet_sd, 50))


def test_adaptive_avg_pool_matches_numpy():
    for h, w, oh, ow in ((2, 3, 7, 7), (10, 9, 7, 7), (7, 7, 7, 7), (5, 13, 3, 4), (1, 1, 7, 7)):
        x = RNG.standard_normal((2, h, w, 3)).astype(np.float32)
        _close(it.adaptive_avg_pool_2d(jnp.asarray(x), oh, ow), np_adaptive_avg_pool(x, oh, ow), 1e-6)


def test_vgg16_features_fc7_matches_numpy(vgg_sd):
    hidden = 16
    sd = {k: v for k, v in vgg_sd.items() if not k.startswith(("embedder", "classifier"))}
    sd["classifier.0.weight"] = (RNG.standard_normal((hidden, 25088)) * 0.01).astype(np.float32)
    sd["classifier.0.bias"] = (0.1 * RNG.standard_normal(hidden)).astype(np.float32)
    sd["classifier.3.weight"] = (RNG.standard_normal((hidden, hidden)) * 0.3).astype(np.float32)
    sd["classifier.3.bias"] = (0.1 * RNG.standard_normal(hidden)).astype(np.float32)
    sd["classifier.6.weight"] = np.zeros((1000, hidden), np.float32)  # ignored
    model = nnx.eval_shape(lambda: it.VGG16Features(hidden_features=hidden, rngs=nnx.Rngs(0)))
    wc.apply_converted(model, wc.convert_vgg16(sd, classifier=True))
    img = RNG.integers(0, 256, (2, 96, 80, 3), dtype=np.uint8)  # conv5 pooled to 3 x 2, then to 7 x 7
    out = model(jnp.asarray(img))
    assert out.shape == (2, hidden) and out.dtype == jnp.float32
    # NumPy head on the (separately tested) conv5 map, with torch's (C, H, W) flattening
    conv5 = np.asarray(it._vgg16_conv5(model.features, it.normalize_pixels(jnp.asarray(img), "t")), np.float64)
    pooled = np_adaptive_avg_pool(np_maxpool(conv5, 2, 2, 0), 7, 7)
    flat = pooled.transpose(0, 3, 1, 2).reshape(2, -1)
    h6 = np.maximum(flat @ sd["classifier.0.weight"].T + sd["classifier.0.bias"], 0)
    _close(out, np.maximum(h6 @ sd["classifier.3.weight"].T + sd["classifier.3.bias"], 0))
    bad = dict(sd, **{"classifier.0.weight": np.zeros((hidden, 4096), np.float32)})
    with pytest.raises(ValueError, match=r"'classifier.0.weight' has shape \(16, 4096\), expected \(16, 25088\)"):
        wc.convert_vgg16(bad, classifier=True)
    with pytest.raises(ValueError, match=r"no \['classifier.3.weight', 'classifier.3.bias'\]"):
        wc.convert_vgg16({k: v for k, v in sd.items() if not k.startswith("classifier.3")}, classifier=True)


def test_resnet152_converter_round_trip(resnet152):
    sd = _torch_resnet50_state_dict(None, depth=152)
    model = resnet152
    wc.apply_converted(model, wc.convert_resnet152(sd))
    pure = nnx.to_pure_dict(nnx.state(model))
    assert not any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(pure))  # every entry written
    names = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
    checked = 0
    for key, value in sd.items():  # back to torch names and layouts: every tensor comes back exactly
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        parts = key.split(".")
        path = [int(p) if p.isdigit() else p for p in parts[:-1]]
        if "downsample" in path:
            i = path.index("downsample")
            path[i:i + 2] = ["downsample_conv" if path[i + 1] == 0 else "downsample_bn"]
        node = pure
        for p in path:
            node = node[p]
        if value.ndim == 4:
            back = np.asarray(node["kernel"]).transpose(3, 2, 0, 1)
        else:
            back = np.asarray(node[names[parts[-1]]])
        np.testing.assert_array_equal(back, value)
        checked += 1
    assert checked == len(jax.tree.leaves(pure))
    with pytest.raises(ValueError, match=r"depth=152\).*missing keys \[.*\] \.\.\. \(\d+ in all\)"):
        wc.convert_resnet152(_torch_resnet50_state_dict(None, depth=50))


def test_bottleneck_train_mode_uses_batch_statistics(resnet, resnet_sd):
    block = resnet.layer2[0]  # stride 2, with downsample
    x = np.maximum(RNG.standard_normal((3, 6, 6, 256)), 0).astype(np.float32)
    resnet.eval()  # first, while the running statistics are still the converted ones
    _close(block(jnp.asarray(x)), np_bottleneck(x, resnet_sd, "layer2.0", 2, train=False), 1e-4)
    mean_before = np.asarray(block.bn1.mean[...]).copy()
    resnet.train()
    _close(block(jnp.asarray(x)), np_bottleneck(x, resnet_sd, "layer2.0", 2, train=True), 1e-4)
    h = np_conv(x, resnet_sd["layer2.0.conv1.weight"])
    np.testing.assert_allclose(np.asarray(block.bn1.mean[...]), 0.9 * mean_before + 0.1 * h.mean(axis=(0, 1, 2)),
                               rtol=1e-4, atol=1e-5)
    resnet.train()


# ---------------------------------------------------------------- .pth loader without torch

class FloatStorage:  # pickled by reference, then renamed to torch.FloatStorage
    pass


def _fake_rebuild(*args):
    raise AssertionError("only used as a pickle reference")


class _FakeTensor:
    def __init__(self, key, offset, shape, stride):
        self.args = (key, offset, shape, stride)

    def __reduce__(self):
        key, offset, shape, stride = self.args
        return _fake_rebuild, (("STORAGE", key), offset, shape, stride, False, collections.OrderedDict())


def _write_fake_pth(path, tensors: dict, storages: dict, extra_global=None):
    """Write torch's zip format: archive/data.pkl (protocol 2) + archive/data/<key> raw little-endian."""
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "STORAGE":
                return ("storage", FloatStorage, obj[1], "cpu", storages[obj[1]].size)
            return None

    buf = io.BytesIO()
    obj = collections.OrderedDict(tensors)
    if extra_global is not None:
        obj["evil"] = extra_global
    P(buf, protocol=2).dump(obj)
    data = buf.getvalue()
    data = data.replace(f"c{__name__}\nFloatStorage\n".encode(), b"ctorch\nFloatStorage\n")
    data = data.replace(f"c{__name__}\n_fake_rebuild\n".encode(), b"ctorch._utils\n_rebuild_tensor_v2\n")
    assert b"ctorch._utils\n_rebuild_tensor_v2\n" in data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/byteorder", "little")
        for key, arr in storages.items():
            z.writestr(f"archive/data/{key}", arr.astype("<f4").tobytes())


def test_pth_loader_rebuilds_strided_tensors(tmp_path):
    base = RNG.standard_normal(30).astype(np.float32)
    other = RNG.standard_normal(4).astype(np.float32)
    tensors = {
        "a.weight": _FakeTensor("0", 0, (2, 3), (3, 1)),
        "a.transposed": _FakeTensor("0", 0, (3, 2), (1, 3)),   # non-contiguous view
        "b.offset": _FakeTensor("0", 6, (2, 2, 3), (6, 3, 1)),  # same storage, offset 6
        "c.bias": _FakeTensor("1", 1, (3,), (1,)),
    }
    _write_fake_pth(tmp_path / "w.pth", tensors, {"0": base, "1": other})
    sd = wc.load_torchvision_state_dict(str(tmp_path / "w.pth"))
    np.testing.assert_array_equal(sd["a.weight"], base[:6].reshape(2, 3))
    np.testing.assert_array_equal(sd["a.transposed"], base[:6].reshape(2, 3).T)
    np.testing.assert_array_equal(sd["b.offset"], base[6:18].reshape(2, 2, 3))
    np.testing.assert_array_equal(sd["c.bias"], other[1:])
    assert sd["a.weight"].dtype == np.float32


def test_pth_loader_refuses_foreign_globals_and_legacy_files(tmp_path):
    _write_fake_pth(tmp_path / "evil.pth", {"a": _FakeTensor("0", 0, (1,), (1,))},
                    {"0": np.zeros(1, np.float32)}, extra_global=print)
    with pytest.raises(pickle.UnpicklingError, match=r"refers to (__builtin__|builtins)\.print"):
        wc.load_torchvision_state_dict(tmp_path / "evil.pth")
    (tmp_path / "old.pth").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="old.pth.*legacy"):
        wc.load_torchvision_state_dict(tmp_path / "old.pth")
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        wc.load_torchvision_state_dict(tmp_path / "nowhere.pth")
    (tmp_path / "w.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="w.bin"):
        wc.load_torchvision_state_dict(tmp_path / "w.bin")


# ---------------------------------------------------------------- converter errors

def test_converter_errors_name_keys_and_shapes(vgg_sd, resnet_sd):
    sd = dict(vgg_sd)
    del sd["features.7.weight"]
    sd["features.99.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError,
                       match=r"missing keys \['features.7.weight'\].*unexpected keys \['features.99.weight'\]"):
        wc.convert_vgg16(sd)
    sd = dict(resnet_sd)
    sd["layer3.2.conv2.weight"] = np.zeros((256, 256, 1, 1), np.float32)
    with pytest.raises(ValueError,
                       match=r"'layer3.2.conv2.weight' has shape \(256, 256, 1, 1\), expected \(256, 256, 3, 3\)"):
        wc.convert_resnet50(sd)
    sd = dict(resnet_sd)
    del sd["embedder.bias"]
    with pytest.raises(ValueError, match="embedder.bias"):
        wc.convert_resnet50(sd)


def test_apply_converted_checks_shapes_and_keeps_missing_embedder(vgg_sd):
    model = nnx.eval_shape(lambda: it.VGG16Trunk(out_features=4, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"embedder/kernel' has shape \(3, 3, 512, 8\).*\(3, 3, 512, 4\)"):
        wc.apply_converted(model, wc.convert_vgg16(vgg_sd))
    with pytest.raises(ValueError, match="no entry 'conv1/kernel'"):
        wc.apply_converted(model, {"conv1": {"kernel": np.zeros((7, 7, 3, 64), np.float32)}})
    model = nnx.eval_shape(lambda: it.VGG16Trunk(out_features=8, rngs=nnx.Rngs(0)))
    wc.apply_converted(model, wc.convert_vgg16(vgg_sd))
    trunk_only = {k: 2 * v for k, v in vgg_sd.items() if not k.startswith("embedder")}
    wc.apply_converted(model, wc.convert_vgg16(trunk_only))
    np.testing.assert_array_equal(np.asarray(model.embedder.kernel[...]),
                                  vgg_sd["embedder.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(np.asarray(model.features[3].kernel[...]),
                                  2 * vgg_sd["features.7.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(np.asarray(model.features[3].bias[...]), 2 * vgg_sd["features.7.bias"])


def test_max_pool_matches_numpy_and_differentiates_under_jit():
    x = RNG.standard_normal((2, 7, 6, 3)).astype(np.float32)
    for k, s, p in ((2, 2, 0), (3, 2, 1)):
        np.testing.assert_array_equal(np.asarray(it.max_pool_2d(jnp.asarray(x), k, s, p)), np_maxpool(x, k, s, p))
    grad = jax.jit(jax.grad(lambda v: jnp.sum(it.max_pool_2d(v, 2, 2, 0))))(jnp.asarray(x))
    expected = np.zeros_like(x)  # 1 at the arg-max of each (distinct-valued) 2x2 window; last column unused
    for b in range(2):
        for i in range(3):
            for j in range(3):
                for c in range(3):
                    win = x[b, 2 * i:2 * i + 2, 2 * j:2 * j + 2, c]
                    di, dj = np.unravel_index(np.argmax(win), win.shape)
                    expected[b, 2 * i + di, 2 * j + dj, c] = 1
    np.testing.assert_array_equal(np.asarray(grad), expected)


# ---------------------------------------------------------------- random init, freezing, bad input

def test_random_init_shapes_and_batchnorm_modes():
    model = it.ResNet50Trunk(out_features=16, rngs=nnx.Rngs(0))
    img = jnp.asarray(RNG.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    var_before = np.asarray(model.bn1.var[...]).copy()
    out, mask = model(img)
    assert out.shape == (2, 1, 1, 16) and mask.shape == (2, 1, 1) and bool(jnp.all(jnp.isfinite(out)))
    assert not np.allclose(np.asarray(model.bn1.var[...]), var_before)  # train mode updates running stats
    model.eval()
    a, _ = model(img)
    b, _ = model(img.at[1].set(0))
    _close(b[0], a[0], 1e-5)  # eval: each image independent of its batch
    assert not np.allclose(np.asarray(b[1]), np.asarray(a[1]))
    # He fan-out init of the convs (N(0, 2 / (k * k * out))), BatchNorm scale 1
    k = np.asarray(model.layer4[1].conv2.kernel[...])
    assert abs(k.std() - math.sqrt(2 / (9 * 512))) < 0.02 * math.sqrt(2 / (9 * 512))
    assert np.all(np.asarray(model.layer4[1].bn2.scale[...]) == 1)


def test_freeze_trunk_stops_gradients_and_mask():
    model = it.VGG16Trunk(out_features=4, rngs=nnx.Rngs(0))
    assert not np.any(np.asarray(model.features[0].bias[...]))  # torchvision: zero conv biases
    img = jnp.asarray(RNG.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8))

    def loss(m):
        return jnp.sum(m(img)[0] ** 2)

    for freeze in (True, False):
        model.freeze_trunk = freeze
        grads = nnx.grad(loss)(model)
        assert float(jnp.abs(grads.embedder.kernel[...]).sum()) > 0
        assert (float(jnp.abs(grads.features[0].kernel[...]).sum()) == 0) == freeze
    params = nnx.state(model, nnx.Param)
    mask = it.trainable_mask(params)
    assert sum(jax.tree.leaves(mask)) == 2 and len(jax.tree.leaves(mask)) == 28
    assert all(jax.tree.leaves(it.trainable_mask(nnx.to_pure_dict(params), freeze_trunk=False)))
    with pytest.raises(ValueError, match="embedder"):
        it.trainable_mask({"features": {0: {"kernel": 1.0}}})


def test_bad_inputs_raise_named_errors():
    model = nnx.eval_shape(lambda: it.VGG16Trunk(out_features=4, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"\[batch, height, width, 3\].*\(2, 32, 32\)"):
        model(jnp.zeros((2, 32, 32), jnp.uint8))
    with pytest.raises(ValueError, match="int32"):
        model(jnp.zeros((1, 32, 32, 3), jnp.int32))
    with pytest.raises(ValueError, match="at least 16x16.*8x32"):
        model(jnp.zeros((1, 8, 32, 3), jnp.uint8))
    with pytest.raises(ValueError, match="out_features"):
        it.ResNet50Trunk(out_features=0, rngs=nnx.Rngs(0))


def test_from_config_reads_freeze_trunk():
    m = nnx.eval_shape(lambda: it.ResNet50Trunk.from_config({"freeze_trunk": True}, 32, rngs=nnx.Rngs(0)))
    assert m.freeze_trunk and m.out_features == 32
    m = nnx.eval_shape(lambda: it.VGG16Trunk.from_config({}, 16, rngs=nnx.Rngs(0)))
    assert not m.freeze_trunk and m.out_features == 16
    assert registry.IMAGE_ENCODERS["vgg16"] is it.VGG16Trunk and registry.IMAGE_ENCODERS["resnet50"] is it.ResNet50Trunk
    m = nnx.eval_shape(lambda: it.ResNet50Trunk.from_config({}, 8, rngs=nnx.Rngs(0)))
    assert isinstance(m, it.ResNetTrunk) and m.depth == 50
