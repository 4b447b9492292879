"""Precomputed image vectors kept beside a prepared TFDS dataset, looked up by `image_id`.

Layout (`dataset_dir` is the TFDS builder's versioned folder, `<data_dir>/<name>/<config>/<version>`)::

    <dataset_dir>/image_features/
        <model>.npy          float32 [N, D]  one row per image, rows in ascending image_id order
        <model>.ids.npy      int64   [N]     the image ids, strictly increasing
        <model>.json         {"model", "count", "feature_dim", "fingerprint"}; written last
        <model>.chunks/chunk_00012.npz       partial results of an unfinished extraction

A pair of `.npy` files (rather than one `.npz`) so readers memory-map the vectors: a training run
touches only the rows it needs, and the file is shared by all reader threads without copies. The
`fingerprint` (model, weights checksum, resize, crop, and `images: "original files"` when the
originals were read from the manual directory rather than the stored crops) guards against mixing
vectors of different recipes: chunks or a store with another fingerprint are never reused silently.

Writes are resumable and deterministic: each chunk is written to a temporary name and renamed
(`chunk_<k>.npz` with `ids`, `features`, `fingerprint`); a restart keeps every chunk whose ids and
fingerprint match the plan; `consolidate` merges an existing store with the chunks, sorts by id and
writes the final files (bytes depend only on the ids and vectors, so rerunning a command, interrupted
or not, gives byte-identical files), then removes the chunks. Adding images to an existing store
(e.g. `--split=train`, later `--split=all`) batches images differently, which can change the last
bits of a vector.

`FEATURE_MODELS` names the models whose vectors a store may hold (the extractor's `--model`), with
the torchvision weights file each needs. `JoinedSource` wraps a data source so each example gains `image_features` (float32 [D]) from the
store by its `image_id`; `join_source` is what `data_sources.open_split` calls.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
from typing import Callable, NamedTuple, Sequence

import numpy as np

STORE_DIRNAME = "image_features"
FEATURE_KEY = "image_features"


class FeatureModel(NamedTuple):
    build: Callable  # (rngs) -> nnx.Module mapping images [N, H, W, 3] to [N, dim]
    convert: Callable  # torchvision state dict -> nested dict for `apply_converted`
    filename: str  # torchvision's ImageNet (IMAGENET1K_V1) weights file
    dim: int


def _resnet(depth: int, filename: str) -> FeatureModel:
    def build(rngs):
        from vgs_jax.models.image_trunks import ResNetFeatures
        return ResNetFeatures(depth=depth, rngs=rngs)

    def convert(state_dict):
        from vgs_jax.models.weight_conversion import convert_resnet
        return convert_resnet(state_dict, depth)

    return FeatureModel(build, convert, filename, 2048)


def _vgg16_build(rngs):
    from vgs_jax.models.image_trunks import VGG16Features
    return VGG16Features(rngs=rngs)


def _vgg16_convert(state_dict):
    from vgs_jax.models.weight_conversion import convert_vgg16
    return convert_vgg16(state_dict, classifier=True)


FEATURE_MODELS = {
    "resnet152": _resnet(152, "resnet152-394f9c45.pth"),
    "resnet101": _resnet(101, "resnet101-63fe2227.pth"),
    "resnet50": _resnet(50, "resnet50-0676ba61.pth"),
    "vgg16": FeatureModel(_vgg16_build, _vgg16_convert, "vgg16-397923af.pth", 4096),
}
"""--model name -> how to build it, convert torchvision weights, which file to fetch, vector size."""


def store_dir(dataset_dir: str) -> str:
    """`<dataset_dir>/image_features`: where the vectors of a prepared dataset live."""
    return os.path.join(os.fspath(dataset_dir), STORE_DIRNAME)


def _paths(directory: str, model: str) -> dict[str, str]:
    base = os.path.join(directory, model)
    return {"features": base + ".npy", "ids": base + ".ids.npy", "meta": base + ".json", "chunks": base + ".chunks"}


def list_models(directory: str) -> list[str]:
    """Model names with a finished store in `directory` (those with a `<model>.json`), sorted."""
    return sorted(os.path.basename(p)[:-len(".json")] for p in glob.glob(os.path.join(directory, "*.json")))


def _check_ids(ids, where: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{where}: image ids must be a 1-d integer array, got shape {ids.shape} dtype {ids.dtype}.")
    return ids.astype(np.int64)


class ImageFeatureStore:
    """Read side of a store: `ids` int64 [N] (sorted), `features` float32 [N, D] (memory-mapped)."""

    def __init__(self, directory: str, model: str):
        paths = _paths(directory, model)
        if not os.path.isfile(paths["meta"]):
            raise FileNotFoundError(f"No image feature store '{paths['meta']}'; stores here: "
                                    f"{list_models(directory) if os.path.isdir(directory) else []}.")
        with open(paths["meta"]) as f:
            self.meta = json.load(f)
        self.directory, self.model = directory, model
        self.ids = np.load(paths["ids"])
        self.features = np.load(paths["features"], mmap_mode="r")
        n = int(self.meta.get("count", -1))
        if self.ids.shape != (n,) or self.features.shape != (n, int(self.meta.get("feature_dim", -1))):
            raise ValueError(f"Image feature store '{paths['features']}' is inconsistent (ids {self.ids.shape}, "
                             f"features {self.features.shape}, metadata count {n}); delete {model}.npy, "
                             f"{model}.ids.npy and {model}.json in {directory} and extract again.")
        if n > 1 and not np.all(np.diff(self.ids) > 0):
            raise ValueError(f"Image feature store '{paths['ids']}' ids are not strictly increasing; extract again.")

    @property
    def fingerprint(self) -> dict:
        return self.meta["fingerprint"]

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __contains__(self, image_id) -> bool:
        i = int(np.searchsorted(self.ids, int(image_id)))
        return i < len(self) and int(self.ids[i]) == int(image_id)

    def rows(self, image_ids) -> np.ndarray:
        """image_ids int [K] -> row indices int64 [K]; KeyError naming the first id not stored."""
        image_ids = _check_ids(image_ids, "ImageFeatureStore.rows")
        rows = np.searchsorted(self.ids, image_ids)
        found = rows < len(self)
        found[found] = self.ids[rows[found]] == image_ids[found]
        if not found.all():
            bad = int(image_ids[np.argmin(found)])
            raise KeyError(f"image_id {bad} is not in the image feature store '{self.model}' in {self.directory} "
                           f"({len(self)} images); extract features for every split you read "
                           "(python -m vgs_jax.extract_image_features ... --split=all).")
        return rows

    def lookup(self, image_ids) -> np.ndarray:
        """image_ids int [K] -> float32 [K, D] vectors (a copy)."""
        return np.array(self.features[self.rows(image_ids)], np.float32)

    def vector(self, image_id: int) -> np.ndarray:
        """One image's vector: float32 [D]."""
        return np.array(self.features[int(self.rows([image_id])[0])], np.float32)


def _atomic_save(path: str, writer) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        writer(f)
    os.replace(tmp, path)


def _fingerprint_json(fingerprint: dict) -> str:
    return json.dumps(fingerprint, sort_keys=True)


def check_fingerprint(directory: str, model: str, fingerprint: dict) -> np.ndarray:
    """Ids already stored for `model` (int64 [N], empty when there is no store). ValueError when the
    store was made with another fingerprint (other weights, resize or crop)."""
    if not os.path.isfile(_paths(directory, model)["meta"]):
        return np.zeros((0,), np.int64)
    store = ImageFeatureStore(directory, model)
    if _fingerprint_json(store.fingerprint) != _fingerprint_json(fingerprint):
        raise ValueError(f"The image feature store '{model}' in {directory} was extracted with {store.fingerprint}, "
                         f"not {fingerprint}; use the same weights and sizes, or delete {model}.npy, "
                         f"{model}.ids.npy and {model}.json there to start over.")
    return store.ids


def chunk_path(directory: str, model: str, index: int) -> str:
    """Path of chunk `index` of an unfinished extraction: `<model>.chunks/chunk_00012.npz`."""
    return os.path.join(_paths(directory, model)["chunks"], f"chunk_{index:05d}.npz")


def write_chunk(directory: str, model: str, index: int, ids, features, fingerprint: dict) -> str:
    """Atomically write chunk `index` (ids int [K], features float [K, D]); returns its path."""
    ids = _check_ids(ids, "write_chunk")
    features = np.asarray(features, np.float32)
    if features.ndim != 2 or features.shape[0] != ids.shape[0]:
        raise ValueError(f"write_chunk: features shape {features.shape} does not match {ids.shape[0]} ids.")
    path = chunk_path(directory, model, index)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _atomic_save(path, lambda f: np.savez(f, ids=ids, features=features,
                                          fingerprint=np.asarray(_fingerprint_json(fingerprint))))
    return path


def read_chunk(directory: str, model: str, index: int, ids, fingerprint: dict) -> np.ndarray | None:
    """Features float32 [K, D] of a finished chunk whose ids and fingerprint match, else None."""
    path = chunk_path(directory, model, index)
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            same = (np.array_equal(data["ids"], _check_ids(ids, "read_chunk"))
                    and str(data["fingerprint"]) == _fingerprint_json(fingerprint))
            return np.asarray(data["features"], np.float32) if same else None
    except (OSError, ValueError, KeyError):  # truncated or foreign file: recompute it
        return None


def consolidate(directory: str, model: str, chunk_ids: Sequence[np.ndarray], fingerprint: dict
                ) -> ImageFeatureStore:
    """Merge the existing store (if any) with chunks 0..len(chunk_ids)-1 into the final files,
    rows sorted by id; then delete the chunks. Returns the new store."""
    paths = _paths(directory, model)
    old_ids = check_fingerprint(directory, model, fingerprint)
    parts_ids, parts = [], []
    if old_ids.size:
        old = ImageFeatureStore(directory, model)
        parts_ids.append(old.ids)
        parts.append(np.asarray(old.features, np.float32))
    for k, ids in enumerate(chunk_ids):
        feats = read_chunk(directory, model, k, ids, fingerprint)
        if feats is None:
            raise FileNotFoundError(f"consolidate: chunk {chunk_path(directory, model, k)} is missing or does not "
                                    "match the plan; run the extraction again (finished chunks are kept).")
        parts_ids.append(_check_ids(ids, "consolidate"))
        parts.append(feats)
    if not parts:
        raise ValueError(f"consolidate: nothing to store for '{model}' in {directory} (no chunks, no store).")
    ids = np.concatenate(parts_ids)
    features = np.concatenate(parts, axis=0)
    order = np.argsort(ids, kind="stable")
    ids, features = ids[order], np.ascontiguousarray(features[order])
    if ids.size > 1 and not np.all(np.diff(ids) > 0):
        dup = int(ids[np.argmin(np.diff(ids) > 0)])
        raise ValueError(f"consolidate: image_id {dup} appears twice (store and chunk, or two chunks).")
    meta = {"model": model, "count": int(ids.size), "feature_dim": int(features.shape[1]),
            "fingerprint": fingerprint}
    _atomic_save(paths["features"], lambda f: np.save(f, features))
    _atomic_save(paths["ids"], lambda f: np.save(f, ids))
    _atomic_save(paths["meta"], lambda f: f.write(json.dumps(meta, sort_keys=True, indent=1).encode()))
    shutil.rmtree(paths["chunks"], ignore_errors=True)
    return ImageFeatureStore(directory, model)


def extract_command(dataset: str, data_dir: str, model: str = "resnet152") -> str:
    """The exact command that fills the store of `dataset` in `data_dir`."""
    filename = FEATURE_MODELS[model].filename if model in FEATURE_MODELS else f"{model}.pth"
    return (f"python -m vgs_jax.extract_image_features --dataset={dataset} --data_dir={data_dir} --split=all "
            f"--model={model} --weights=/path/to/{filename}")


class JoinedSource:
    """A data source whose examples gain `image_features` (float32 [D]) from a store by `image_id`.

    Other attributes (e.g. TFDS's `dataset_info`, `data_source`) are those of the wrapped source."""

    def __init__(self, source, store: ImageFeatureStore):
        self._source, self.store = source, store

    def __len__(self) -> int:
        return len(self._source)

    def _join(self, ex: dict) -> dict:
        if "image_id" not in ex:
            raise KeyError(f"example has no 'image_id' to look up image features; keys present: {sorted(ex)}.")
        return {**ex, FEATURE_KEY: self.store.vector(int(ex["image_id"]))}

    def __getitem__(self, index):
        return self._join(self._source[index])

    def __getitems__(self, indices):
        if hasattr(self._source, "__getitems__"):
            return [self._join(ex) for ex in self._source.__getitems__(indices)]
        return [self[i] for i in indices]

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_source", "store"):
            raise AttributeError(name)
        return getattr(self._source, name)


def join_source(source, dataset_dir: str, *, dataset: str, data_dir: str, model: str | None = None) -> JoinedSource:
    """Wrap `source` with the store in `<dataset_dir>/image_features` (`model`, or the only one there).

    FileNotFoundError (with the command that makes one) when there is no store; ValueError when there
    are several and `model` is None."""
    directory = store_dir(dataset_dir)
    models = list_models(directory) if os.path.isdir(directory) else []
    if model is None:
        if len(models) > 1:
            raise ValueError(f"Several image feature stores in {directory}: {models}; choose one with "
                             "image_features_model=... .")
        model = models[0] if models else "resnet152"
    if model not in models:
        raise FileNotFoundError(
            f"Dataset {dataset!r} stores no 'image_features' and there is no image feature store '{model}' in "
            f"{directory} (stores there: {models}). Extract the vectors first:\n  "
            f"{extract_command(dataset, data_dir, model)}")
    return JoinedSource(source, ImageFeatureStore(directory, model))
