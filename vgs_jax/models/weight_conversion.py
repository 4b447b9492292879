"""Load torchvision weights (`.pth` without torch, or `.npz`) into the image trunks and feature models.

`load_torchvision_state_dict` reads PyTorch's zip checkpoint format (torch >= 1.6, `torch.save`
default) with `zipfile` + a restricted `pickle.Unpickler`: the pickle `<archive>/data.pkl` refers to
raw little-endian storages `<archive>/data/<key>` through persistent ids, and tensors are rebuilt
from (storage, offset, size, stride). Only the few globals a state dict needs are allowed, so
loading runs no foreign code. Older non-zip `.pth` files (e.g. torchvision's 2017 `vgg16-397923af.pth`)
are refused with a message: re-save them with a recent torch, or as `.npz`
(`numpy.savez(path, **{k: v.numpy() for k, v in state_dict.items()})`).

`convert_vgg16` / `convert_resnet(depth)` (`convert_resnet50`, `convert_resnet152`) map torchvision
names and layouts to our parameter tree (a nested dict shaped like `nnx.state(model).to_pure_dict()`,
holding params and BatchNorm statistics): conv OIHW -> HWIO; BatchNorm weight/bias/running_mean/
running_var -> scale/bias/mean/var (`num_batches_tracked` dropped). The classifier (`classifier.*`,
`fc.*`) is ignored, except by `convert_vgg16(..., classifier=True)` (for `VGG16Features`), which maps
`classifier.0` -> fc6 and `classifier.3` -> fc7 (Linear [out, in] -> kernel [in, out]; fc6's 25088
input columns are permuted from torch's (C, H, W) flattening to our (H, W, C)) and ignores
`classifier.6`. An `embedder.*` pair, if present, is converted too, else the model keeps its own
embedder. `apply_converted` writes the tree into a model, checking every path and shape. Errors name
the first mismatched tensor with its expected and actual shapes.
"""
import collections
import os
import pickle
import zipfile

import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx

TORCH_HINT = ("re-save it with torch >= 1.6 (torch.save default zip format) or as .npz: "
              "numpy.savez(path, **{k: v.numpy() for k, v in state_dict.items()})")

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}

VGG16_TORCH_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
"""Indices of the 13 convs in torchvision's `vgg16().features` (ReLUs and max-pools in between)."""

_IGNORED_PREFIXES = ("classifier.", "fc.")


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.array(view, copy=True)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *extra):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class TorchUnpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: str, byteorder: str):
        super().__init__(file)
        self._archive, self._prefix, self._path, self._byteorder = archive, prefix, path, byteorder
        self._storages = {}

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(
            f"load_torchvision_state_dict: '{self._path}' refers to {module}.{name}, which a plain state dict "
            f"does not need; save model.state_dict() only, or {TORCH_HINT}.")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(
                f"load_torchvision_state_dict: '{self._path}' has an unsupported storage reference {pid!r}; "
                f"{TORCH_HINT}.")
        storage_type, key = pid[1], str(pid[2])
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            dtype = np.dtype(storage_type.dtype)
            if self._byteorder == "big":
                dtype = dtype.newbyteorder(">")
            self._storages[key] = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
        return self._storages[key]


def load_pth(path: str, unpickler=TorchUnpickler) -> dict:
    """The object a torch zip checkpoint holds (its "state_dict" entry when it has one), read by `unpickler`
    (a `TorchUnpickler` subclass)."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"load_torchvision_state_dict: '{path}' is not a zip-format torch checkpoint "
                         f"(legacy torch < 1.6 format); {TORCH_HINT}.")
    with zipfile.ZipFile(path) as archive:
        pkl = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pkl) != 1:
            raise ValueError(f"load_torchvision_state_dict: '{path}' has {len(pkl)} data.pkl entries, expected 1; "
                             f"{TORCH_HINT}.")
        prefix = pkl[0][: -len("data.pkl")]
        names = set(archive.namelist())
        byteorder = (archive.read(prefix + "byteorder").decode().strip()
                     if prefix + "byteorder" in names else "little")
        with archive.open(pkl[0]) as f:
            obj = unpickler(f, archive, prefix, path, byteorder).load()
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"load_torchvision_state_dict: '{path}' holds a {type(obj).__name__}, not a state dict.")
    return obj


def load_torchvision_state_dict(path) -> dict[str, np.ndarray]:
    """Read a torchvision state dict from a `.pth`/`.pt` (torch zip format, no torch needed) or `.npz`.

    Returns:
      {torch key: numpy array} with torch's dtypes and layouts (conv weights OIHW).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_torchvision_state_dict: no file '{path}'; download the torchvision "
                                "weights on a machine with network access and copy them here.")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    if path.endswith((".pth", ".pt")):
        return {str(k): np.asarray(v) for k, v in load_pth(path).items()}
    raise ValueError(f"load_torchvision_state_dict: '{path}' must end in .pth, .pt or .npz.")


def _conv_kernel(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)).astype(np.float32))


def set_path(tree: dict, path: tuple, value: np.ndarray) -> None:
    for p in path[:-1]:
        tree = tree.setdefault(p, {})
    tree[path[-1]] = value


def few_names(keys: list, limit: int = 8) -> str:
    return str(keys) if len(keys) <= limit else f"{keys[:limit]} ... ({len(keys)} in all)"


def _convert(state_dict: dict, spec: dict, where: str) -> dict:
    """spec: torch key -> (our path, expected torch shape or None, kind 'conv'|'vector')."""
    keys = set(state_dict)
    optional = {k for k in spec if k.startswith("embedder.")}
    missing = sorted(k for k in spec if k not in keys and k not in optional)
    extra = sorted(k for k in keys if k not in spec and not k.startswith(_IGNORED_PREFIXES)
                   and not k.endswith("num_batches_tracked"))
    emb_present = sorted(optional & keys)
    if emb_present and len(emb_present) != len(optional):
        missing += sorted(optional - keys)
    if missing or extra:
        raise ValueError(f"{where}: state dict does not match torchvision's layout; missing keys {few_names(missing)}, "
                         f"unexpected keys {few_names(extra)}. Pass the torchvision model's state_dict() unchanged "
                         "(of the same architecture and depth).")
    out = {}
    for key, (path, shape, kind) in spec.items():
        if key not in keys:
            continue
        value = np.asarray(state_dict[key])
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ValueError(f"{where}: '{key}' has shape {tuple(value.shape)}, expected {tuple(shape)} "
                             "(torchvision layout).")
        if kind == "conv" and value.ndim != 4:
            raise ValueError(f"{where}: '{key}' must be a 4-d OIHW conv weight, got shape {value.shape}.")
        if kind == "vector" and value.ndim != 1:
            raise ValueError(f"{where}: '{key}' must be 1-d, got shape {value.shape}.")
        set_path(out, path, _conv_kernel(value) if kind == "conv" else value.astype(np.float32))
    if emb_present:
        w, b = state_dict["embedder.weight"], state_dict["embedder.bias"]
        if w.shape[0] != b.shape[0]:
            raise ValueError(f"{where}: 'embedder.weight' shape {w.shape} and 'embedder.bias' shape {b.shape} "
                             "disagree on the output channels.")
    return out


def _bn_spec(torch_prefix: str, path: tuple, channels: int) -> dict:
    names = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
    return {f"{torch_prefix}.{t}": (path + (ours,), (channels,), "vector") for t, ours in names.items()}


def convert_vgg16(state_dict: dict, *, classifier: bool = False) -> dict:
    """torchvision `vgg16().state_dict()` ({key: array}) -> nested dict for `VGG16Trunk`, or with
    `classifier=True` for `VGG16Features` (adds fc6 / fc7; see module doc)."""
    from vgs_jax.models.image_trunks import VGG16_WIDTHS
    widths = [c for block in VGG16_WIDTHS for c in block]
    spec, cin = {}, 3
    for i, (t, cout) in enumerate(zip(VGG16_TORCH_CONV_INDICES, widths)):
        spec[f"features.{t}.weight"] = (("features", i, "kernel"), (cout, cin, 3, 3), "conv")
        spec[f"features.{t}.bias"] = (("features", i, "bias"), (cout,), "vector")
        cin = cout
    spec["embedder.weight"] = (("embedder", "kernel"), None, "conv")
    spec["embedder.bias"] = (("embedder", "bias"), None, "vector")
    if not classifier:
        return _convert(state_dict, spec, "convert_vgg16")
    return _with_vgg_classifier(state_dict, spec)


def _with_vgg_classifier(state_dict: dict, spec: dict) -> dict:
    from vgs_jax.models.image_trunks import VGG_POOL
    where = "convert_vgg16(classifier=True)"
    keys = ("classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias")
    missing = [k for k in keys if k not in state_dict]
    if missing:
        raise ValueError(f"{where}: state dict has no {missing}; pass the full torchvision vgg16 state_dict() "
                         "(VGG16 ImageNet weights, vgg16-397923af.pth).")
    w6, b6, w7, b7 = (np.asarray(state_dict[k]) for k in keys)
    hidden, fan_in = (w6.shape + (None, None))[:2]
    expected = {"classifier.0.weight": (hidden, 512 * VGG_POOL * VGG_POOL), "classifier.0.bias": (hidden,),
                "classifier.3.weight": (hidden, hidden), "classifier.3.bias": (hidden,)}
    for key, value in zip(keys, (w6, b6, w7, b7)):
        if tuple(value.shape) != expected[key]:
            raise ValueError(f"{where}: '{key}' has shape {tuple(value.shape)}, expected {expected[key]} "
                             "(torchvision layout: fc6 reads 512 x 7 x 7 = 25088 inputs).")
    rest = {k: v for k, v in state_dict.items() if not k.startswith("classifier.")}
    out = _convert(rest, spec, where)
    # torch flattens the pooled map as (C, H, W); ours is (H, W, C).
    kernel6 = w6.reshape(hidden, 512, VGG_POOL, VGG_POOL).transpose(2, 3, 1, 0).reshape(-1, hidden)
    out["fc6"] = {"kernel": np.ascontiguousarray(kernel6, np.float32), "bias": b6.astype(np.float32)}
    out["fc7"] = {"kernel": np.ascontiguousarray(w7.T, np.float32), "bias": b7.astype(np.float32)}
    return out


def convert_resnet(state_dict: dict, depth: int) -> dict:
    """torchvision `resnet<depth>().state_dict()` ({key: array}) -> nested dict of params and BatchNorm
    statistics for `ResNetTrunk(depth=depth)` / `ResNetFeatures(depth=depth)` (see module doc)."""
    from vgs_jax.models.image_trunks import resnet_stages
    where = f"convert_resnet(depth={depth})"
    spec = {"conv1.weight": (("conv1", "kernel"), (64, 3, 7, 7), "conv")}
    spec.update(_bn_spec("bn1", ("bn1",), 64))
    cin = 64
    for s, (width, blocks, _) in enumerate(resnet_stages(depth)):
        layer = f"layer{s + 1}"
        for j in range(blocks):
            t, p = f"{layer}.{j}", (layer, j)
            shapes = [(width, cin, 1, 1), (width, width, 3, 3), (4 * width, width, 1, 1)]
            for c, shape in enumerate(shapes, start=1):
                spec[f"{t}.conv{c}.weight"] = (p + (f"conv{c}", "kernel"), shape, "conv")
                spec.update(_bn_spec(f"{t}.bn{c}", p + (f"bn{c}",), shape[0]))
            if j == 0:
                spec[f"{t}.downsample.0.weight"] = (p + ("downsample_conv", "kernel"), (4 * width, cin, 1, 1),
                                                    "conv")
                spec.update(_bn_spec(f"{t}.downsample.1", p + ("downsample_bn",), 4 * width))
            cin = 4 * width
    spec["embedder.weight"] = (("embedder", "kernel"), None, "conv")
    spec["embedder.bias"] = (("embedder", "bias"), None, "vector")
    return _convert(state_dict, spec, where)


def convert_resnet50(state_dict: dict) -> dict:
    """`convert_resnet(state_dict, 50)`: for `ResNet50Trunk`."""
    return convert_resnet(state_dict, 50)


def convert_resnet152(state_dict: dict) -> dict:
    """`convert_resnet(state_dict, 152)`: for `ResNetFeatures(depth=152)` (platalea's image vectors)."""
    return convert_resnet(state_dict, 152)


def flatten_tree(tree: dict, prefix: tuple = ()) -> dict:
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat.update(flatten_tree(v, prefix + (k,)))
        else:
            flat[prefix + (k,)] = v
    return flat


def apply_converted(model: nnx.Module, converted: dict) -> None:
    """Write a converted tree (from `convert_vgg16` / `convert_resnet50`) into `model` in place.

    Every path must exist in the model with the same shape; model entries not in `converted` keep
    their values (e.g. a random embedder). `model` may be abstract (`nnx.eval_shape`), which skips
    the random init when `converted` covers every entry (embedder included)."""
    state = nnx.state(model)
    pure = nnx.to_pure_dict(state)
    ours = flatten_tree(pure)
    for path, value in flatten_tree(converted).items():
        name = "/".join(str(p) for p in path)
        if path not in ours:
            raise ValueError(f"apply_converted: the model has no entry '{name}'; convert with the function "
                             "matching the model (convert_vgg16 for VGG16Trunk, convert_vgg16(classifier=True) "
                             "for VGG16Features, convert_resnet(depth) for ResNetTrunk / ResNetFeatures).")
        if tuple(ours[path].shape) != tuple(value.shape):
            raise ValueError(f"apply_converted: '{name}' has shape {tuple(value.shape)} but the model expects "
                             f"{tuple(ours[path].shape)}; check out_features.")
        set_path(pure, path, jnp.asarray(value, dtype=ours[path].dtype))
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
