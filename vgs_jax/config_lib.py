"""Shared config defaults and the `arg` parser used by `configs/*.py`; loading config files.

Every config file exposes `get_config(arg=None) -> ml_collections.ConfigDict` built on
`base_config()` (usually through a recipe builder of `configs/__init__.py`, installed as
`vgs_jax.configs`), so all configs have the same fields and a typo in an override
(`--config.optimizer.lr_maxx=1`) is an error rather than a silent new field.
"""

import importlib.util
import os
from typing import Any

from absl import flags
import ml_collections
from ml_collections import config_flags

# Fields that may change between a run and its resumption in the same workdir.
RESUMABLE_FIELDS = (
    "num_epochs",
    "num_train_steps",
    "log_every_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
    "keep_checkpoints",
    "eval_batch_size",
    "dataset.data_dir",
    "dataset.build_if_missing",
    "train.embedding_cache_chunks",  # memory only: the gradient is the same
)


def default_data_dir() -> str:
    """Where TFDS datasets are built and read: $TFDS_DATA_DIR or ~/tensorflow_datasets."""
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets"))


def base_config() -> ml_collections.ConfigDict:
    """Defaults shared by every config: platalea's speech-image recipe (§1 of the reference notes)."""
    c = ml_collections.ConfigDict()
    c.seed = 123  # platalea's seed; also seeds the data order
    c.batch_size = 32  # GLOBAL batch over all devices; every loss sees all of it as negatives
    c.eval_batch_size = 64  # batch size for embedding the validation/test split
    c.num_epochs = 32  # training length in epochs of the train split ...
    c.num_train_steps = -1  # ... unless this is > 0, then it is the number of steps

    c.dataset = ml_collections.ConfigDict()
    c.dataset.name = "spoken_shapes/small"  # TFDS name[/config]
    c.dataset.data_dir = default_data_dir()  # TFDS data_dir
    c.dataset.build_if_missing = False  # generate the dataset first if it is not built (generated corpora only)
    c.dataset.train_split = "train"
    c.dataset.eval_split = "validation"  # used for periodic validation and best-checkpoint selection
    c.dataset.image_key = "image"  # "image" (pixels) or "image_features" (precomputed vectors)
    # Which stored vectors (python -m vgs_jax.extract_image_features --model=...) when several exist.
    c.dataset.image_features_model = ml_collections.config_dict.placeholder(str)
    # TTS augmentation (vgs_jax/caption_mix.py): the share of spoken train captions kept, and the
    # synthetic split mixed in ("" = none) at synthetic_ratio of the stream ("rest": only captions
    # whose spoken version was dropped; "all"). The defaults train on the train split as it is.
    c.dataset.tts = ml_collections.ConfigDict(dict(
        spoken_fraction=1.0, synthetic_split="", synthetic_for="rest", synthetic_ratio=0.0))

    c.features = ml_collections.ConfigDict()
    c.features.recipe = "platalea_mfcc"  # see vgs_jax.audio_features.RECIPES
    c.features.max_frames = 2048  # truncate longer utterances (platalea: 2048)
    c.features.bucket_boundaries = (256, 512, 768, 1024, 1536, 2048)  # padded lengths in frames

    c.model = ml_collections.ConfigDict()
    c.model.speech_encoder = "platalea_gru"  # key of models.registry.SPEECH_ENCODERS
    c.model.image_encoder = "linear"  # key of models.registry.IMAGE_ENCODERS
    # The chosen encoder's keyword arguments; configs of other encoders replace the whole dict.
    c.model.speech = ml_collections.ConfigDict(
        dict(
            conv_channels=64,  # Conv1D 39 -> 64
            conv_kernel=6,
            conv_stride=2,
            conv_bias=False,  # platalea: no bias, no activation after the conv
            hidden=1024,  # GRU units per direction (embedding = 2 * hidden)
            num_layers=4,  # stacked bidirectional GRU layers
            attention_hidden=128,  # vectorial attention pooling hidden size
            mask_padding=True,  # False reproduces platalea's unmasked pooling (batch-dependent)
        )
    )
    c.model.image = ml_collections.ConfigDict(
        dict(
            input_dim=2048,  # "linear": size of precomputed image vectors (ResNet-152: 2048)
            channels=(32, 64, 128, 128),  # "conv": channels of the pixel CNN
        )
    )
    c.model.similarity = "cosine"  # caption-image score: cosine, or SISA/MISA/SIMA/pooled_dot on frame maps
    c.model.matchmap_chunk = 0  # > 0: matchmap pairs per block in the train step (memory); 0: one block
    c.model.temperature_init = 0.07  # initial temperature (infonce divides by it; sigmoid multiplies by 1/it)
    c.model.logit_bias_init = ml_collections.config_dict.placeholder(float)  # learned logit bias (sigmoid loss)
    c.model.remat = False  # both towers: recompute each layer's / block's activations in the backward pass (models/remat.py)
    c.model.dtype = "float32"  # encoder matmuls, forward and backward: float32 / bfloat16 / float16 (state, loss: float32)

    c.loss = ml_collections.ConfigDict()
    c.loss.name = "platalea_hinge"  # key of objectives.registry.OBJECTIVES
    c.loss.margin = 0.2  # hinge margin (hinge losses)
    c.loss.exclude_same_image = False  # True: captions of the same image are not negatives (embedding losses)
    c.loss.chunked = False  # True: ppermute ring over devices (every loss), per-device scores stay (B/D)^2, not B^2
    c.loss.reference_quirk = False  # semihard_hinge: ResDAVEnet-VQ's mask-multiply row max (anchor §3.5)
    c.loss.oracle_tagger = False  # visual_tags: the speech model learns the scene's concepts, not the tagger's outputs
    # > 0: adds ssl_weight x HuBERT's masked prediction of k-means targets (objectives.masked_prediction; needs a
    # wav2vec2/hubert speech encoder with model.speech.ssl_clusters > 0). Span masks: mask_prob, mask_length
    # frames (HuBERT 0.8, 10); cosine logits / ssl_temperature (0.1).
    c.loss.ssl_weight = 0.0
    c.loss.mask_prob = 0.8
    c.loss.mask_length = 10
    c.loss.ssl_temperature = 0.1
    # loss.ssl_weight > 0: the k-means of the targets (vgs_jax.ssl_targets), fitted on MFCC frames of the train split
    c.ssl_targets = ml_collections.ConfigDict()
    c.ssl_targets.fit_utterances = 1000  # random training utterances read for the fit
    c.ssl_targets.fit_frames = 100_000  # at most this many of their frames, drawn at random
    c.ssl_targets.kmeans_iters = 50  # Lloyd iterations after k-means++ (fewer if converged)

    c.train = ml_collections.ConfigDict()
    # K > 1: embedding cache ("gradient cache", vgs_jax.embedding_cache): embed the global batch in K
    # sub-batches without keeping activations, take the loss and its gradient w.r.t. all B embeddings,
    # then back-propagate sub-batch by sub-batch. Same gradient as one pass over B, activation memory of
    # B / K examples. NOT gradient accumulation: summing K losses on B / K examples would show each anchor
    # only B / K - 1 negatives (a different, easier contrastive objective). Needs a model without BatchNorm
    # or VQ state, and batch_size divisible by K. 1 = off.
    c.train.embedding_cache_chunks = 1

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.name = "adam"  # "adam" or "sgd" (with momentum, PyTorch semantics)
    c.optimizer.b1 = 0.9  # adam betas (DAVEnet's Adam option: 0.95)
    c.optimizer.b2 = 0.999
    c.optimizer.momentum = 0.9  # sgd momentum (DAVEnet)
    c.optimizer.schedule = "cyclic"  # "cyclic" (platalea §1.7), "warmup_cosine", "constant" or "step"
    c.optimizer.decay_epochs = 40  # step: lr_max * decay_factor ** (epoch // decay_epochs), epochs from 1
    c.optimizer.decay_factor = 0.1
    c.optimizer.lr_max = 2e-4  # cyclic: peak; warmup_cosine: peak; constant: the rate
    c.optimizer.lr_min = 1e-6  # cyclic: trough; warmup_cosine: final rate
    c.optimizer.cycle_epochs = 4  # cyclic: period in epochs (platalea: stepsize = 4 epochs)
    c.optimizer.warmup_steps = 0  # warmup_cosine: linear warm-up steps
    c.optimizer.weight_decay = 0.0  # Adam L2 regularisation (platalea --l2_regularization)
    c.optimizer.grad_clip_norm = 0.0  # > 0 clips the global gradient norm

    c.init_from = ""  # workdir of a finished run: warm start from its best checkpoint (ResDAVEnet-VQ "->")

    c.log_every_steps = 50  # console, metrics.jsonl, TensorBoard
    c.eval_every_steps = 1000  # validation recall (and best checkpoint); also at the last step
    c.checkpoint_every_steps = 1000  # periodic checkpoint; also at the last step
    c.keep_checkpoints = 3  # periodic checkpoints kept (the best is kept separately)
    return c


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """Parses a config argument such as "tiny" or "tiny,hidden=64" into typed values.

    Each name in `defaults` is an allowed key; a bare name sets a boolean to True; values are
    converted to the type of their default. Unknown keys raise ValueError listing the valid ones.
    """
    result = ml_collections.ConfigDict(defaults)
    if not arg:
        return result
    for item in arg.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if key not in defaults:
            raise ValueError(
                f"Unknown config argument {key!r} in {arg!r}; valid arguments: {sorted(defaults)}."
            )
        default = defaults[key]
        if not sep:
            if not isinstance(default, bool):
                raise ValueError(f"Config argument {key!r} needs a value, e.g. {key}={default!r}.")
            result[key] = True
        elif isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"Config argument {key!r} is boolean; got {value!r}.")
            result[key] = value.lower() in ("true", "1")
        else:
            result[key] = type(default)(value)
    return result


def flatten(config: ml_collections.ConfigDict | dict, prefix: str = "") -> dict[str, Any]:
    """Flattens a (nested) config into {"a.b.c": value} with tuples as lists (JSON-comparable)."""
    items = config.items() if hasattr(config, "items") else config
    flat = {}
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, (ml_collections.ConfigDict, dict)):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def incompatible_fields(saved: dict, current: ml_collections.ConfigDict) -> list[str]:
    """Names of fields (dotted) whose values differ and may not change when resuming a run.
    A field the saved config lacks matches its `base_config()` default: a run saved before a field
    was added resumes as long as the field keeps the default (which keeps the old behaviour)."""
    a, b = flatten(saved), flatten(current.to_dict())
    defaults = flatten(base_config().to_dict())
    added_at_default = {k for k in set(b) - set(a) if k in defaults and b[k] == defaults[k]}
    return sorted(
        k for k in set(a) | set(b)
        if k not in RESUMABLE_FIELDS and k not in added_at_default and a.get(k) != b.get(k)
    )


def packaged_configs_dir() -> str | None:
    """The folder of the configs installed with vgs_jax as `vgs_jax.configs` (the checkout's `configs/`
    in an editable install, a copy in a regular one); None when vgs_jax is not installed."""
    spec = importlib.util.find_spec("vgs_jax.configs")
    return spec.submodule_search_locations[0] if spec and spec.submodule_search_locations else None


def packaged_config_names() -> list[str]:
    """Names of the installed configs ("shapes_gru", ...); empty when vgs_jax is not installed."""
    folder = packaged_configs_dir()
    names = os.listdir(folder) if folder else []
    return sorted(n[:-3] for n in names if n.endswith(".py") and n != "__init__.py")


def resolve_config_path(path: str) -> str:
    """The config file that `path` names: `path` itself if it is a file, else for a relative
    "configs/NAME.py", "NAME.py" or "NAME" the installed copy of configs/NAME.py, so the
    same spec works from any folder once vgs_jax is installed."""
    if os.path.isfile(path):
        return path
    installed = packaged_config_names()
    parts = os.path.normpath(path).split(os.sep)
    name = parts[-1].removesuffix(".py")
    if not os.path.isabs(path) and parts[:-1] in ([], ["configs"]) and name in installed:
        return os.path.join(packaged_configs_dir(), name + ".py")
    hint = (f"installed configs (give configs/NAME.py or NAME): {', '.join(installed)}" if installed else
            "vgs_jax is not installed with its configs: run `pip install -e .` in the checkout")
    raise FileNotFoundError(f"Config file {path!r} does not exist (working directory {os.getcwd()!r}); {hint}.")


class _InstalledConfigParser(flags.ArgumentParser):
    """Wraps ml_collections' config-file parser: the file is found by `resolve_config_path` first."""

    def __init__(self, parser: flags.ArgumentParser):
        self._parser = parser

    def parse(self, spec: str):
        path, sep, arg = spec.partition(":")
        try:
            path = resolve_config_path(path)
        except FileNotFoundError as e:
            raise ValueError(str(e)) from e  # absl reports it as a bad value of the flag
        return self._parser.parse(path + sep + arg)

    def flag_type(self) -> str:
        return self._parser.flag_type()


def define_config_flag(name: str, help_string: str) -> flags.FlagHolder:
    """`config_flags.DEFINE_config_file` (locked config, `--NAME.field=value` overrides) whose file
    may also be an installed config: `--NAME=configs/shapes_gru.py:tiny` works from any folder."""
    holder = config_flags.DEFINE_config_file(name, None, help_string, lock_config=True)
    flags.FLAGS[name].parser = _InstalledConfigParser(flags.FLAGS[name].parser)
    return holder


def load_config(spec: str) -> ml_collections.ConfigDict:
    """Loads "path/to/config.py[:arg]" as `--config` does (for tests and notebooks); locked.

    The path may also name an installed config ("configs/NAME.py" or "NAME"; see `resolve_config_path`).
    """
    path, _, arg = spec.partition(":")
    path = resolve_config_path(path)
    module_spec = importlib.util.spec_from_file_location("_vgs_jax_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg or None)
    config.lock()
    return config
