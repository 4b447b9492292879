"""Precompute frozen-CNN image vectors for a prepared dataset (platalea's recipe, anchor §1.3).

    python -m vgs_jax.extract_image_features --dataset=flickr8k_audio --data_dir=DATA_DIR \\
        --split=all --model=resnet152 --weights=/path/to/resnet152-394f9c45.pth [--manual_dir=DIR]

Which image: the ORIGINAL file, as platalea does. Datasets built from a manual directory (flickr8k_audio,
spoken_coco, places_audio, speech_coco, synthetically_spoken_coco) store only a centre crop for pixel
models, plus `image_file`, the original's path relative to the corpus folder; the original is read from
`<manual_dir>/<builder name>/<image_file>` (or `<manual_dir>/<image_file>` when that folder does not exist:
the builders' rule), `--manual_dir` defaulting to TFDS's `<data_dir>/downloads/manual`. A missing original is
an error naming the file and that folder. Datasets without `image_file` (spoken_shapes, whose generated
images are stored whole) use the stored image.

Recipe per image: convert to RGB; `Resize(256)`: shorter side to 256, the other to
int(256 * long / short), PIL bilinear (antialiased when shrinking; unchanged when the shorter side
is already 256); `TenCrop(224)`: the four corner crops and the centre crop (top-left at
int(round((H - 224) / 2)), int(round((W - 224) / 2))), then the same five of the horizontally
flipped image; ImageNet mean/std normalisation; the model's vector of each crop; the mean of the
10 vectors (float32). Models: `resnet152` (platalea's default: global-average-pooled layer4, 2048-d),
`resnet101`, `resnet50`, and `vgg16` (fc7 after ReLU, 4096-d; platalea's own alternative is
VGG19-bn, which we do not provide). Weights are torchvision ImageNet files (`.pth` zip format or
`.npz`), read without torch; nothing is downloaded.

Images are de-duplicated by `image_id` over the requested splits and processed in ascending id
order, `--batch_size` images (10 x as many crops) per step, in chunks of `--chunk_size` images that
are saved as they finish: an interrupted run, restarted with the same command, skips finished
chunks. Output: `vgs_jax.image_feature_store` beside the dataset. `--image_size` (crop side,
resize = round(image_size * 256 / 224)) exists for tests only; keep 224 for real features.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import sys
import time
from types import SimpleNamespace
from typing import Callable, Sequence

import numpy as np

from vgs_jax import image_feature_store as fs

RESIZE, CROP = 256, 224
TORCHVISION_URL = "https://download.pytorch.org/models/"

EmbedFn = Callable[[np.ndarray], np.ndarray]
"""uint8 crops [N, c, c, 3] -> float32 vectors [N, D]."""


# ---------------------------------------------------------------- preprocessing (NumPy / PIL, host side)

def resize_shorter(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W] / [H, W, 1|3|4] -> RGB uint8 [h, w, 3], shorter side `size` (torchvision Resize(size), PIL)."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"resize_shorter: expected a uint8 image [H, W] or [H, W, 1|3|4], got shape {image.shape} "
                         f"dtype {image.dtype}.")
    pil = Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image).convert("RGB")
    w, h = pil.size
    if min(w, h) != size:
        short, long = min(w, h), max(w, h)
        new_long = int(size * long / short)
        pil = pil.resize((size, new_long) if w <= h else (new_long, size), Image.Resampling.BILINEAR)
    return np.asarray(pil, np.uint8)


def five_crop(image: np.ndarray, crop: int) -> list[np.ndarray]:
    """[H, W, C] -> [top-left, top-right, bottom-left, bottom-right, centre] crops [crop, crop, C]."""
    h, w = image.shape[:2]
    if h < crop or w < crop:
        raise ValueError(f"five_crop: image {h}x{w} is smaller than the crop {crop}x{crop}.")
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    corners = ((0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), (top, left))
    return [image[y:y + crop, x:x + crop] for y, x in corners]


def ten_crop(image: np.ndarray, crop: int) -> np.ndarray:
    """[H, W, C] -> [10, crop, crop, C]: five_crop of the image, then five_crop of its horizontal flip."""
    return np.stack(five_crop(image, crop) + five_crop(image[:, ::-1], crop))


def preprocess(image: np.ndarray, *, resize: int = RESIZE, crop: int = CROP) -> np.ndarray:
    """One image (uint8 [H, W, C]) -> its ten crops uint8 [10, crop, crop, 3] (normalisation is the model's)."""
    return ten_crop(resize_shorter(image, resize), crop)


def ten_crop_mean(embed: EmbedFn, crops: np.ndarray) -> np.ndarray:
    """crops uint8 [B, 10, c, c, 3] -> mean over the 10 crops of embed(crop): float32 [B, D]."""
    b = crops.shape[0]
    flat = np.asarray(embed(crops.reshape((b * crops.shape[1],) + crops.shape[2:])), np.float64)
    return flat.reshape(b, crops.shape[1], -1).mean(axis=1).astype(np.float32)


# ---------------------------------------------------------------- models and weights

def _weights_hint(name: str) -> str:
    m = fs.FEATURE_MODELS[name]
    hint = (f"download {TORCHVISION_URL}{m.filename} (torchvision's ImageNet weights for {name}) on a machine with "
            "network access and pass its path with --weights (nothing is downloaded here)")
    if name == "vgg16":
        hint += ("; that file uses torch's legacy format, so re-save it first: torch.save(torch.load(f), "
                 "'vgg16.pth') or numpy.savez('vgg16.npz', **{k: v.numpy() for k, v in torch.load(f).items()})")
    return hint


def check_model(name: str) -> fs.FeatureModel:
    if name not in fs.FEATURE_MODELS:
        raise ValueError(f"Unknown --model {name!r}; choose one of {sorted(fs.FEATURE_MODELS)}.")
    return fs.FEATURE_MODELS[name]


def load_feature_model(name: str, weights: str | None):
    """Feature model `name` with torchvision weights from `weights` (.pth / .pt / .npz), BatchNorm in eval mode."""
    from flax import nnx

    from vgs_jax.models import weight_conversion as wc

    spec = check_model(name)
    if not weights or not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights file {weights!r} for --model={name} does not exist: {_weights_hint(name)}.")
    try:
        converted = spec.convert(wc.load_torchvision_state_dict(weights))
        model = nnx.eval_shape(lambda: spec.build(nnx.Rngs(0)))
        wc.apply_converted(model, converted)
    except ValueError as e:
        raise ValueError(f"--weights {weights!r} does not hold torchvision {name} weights ({e}); "
                         f"{_weights_hint(name)}.") from e
    return model


def make_embed_fn(model) -> EmbedFn:
    """A jit-compiled `uint8 [N, c, c, 3] -> float32 [N, D]` of an nnx feature model."""
    import jax
    from flax import nnx

    graphdef, state = nnx.split(model)
    apply = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x))
    return lambda crops: np.asarray(apply(state, crops))


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- extraction into a store

class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.done, self.start = total, enabled, 0, time.perf_counter()

    def update(self, n: int, final: bool = False) -> None:
        self.done += n
        if not self.enabled:
            return
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        print(f"\r[extract_image_features] {self.done}/{self.total} images "
              f"({100.0 * self.done / max(self.total, 1):5.1f}%), {rate:.1f} images/s, ETA {eta:.0f} s",
              end="\n" if final else "", file=sys.stderr, flush=True)


def extract_to_store(image_ids, load_image: Callable[[int], np.ndarray], directory: str, model: str,
                     embed: EmbedFn | Callable[[], EmbedFn], fingerprint: dict, *, batch_size: int = 32,
                     chunk_size: int = 1024, resize: int = RESIZE, crop: int = CROP,
                     on_chunk_done: Callable[[int], None] | None = None, progress: bool = True,
                     lazy_embed: bool = False) -> fs.ImageFeatureStore:
    """Ten-crop-mean vectors of `image_ids` (int [N], unique) not yet in the store, chunked and resumable.

    `load_image(image_id)` returns uint8 [H, W, C]. `embed` maps crops to vectors (or, with
    `lazy_embed`, is a no-argument factory called only if some chunk must be computed).
    `on_chunk_done(k)` runs after chunk k is saved (tests inject failures there).
    """
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"batch_size ({batch_size}) and chunk_size ({chunk_size}) must be positive.")
    ids = np.unique(np.asarray(image_ids, np.int64))
    if ids.size != np.asarray(image_ids).size:
        raise ValueError("extract_to_store: image_ids must be unique (de-duplicate by image_id first).")
    os.makedirs(directory, exist_ok=True)
    todo = np.setdiff1d(ids, fs.check_fingerprint(directory, model, fingerprint))
    chunks = [todo[i:i + chunk_size] for i in range(0, todo.size, chunk_size)]
    bar = _Progress(int(todo.size), progress)
    for k, chunk in enumerate(chunks):
        if fs.read_chunk(directory, model, k, chunk, fingerprint) is not None:
            bar.update(chunk.size)
            continue
        if lazy_embed:
            embed, lazy_embed = embed(), False
        out = []
        for start in range(0, chunk.size, batch_size):
            batch = chunk[start:start + batch_size]
            crops = np.zeros((batch_size, 10, crop, crop, 3), np.uint8)  # one compiled shape
            for j, image_id in enumerate(batch):
                crops[j] = preprocess(load_image(int(image_id)), resize=resize, crop=crop)
            out.append(ten_crop_mean(embed, crops)[:batch.size])
            bar.update(batch.size)
        fs.write_chunk(directory, model, k, chunk, np.concatenate(out), fingerprint)
        if on_chunk_done is not None:
            on_chunk_done(k)
    if progress and todo.size:
        bar.update(0, final=True)
    if not chunks:
        if not os.path.isfile(os.path.join(directory, model + ".json")):
            raise ValueError(f"extract_to_store: no images to extract for '{model}' in {directory}.")
        return fs.ImageFeatureStore(directory, model)
    return fs.consolidate(directory, model, chunks, fingerprint)


def _open_builder(dataset: str, data_dir: str):
    import tensorflow_datasets as tfds

    base = dataset.split("/")[0].split(":")[0]
    try:
        importlib.import_module(f"tfds_builders.{base}")
    except ModuleNotFoundError as e:
        if e.name not in (f"tfds_builders.{base}", "tfds_builders"):
            raise
    builder = tfds.builder(dataset, data_dir=data_dir, file_format="array_record")
    if not builder.is_prepared():
        raise FileNotFoundError(f"Dataset {dataset!r} is not prepared in --data_dir={data_dir!r}; build it first "
                                "(vgs_jax.data_sources.open_split(..., build_if_missing=True)).")
    return builder


def image_index(source) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Unique image ids int64 [M] ascending, the index of each id's first example int64 [M], and that
    example's `image_file` (str [M]; None when the examples have no `image_file`) of a source.

    TFDS data sources are read without decoding images."""
    info, raw = getattr(source, "dataset_info", None), getattr(source, "data_source", None)
    n = len(source)
    if info is not None and raw is not None and hasattr(raw, "__getitems__"):
        import tensorflow_datasets as tfds

        skip = {k: tfds.decode.SkipDecoding() for k, f in info.features.items()
                if isinstance(f, tfds.features.Image)}
        examples = (info.features.deserialize_example_np(rec, decoders=skip) for start in range(0, n, 1024)
                    for rec in raw.__getitems__(list(range(start, min(start + 1024, n)))))
    else:
        examples = (source[i] for i in range(n))
    ids, files = np.zeros(n, np.int64), []
    for i, example in enumerate(examples):
        ids[i] = example["image_id"]
        if "image_file" in example:
            name = example["image_file"]
            files.append(name.decode() if isinstance(name, bytes) else str(name))
    unique, first = np.unique(ids, return_index=True)
    return unique, first.astype(np.int64), [files[i] for i in first] if files else None


def original_images(files: dict[int, str], corpus_folder: str, dataset: str) -> dict[int, str]:
    """{image_id: path of the original image}; FileNotFoundError listing the missing ones and the folder."""
    paths = {image_id: os.path.join(corpus_folder, name) for image_id, name in files.items()}
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} original images of {dataset!r} are missing from the manual directory "
            f"{corpus_folder} (e.g. {', '.join(missing[:3])}). Image vectors follow platalea's recipe on the "
            "original files: keep the corpus where the dataset was built from and pass that manual directory with "
            "--manual_dir.")
    return paths


def extract_image_features(dataset: str, data_dir: str, *, splits: str | Sequence[str] = "all",
                           model: str = "resnet152", weights: str | None = None, batch_size: int = 32,
                           chunk_size: int = 1024, image_size: int = CROP, manual_dir: str | None = None,
                           on_chunk_done: Callable[[int], None] | None = None,
                           progress: bool = True) -> fs.ImageFeatureStore:
    """Extract `model` vectors for every image of `splits` ('all' or names) of a prepared dataset into
    `<dataset dir>/image_features/<model>.*` (see module doc: originals come from `manual_dir`); returns the
    store."""
    check_model(model)
    if not weights or not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights file {weights!r} for --model={model} does not exist: "
                                f"{_weights_hint(model)}.")
    if image_size < 32:
        raise ValueError(f"--image_size must be >= 32 (the models' total stride), got {image_size}.")
    builder = _open_builder(dataset, data_dir)
    available = sorted(builder.info.splits.keys())
    names = available if splits in ("all", ["all"], ("all",)) else (
        [s.strip() for s in splits.split(",") if s.strip()] if isinstance(splits, str) else list(splits))
    unknown = [s for s in names if s not in available]
    if unknown or not names:
        raise ValueError(f"--split {splits!r}: unknown split(s) {unknown}; available: {available} (or 'all').")
    where: dict[int, tuple] = {}
    files: dict[int, str] = {}
    for name in names:
        source = builder.as_data_source(split=name)
        ids, first, image_files = image_index(source)
        for k, (image_id, index) in enumerate(zip(ids.tolist(), first.tolist())):
            where.setdefault(image_id, (source, index))
            if image_files is not None:
                files.setdefault(image_id, image_files[k])
    resize = int(round(image_size * RESIZE / CROP))
    fingerprint = {"model": model, "weights_sha256": file_sha256(weights), "resize": resize, "crop": int(image_size)}
    if files:
        from tfds_builders import manual_corpus

        manual = SimpleNamespace(_manual_dir=manual_dir or os.path.join(data_dir, "downloads", "manual"))
        originals = original_images(files, manual_corpus.corpus_dir(manual, builder.name, data_dir), dataset)
        fingerprint["images"] = "original files"  # never mixed with vectors of the stored crops

        def load_image(image_id: int) -> np.ndarray:
            return manual_corpus.read_image(originals[image_id], size=None)
    else:
        def load_image(image_id: int) -> np.ndarray:
            source, index = where[image_id]
            return np.asarray(source[index]["image"])

    return extract_to_store(np.asarray(sorted(where), np.int64), load_image, fs.store_dir(builder.data_dir), model,
                            lambda: make_embed_fn(load_feature_model(model, weights)), fingerprint,
                            batch_size=batch_size, chunk_size=chunk_size, resize=resize, crop=int(image_size),
                            on_chunk_done=on_chunk_done, progress=progress, lazy_embed=True)


# ---------------------------------------------------------------- command line

def _flag_values():
    from absl import flags

    fv = flags.FlagValues()  # private: other binaries' flags (split, batch_size) may share a process
    flags.DEFINE_string("dataset", None, "TFDS name[/config], e.g. spoken_shapes/small.", flag_values=fv)
    flags.DEFINE_string("data_dir", None, "TFDS data_dir holding the prepared dataset.", flag_values=fv)
    flags.DEFINE_string("split", "all", "'all' or comma-separated split names.", flag_values=fv)
    flags.DEFINE_string("manual_dir", None, "Manual directory the dataset was built from, holding the original "
                        "images (default: <data_dir>/downloads/manual).", flag_values=fv)
    flags.DEFINE_enum("model", "resnet152", sorted(fs.FEATURE_MODELS), "Feature model.", flag_values=fv)
    flags.DEFINE_string("weights", None, "torchvision ImageNet weights (.pth zip format or .npz).", flag_values=fv)
    flags.DEFINE_integer("batch_size", 32, "Images per step (x10 crops).", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("chunk_size", 1024, "Images per saved chunk (the unit of resumption).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("image_size", CROP, "TESTING ONLY: crop side (resize scales with it); keep 224.",
                         lower_bound=32, flag_values=fv)
    flags.mark_flags_as_required(["dataset", "data_dir"], flag_values=fv)
    return fv


FLAGS = _flag_values()


def parse_own_flags(argv: Sequence[str]) -> list[str]:
    """Parse this binary's flags from `argv` (argv[0] = program) into `FLAGS`, from their defaults;
    returns the remaining arguments. A bad flag exits with the message and the flag list."""
    from absl import flags

    FLAGS.unparse_flags()
    try:
        return FLAGS(list(argv))
    except flags.Error as e:
        sys.exit(f"{e}\n\nFlags:\n{FLAGS.main_module_help() or FLAGS}")


def parse_flags(argv: Sequence[str]) -> list[str]:
    """`app.run`'s flags_parser: absl's own flags (--verbosity, ...) then ours."""
    from absl import flags

    return parse_own_flags(flags.FLAGS(list(argv), known_only=True))


def main(argv: Sequence[str]) -> fs.ImageFeatureStore:
    """Run the extraction with the parsed `FLAGS`; prints where the store is."""
    if len(argv) > 1:
        sys.exit(f"Unexpected arguments: {list(argv[1:])}")
    store = extract_image_features(FLAGS.dataset, os.path.expanduser(FLAGS.data_dir), splits=FLAGS.split,
                                   model=FLAGS.model, weights=FLAGS.weights, batch_size=FLAGS.batch_size,
                                   chunk_size=FLAGS.chunk_size, image_size=FLAGS.image_size,
                                   manual_dir=FLAGS.manual_dir and os.path.expanduser(FLAGS.manual_dir))
    print(f"{len(store)} image vectors ({store.dim}-d) in {store.directory}/{store.model}.npy")
    return store


if __name__ == "__main__":
    from absl import app

    app.run(main, flags_parser=parse_flags)
