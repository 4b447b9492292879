"""wav2vec 2.0 / HuBERT against Hugging Face's outputs (fixtures from bench/make_ssl_reference.py; no torch here)."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax.models import ssl_weights
from vgs_jax.models import wav2vec2

REF = os.path.join(os.path.dirname(__file__), "data", "ssl_reference")


def _model(name, checkpoint=None, **overrides):
    """The fixture's model shapes (with `overrides`), abstract, or loaded from `checkpoint` (default: its folder)."""
    fields = ssl_weights.model_fields_from_hf_config(json.load(open(os.path.join(REF, name, "config.json"))))
    model = nnx.eval_shape(lambda: wav2vec2.Wav2Vec2Model(**{**fields, **overrides}, rngs=nnx.Rngs(0)))
    if checkpoint != "":
        ssl_weights.load_into(model, checkpoint or os.path.join(REF, name))
    return model


@nnx.jit
def _forward(model, wave, mask):
    conv, m = model.features(wave, mask)
    return (conv, *model.hidden_states(conv, m), m)


def _run(model, wave, mask):
    """-> conv [B, T, C], hidden states (list of [B, T, d]), last_hidden_state, frame mask, as NumPy."""
    conv, states, last, m = _forward(model, jnp.asarray(wave), jnp.asarray(mask))
    return np.asarray(conv), [np.asarray(s) for s in states], np.asarray(last), np.asarray(m)


@pytest.mark.parametrize("name", ["wav2vec2", "hubert"])  # group norm + post-LN; layer norm + pre-LN, padded
def test_matches_hugging_face_reference(name):
    model = _model(name)
    ref = np.load(os.path.join(REF, name, "outputs.npz"))
    conv, states, last, m = _run(model, ref["wave"], ref["mask"])
    assert m.sum(1).tolist() == ([99, 99] if name == "wav2vec2" else [99, 74])  # HF's frame lengths
    np.testing.assert_allclose(conv[m], ref["conv"][m], atol=1e-4)
    assert len(states) == 3
    for i, s in enumerate(states):
        np.testing.assert_allclose(s[m], ref[f"hidden_{i}"][m], atol=1e-4, err_msg=f"hidden_states[{i}]")
    np.testing.assert_allclose(last[m], ref["last"][m], atol=1e-4)


@pytest.mark.parametrize("other", ["hubert_fairseq.pt", "hubert_ctc.bin"])
def test_fairseq_and_torch_pickle_checkpoints_give_the_same_parameters(other):
    hf = _model("hubert", os.path.join(REF, "hubert", "model.safetensors"))
    # .pt: fairseq names, its cfg an unknown class (kept inert); .bin: HF names under "hubert.", torch's pickle.
    same = _model("hubert", os.path.join(REF, other))
    for a, b in zip(nnx.to_flat_state(nnx.state(hf, nnx.Param)), nnx.to_flat_state(nnx.state(same, nnx.Param))):
        assert a[0] == b[0]
        np.testing.assert_array_equal(np.asarray(a[1][...]), np.asarray(b[1][...]))


def test_published_parameter_counts_match_hugging_face():
    hf = json.load(open(os.path.join(REF, "reference.json")))["hf_wav2vec2_parameters"]
    # HF also holds masked_spec_embed (one vector of the model width), a pre-training-only tensor.
    assert wav2vec2.parameter_count(**wav2vec2.PRESETS["base"]) + 768 == hf["base"] == 94_371_712
    assert wav2vec2.parameter_count(**wav2vec2.PRESETS["large"]) + 1024 == hf["large"] == 315_438_720
    assert wav2vec2.receptive_field(wav2vec2.CONV_LAYERS) == (320, 400)
    assert int(wav2vec2.conv_output_length(16000, wav2vec2.CONV_LAYERS)) == 49


def test_group_norm_ignores_padding():
    """Base layout: an utterance gives the same frames alone and padded in a batch (HF would not)."""
    model = _model("wav2vec2")
    wave = np.load(os.path.join(REF, "wav2vec2", "outputs.npz"))["wave"]
    short = wave[1, :1500]
    _, alone, _, m1 = _run(model, short[None], np.ones((1, 1500), bool))
    mask = np.ones(wave.shape, bool)
    mask[1, 1500:] = False
    _, batch, _, m2 = _run(model, np.where(mask, wave, 9.0), mask)
    t = int(m1.sum())
    assert int(m2[1].sum()) == t
    np.testing.assert_allclose(batch[-1][1, :t], alone[-1][0, :t], atol=1e-4)


def test_extra_layers_are_ignored_and_mismatches_named(tmp_path):
    ref = np.load(os.path.join(REF, "hubert", "outputs.npz"))
    one = _model("hubert", num_layers=1)  # keep the first layer of two (FaST-VGS keeps 8 of 12)
    _, states, _, m = _run(one, ref["wave"], ref["mask"])
    np.testing.assert_allclose(states[1][m], ref["hidden_1"][m], atol=1e-4)
    with pytest.raises(ValueError, match=r"'encoder.layer_norm.bias' has shape \(32,\).*is \(64,\)"):
        _model("hubert", hidden=64, num_heads=4)
    with pytest.raises(ValueError, match=r"unexpected \['feature_extractor.conv_layers.1.layer_norm.bias"):
        _model("hubert", feat_norm="group")


def test_missing_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="'nowhere/wav2vec_small.pt' does not exist.*download"):
        ssl_weights.load_state_dict("nowhere/wav2vec_small.pt")
    with pytest.raises(FileNotFoundError, match="neither model.safetensors nor pytorch_model.bin"):
        ssl_weights.load_state_dict(tmp_path)
    (tmp_path / "x.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match="Hugging Face folder"):
        ssl_weights.load_state_dict(tmp_path / "x.ckpt")
