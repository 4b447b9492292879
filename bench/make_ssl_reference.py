"""Writes the wav2vec 2.0 / HuBERT reference fixtures of tests/wav2vec2_test.py (needs torch + transformers).

    python3 -m venv /tmp/ssl_ref && /tmp/ssl_ref/bin/pip install "torch==2.13.0" "transformers==5.24.0" \
        "safetensors==0.8.0" "numpy==2.4.6"
    /tmp/ssl_ref/bin/python bench/make_ssl_reference.py --out=tests/data/ssl_reference

(The fixtures in the repo were made with the CPU build of that torch, `torch==2.13.0+cpu`, and Python 3.11.)

Builds two tiny randomly initialised Hugging Face models (seeded) and saves, per model, a folder in the
Hugging Face layout (`config.json` + `model.safetensors`) and `outputs.npz` (input waveform, its sample
mask, every entry of `output_hidden_states` and the conv features):
- `wav2vec2/`: Wav2Vec2Model, "group" feature norm, post-LN encoder (the Base layout); no padding (HF's
  GroupNorm ignores the attention mask).
- `hubert/`: HubertModel, "layer" feature norm with conv biases, pre-LN encoder (the Large layout); a
  padded batch with an attention mask. Also `hubert_fairseq.pt`: the same weights under fairseq's names
  in a fairseq-style checkpoint (`{"model": state dict, "cfg": an object}`), and `hubert_ctc.bin`: them
  under "hubert." (as a task model such as HubertForCTC saves them) in torch's zip pickle, both torch.save.
`reference.json` holds the versions used and HF's parameter counts of the published Base and Large shapes.
The tests read all of it with NumPy only (no torch).
"""
import argparse
import json
import os

import numpy as np
import torch
import transformers

TINY = dict(conv_dim=(16, 16, 16), conv_kernel=(10, 3, 2), conv_stride=(5, 2, 2), hidden_size=32,
            num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
            feat_proj_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0)


class FairseqConfig:
    """Stands for fairseq's omegaconf cfg: an object of a class the test's unpickler does not know."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def fairseq_names(state_dict: dict, num_conv: int, feat_norm: str) -> dict:
    """HF keys -> fairseq wav2vec2 / HuBERT keys."""
    out = {}
    for key, value in state_dict.items():
        k = key
        for i in range(num_conv):
            k = k.replace(f"feature_extractor.conv_layers.{i}.conv.", f"feature_extractor.conv_layers.{i}.0.")
            norm = f"feature_extractor.conv_layers.{i}.2.1." if feat_norm == "layer" else \
                f"feature_extractor.conv_layers.{i}.2."
            k = k.replace(f"feature_extractor.conv_layers.{i}.layer_norm.", norm)
        k = (k.replace("feature_projection.layer_norm.", "layer_norm.")
             .replace("feature_projection.projection.", "post_extract_proj.")
             .replace("encoder.pos_conv_embed.conv.", "encoder.pos_conv.0.")
             .replace(".attention.", ".self_attn.").replace(".layer_norm.", ".self_attn_layer_norm.")
             .replace(".feed_forward.intermediate_dense.", ".fc1.").replace(".feed_forward.output_dense.", ".fc2."))
        if k.startswith("encoder.self_attn_layer_norm."):
            k = k.replace("encoder.self_attn_layer_norm.", "encoder.layer_norm.")
        k = k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v")
        k = "mask_emb" if k == "masked_spec_embed" else k
        out[k] = value
    return out


def save_model(model, wave, mask, folder):
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    with torch.no_grad():
        out = model(torch.from_numpy(wave), attention_mask=torch.from_numpy(mask.astype(np.int64)),
                    output_hidden_states=True)
        conv = model.feature_extractor(torch.from_numpy(wave)).transpose(1, 2)
    arrays = {f"hidden_{i}": h.numpy() for i, h in enumerate(out.hidden_states)}
    np.savez_compressed(os.path.join(folder, "outputs.npz"), wave=wave, mask=mask, conv=conv.numpy(),
                        last=out.last_hidden_state.numpy(), **arrays)


def parameter_count(config_cls, model_cls, **fields) -> int:
    with torch.device("meta"):
        model = model_cls(config_cls(**fields))
    return sum(p.numel() for p in model.parameters())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="tests/data/ssl_reference")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal((2, 2000))).astype(np.float32)

    torch.manual_seed(0)
    w2v = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(
        **TINY, feat_extract_norm="group", conv_bias=False, do_stable_layer_norm=False))
    save_model(w2v, wave, np.ones(wave.shape, bool), os.path.join(args.out, "wav2vec2"))

    torch.manual_seed(1)
    hub = transformers.HubertModel(transformers.HubertConfig(
        **TINY, feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True))
    mask = np.ones(wave.shape, bool)
    mask[1, 1500:] = False
    padded = np.where(mask, wave, 0.0).astype(np.float32)
    folder = os.path.join(args.out, "hubert")
    save_model(hub, padded, mask, folder)
    state = {k: v.detach().clone() for k, v in hub.state_dict().items()}
    fairseq = fairseq_names(state, len(TINY["conv_dim"]), "layer")
    cfg = FairseqConfig(model=dict(_name="hubert", layer_norm_first=True, extractor_mode="layer_norm"))
    torch.save({"model": fairseq, "cfg": cfg}, os.path.join(args.out, "hubert_fairseq.pt"))
    torch.save({"hubert." + k: v for k, v in state.items()}, os.path.join(args.out, "hubert_ctc.bin"))

    counts = {name: parameter_count(transformers.Wav2Vec2Config, transformers.Wav2Vec2Model, **fields)
              for name, fields in [
                  ("base", dict()),
                  ("large", dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                 intermediate_size=4096, feat_extract_norm="layer", conv_bias=True,
                                 do_stable_layer_norm=True))]}
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "hf_wav2vec2_parameters": counts,
                   "note": "HF counts include masked_spec_embed (hidden floats), which vgs_jax does not hold"},
                  f, indent=1)
    print(json.dumps(counts), sorted(fairseq)[:5])


if __name__ == "__main__":
    main()
