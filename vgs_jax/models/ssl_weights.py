"""wav2vec 2.0 / HuBERT weights from a local checkpoint into `wav2vec2.Wav2Vec2Model`, without torch or network.

Layouts (`load_state_dict(path)`):
- Hugging Face: a folder with `config.json` and `model.safetensors` (read with NumPy: an 8-byte header
  length, a JSON header of dtype/shape/offsets, raw little-endian data) or `pytorch_model.bin` (torch zip
  pickle, read by `weight_conversion`'s restricted unpickler); or one of those files. Keys of
  `Wav2Vec2Model` / `HubertModel`, optionally under "wav2vec2." / "hubert." (the task heads' prefix).
- fairseq: a `.pt` checkpoint (`{"model": state dict, "cfg" or "args": ...}`) as the wav2vec 2.0 / HuBERT
  releases ship them (e.g. `wav2vec_small.pt`, `hubert_base_ls960.pt`); keys optionally under
  "w2v_encoder.w2v_model." (fine-tuned CTC checkpoints). The pickle is read without torch: torch's tensor
  rebuilds are done in NumPy and every other class it names (fairseq's omegaconf cfg) becomes an inert
  placeholder, so no foreign code runs. A pre-1.6 (non-zip) torch file is refused with how to re-save it.

`convert(state_dict, model)` maps either layout to the model's parameter tree (torch Conv1d [out, in, k]
-> [k, in, out], Linear [out, in] -> [in, out], LayerNorm/GroupNorm weight -> scale, the positional conv's
weight norm g [1, 1, k] / v [out, in / groups, k] -> weight_g [k] / weight_v [k, in / groups, out]).
Pre-training-only tensors (mask embedding, quantizer, projection heads, HuBERT's label embeddings, CTC
heads) are ignored, and so are encoder layers past the model's `num_layers` (FaST-VGS keeps the first 8
of 12); any other mismatch is an error naming the tensor.
"""
import json
import os
import pickle
import re

import numpy as np

from vgs_jax.models import weight_conversion

DOWNLOAD_HINT = ("download the checkpoint on a machine with network access (Hugging Face: the model folder's "
                 "config.json and model.safetensors, e.g. facebook/wav2vec2-base or facebook/hubert-base-ls960; "
                 "fairseq: wav2vec_small.pt or hubert_base_ls960.pt) and copy it here")

_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                       "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_PREFIXES = ("wav2vec2.", "hubert.", "w2v_encoder.w2v_model.", "w2v_model.")
_IGNORED = re.compile(r"^(masked_spec_embed|mask_emb|quantizer\.|project_q\.|project_hid\.|final_proj\.|"
                      r"label_embs_concat|lm_head\.|w2v_encoder\.proj\.|target_glu\.)")


def read_safetensors(path) -> dict[str, np.ndarray]:
    """{name: array} of a `.safetensors` file, with NumPy only."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] == "BF16":
            import ml_dtypes
            dtype = ml_dtypes.bfloat16
        elif info["dtype"] in _SAFETENSORS_DTYPES:
            dtype = _SAFETENSORS_DTYPES[info["dtype"]]
        else:
            raise ValueError(f"read_safetensors: '{path}' tensor '{name}' has dtype {info['dtype']}, which this "
                             f"reader does not handle; re-save it as float32.")
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + start:8 + n + end], dtype=dtype).reshape(info["shape"]).copy()
    return out


class _Opaque:
    """Stands for any non-tensor class in a fairseq pickle (its cfg): keeps its arguments, runs nothing."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state


class _FairseqUnpickler(weight_conversion.TorchUnpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except pickle.UnpicklingError:  # any class a state dict does not need
            return _Opaque


def _hf_file(folder: str) -> str:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(f"load_state_dict: the folder '{folder}' has neither model.safetensors nor "
                            f"pytorch_model.bin; {DOWNLOAD_HINT}.")


def check_exists(path) -> None:
    """FileNotFoundError naming `path` and what to download when there is no checkpoint there."""
    if not os.path.exists(os.fspath(path)):
        raise FileNotFoundError(f"wav2vec2/HuBERT checkpoint '{os.fspath(path)}' does not exist (config.model.speech."
                                f"weights); {DOWNLOAD_HINT}.")


def load_state_dict(path) -> tuple[dict[str, np.ndarray], str]:
    """(state dict {torch key: array}, "hf" | "fairseq") from a checkpoint folder or file (see module doc)."""
    path = os.fspath(path)
    check_exists(path)
    if os.path.isdir(path):
        path = _hf_file(path)
    if path.endswith(".safetensors"):
        return read_safetensors(path), "hf"
    if path.endswith(".bin"):
        return {str(k): np.asarray(v) for k, v in weight_conversion.load_pth(path).items()}, "hf"
    if path.endswith(".pt"):
        obj = weight_conversion.load_pth(path, _FairseqUnpickler)
        if "model" not in obj or not isinstance(obj["model"], dict):
            raise ValueError(f"load_state_dict: '{path}' has no 'model' state dict (keys {sorted(obj)[:8]}); "
                             "pass a fairseq wav2vec 2.0 / HuBERT checkpoint.")
        return {str(k): np.asarray(v) for k, v in obj["model"].items()}, "fairseq"
    raise ValueError(f"load_state_dict: '{path}' must be a Hugging Face folder, a .safetensors / .bin file, "
                     "or a fairseq .pt checkpoint.")


def _fairseq_to_hf(key: str) -> str:
    key = re.sub(r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv.", key)
    key = re.sub(r"^feature_extractor\.conv_layers\.(\d+)\.2\.(1\.)?", r"feature_extractor.conv_layers.\1.layer_norm.",
                 key)
    key = re.sub(r"^layer_norm\.", "feature_projection.layer_norm.", key)
    key = re.sub(r"^post_extract_proj\.", "feature_projection.projection.", key)
    key = re.sub(r"^encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.conv.", key)
    key = re.sub(r"\.self_attn\.", ".attention.", key)
    key = re.sub(r"\.self_attn_layer_norm\.", ".layer_norm.", key)
    key = re.sub(r"\.fc1\.", ".feed_forward.intermediate_dense.", key)
    return re.sub(r"\.fc2\.", ".feed_forward.output_dense.", key)


def _normalise(state_dict: dict, layout: str) -> dict:
    out = {}
    for key, value in state_dict.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        if layout == "fairseq":
            key = _fairseq_to_hf(key)
        key = key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v")
        out[key] = value
    return out


def _our_path_to_hf(path: tuple) -> tuple[str, str]:
    """Our parameter path -> (HF key, transform name)."""
    name = "/".join(str(p) for p in path)
    leaf = {"kernel": "weight", "scale": "weight", "bias": "bias"}.get(path[-1], path[-1])
    rules = [
        (r"^feature_extractor/convs/(\d+)/kernel$", "feature_extractor.conv_layers.{0}.conv.weight", "conv"),
        (r"^feature_extractor/convs/(\d+)/bias$", "feature_extractor.conv_layers.{0}.conv.bias", "copy"),
        (r"^feature_extractor/norms/(\d+)/\w+$", "feature_extractor.conv_layers.{0}.layer_norm." + leaf, "copy"),
        (r"^feature_layer_norm/\w+$", "feature_projection.layer_norm." + leaf, "copy"),
        (r"^feature_projection/kernel$", "feature_projection.projection.weight", "linear"),
        (r"^feature_projection/bias$", "feature_projection.projection.bias", "copy"),
        (r"^pos_conv/weight_v$", "encoder.pos_conv_embed.conv.weight_v", "conv"),
        (r"^pos_conv/weight_g$", "encoder.pos_conv_embed.conv.weight_g", "flat"),
        (r"^pos_conv/bias$", "encoder.pos_conv_embed.conv.bias", "copy"),
        (r"^encoder_layer_norm/\w+$", "encoder.layer_norm." + leaf, "copy"),
        (r"^layers/(\d+)/attention/(\w+)/kernel$", "encoder.layers.{0}.attention.{1}.weight", "linear"),
        (r"^layers/(\d+)/(attention/)?(\w+)/bias$", None, "copy"),
        (r"^layers/(\d+)/(\w+)/scale$", "encoder.layers.{0}.{1}.weight", "copy"),
        (r"^layers/(\d+)/(\w+)/kernel$", "encoder.layers.{0}.feed_forward.{1}.weight", "linear"),
    ]
    for pattern, template, kind in rules:
        m = re.match(pattern, name)
        if not m:
            continue
        if template is None:  # a bias in a layer: attention projection, LayerNorm or feed-forward Linear
            i, attn, sub = m.groups()
            group = "attention." if attn else ("" if "norm" in sub else "feed_forward.")
            return f"encoder.layers.{i}.{group}{sub}.bias", kind
        return template.format(*m.groups()), kind
    raise ValueError(f"ssl_weights: no checkpoint name for parameter '{name}'.")


_TRANSFORMS = {"conv": lambda w: np.transpose(w, (2, 1, 0)), "linear": lambda w: w.T,
               "flat": lambda w: w.reshape(-1), "copy": lambda w: w}


def convert(state_dict: dict, model, layout: str = "hf") -> dict:
    """A checkpoint's state dict ("hf" or "fairseq" names) -> nested dict of `model`'s parameters
    (a `Wav2Vec2Model`, possibly abstract), checked name by name and shape by shape."""
    from flax import nnx
    sd = _normalise(state_dict, layout)
    ours = weight_conversion.flatten_tree(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    out, used = {}, set()
    missing = []
    for path, value in ours.items():
        key, kind = _our_path_to_hf(path)
        if key not in sd:
            missing.append(key)
            continue
        w = _TRANSFORMS[kind](np.asarray(sd[key], np.float32))
        if w.shape != tuple(value.shape):
            raise ValueError(f"ssl_weights.convert: checkpoint tensor '{key}' has shape {sd[key].shape}, which "
                             f"gives {w.shape}, but the model's '{'/'.join(map(str, path))}' is {tuple(value.shape)}; "
                             "build the encoder with the checkpoint's shapes (config.model.speech.size 'base' "
                             "or 'large', or its fields).")
        weight_conversion.set_path(out, path, np.ascontiguousarray(w))
        used.add(key)
    num_layers = len(model.layers)
    extra = sorted(k for k in sd if k not in used and not _IGNORED.match(k)
                   and not (re.match(r"^encoder\.layers\.(\d+)\.", k)
                            and int(k.split(".")[2]) >= num_layers))
    if missing or extra:
        raise ValueError(f"ssl_weights.convert: the {layout} checkpoint does not match the model: missing "
                         f"{weight_conversion.few_names(missing)}, unexpected {weight_conversion.few_names(extra)}; check "
                         "the layout and the feature-extractor norm ('group' for Base, 'layer' for Large).")
    return out


def model_fields_from_hf_config(config: dict) -> dict:
    """`Wav2Vec2Model` fields from a Hugging Face `config.json` dict (Wav2Vec2Config / HubertConfig)."""
    unsupported = {k: config.get(k) for k, ok in [("hidden_act", "gelu"), ("feat_extract_activation", "gelu"),
                                                  ("conv_pos_batch_norm", False), ("feat_proj_layer_norm", True)]
                   if config.get(k, ok) != ok}
    if unsupported:
        raise ValueError(f"model_fields_from_hf_config: settings {unsupported} are not implemented in "
                         "vgs_jax.models.wav2vec2.")
    return dict(conv_layers=tuple(zip(config["conv_dim"], config["conv_kernel"], config["conv_stride"])),
                conv_bias=bool(config["conv_bias"]), feat_norm=config["feat_extract_norm"],
                hidden=config["hidden_size"], num_layers=config["num_hidden_layers"],
                num_heads=config["num_attention_heads"], ff_dim=config["intermediate_size"],
                layer_norm_first=bool(config["do_stable_layer_norm"]),
                pos_kernel=config["num_conv_pos_embeddings"], pos_groups=config["num_conv_pos_embedding_groups"])


def load_into(model, path) -> None:
    """Reads the checkpoint at `path` (folder or file, either layout) into `model` (a `Wav2Vec2Model`) in place."""
    state_dict, layout = load_state_dict(path)
    weight_conversion.apply_converted(model, convert(state_dict, model, layout))
