"""Frame-level activations and pooling attention for every encoder with `frame_outputs`."""

import jax
import numpy as np
import pytest

from vgs_jax import audio_features
from vgs_jax import config_lib
from vgs_jax import inference
from vgs_jax import train
from vgs_jax.analysis import activations
from vgs_jax.models import capabilities
from vgs_jax.models import conv_map_layers
from vgs_jax.models import davenet
from vgs_jax.models import dual_encoder


@pytest.mark.parametrize("spec, top", [("configs/shapes_gru.py:tiny,v1", "gru_0"),
                                       ("configs/shapes_rhn.py:tiny,v1", "rhn_0"),
                                       ("configs/shapes_speech2image.py:tiny,v1", "rnn_0"),
                                       ("configs/shapes_transformer.py:tiny,v1", "layer_0")])
def test_frame_outputs_and_attention(spec, top):
    config = config_lib.load_config(spec)
    template = dual_encoder.Template(train.create_model(config))
    caps = template.speech_capabilities
    assert caps.frame_outputs[-1] == top and caps.attention in capabilities.ATTENTION_KINDS
    rng = np.random.default_rng(0)
    lengths = np.array([80, 120])
    mask = np.arange(120)[None, :] < lengths[:, None]
    audio = (rng.normal(size=(2, 120, 39)) * mask[..., None]).astype(np.float32)
    out = inference.frame_outputs(template, template.initial_params, audio, mask)
    assert top in out and "conv" in out
    assert sorted(out) == sorted(caps.frame_outputs + ("pooled", "mask", "attention"))
    attention = np.asarray(out["attention"])
    assert attention.shape == np.asarray(out["mask"]).shape
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(attention[~np.asarray(out["mask"])] == 0)


CONV_SPECS = [("configs/shapes_davenet.py:tiny,v1", ("conv1", "conv2", "conv3", "conv4", "conv5")),
              ("configs/shapes_resdavenet.py:tiny,vq=23,v1", ("conv1", "layer1", "layer2", "layer3", "layer4"))]


def _conv_setup(spec):
    """Template, randomly perturbed eval state (non-trivial BatchNorm statistics and codebooks), padded batch."""
    config = config_lib.load_config(spec)
    template = dual_encoder.Template(train.create_model(config))
    rng = np.random.default_rng(1)
    def perturb(path, v):
        v = np.asarray(v)
        if jax.tree_util.keystr(path).endswith("['var']"):
            return (v * rng.uniform(0.7, 1.3, v.shape)).astype(v.dtype)
        return (v + 0.1 * rng.normal(size=v.shape)).astype(v.dtype)

    state = jax.tree_util.tree_map_with_path(perturb, template.initial_model_state)
    lengths = np.array([100, 61])
    mask = np.arange(100)[None, :] < lengths[:, None]
    dim = audio_features.num_features(config.features.recipe)
    audio = (rng.normal(size=(2, 100, dim)) * mask[..., None]).astype(np.float32)
    return config, template, state, audio, mask, lengths


def _slow_stages(encoder, x):
    """Each stage's output on ONE unpadded utterance x [1, L, F], run module by module (no masking needed)."""
    if isinstance(encoder, davenet.Davenet):
        h = encoder.input_norm(x[..., None])[..., 0]
        h = jax.nn.relu(encoder.convs[0](h))
        stages = [h]
        for conv in encoder.convs[1:]:
            h = conv_map_layers.max_pool_time(jax.nn.relu(conv(h)))
            stages.append(h)
        return [np.asarray(s[0]) for s in stages]
    h = jax.nn.relu(encoder.bn1(encoder.conv1(x)))
    lengths = np.array([x.shape[1]])
    stages = []
    for i in range(5):
        if i:
            for block in encoder.layers[i - 1]:
                h, lengths, _ = block(h, lengths)
        if encoder.quantizers[i] is not None:
            h, _ = encoder.quantizers[i](h, np.ones(h.shape[:2], bool))
        stages.append(h)
    return [np.asarray(s[0]) for s in stages]


@pytest.mark.parametrize("spec, keys", CONV_SPECS)
def test_conv_encoder_frame_outputs_shapes_and_clock(spec, keys):
    config, template, state, audio, mask, _ = _conv_setup(spec)
    caps = template.speech_capabilities
    assert caps.frame_outputs == keys and caps.attention is None and caps.has_map
    assert caps.frame_clock == capabilities.FrameClock(1, 1)
    assert activations.frame_times(caps.frame_clock, config.features.recipe) == pytest.approx(
        {"frame_step": 0.01, "frame_start": 0.0})
    out = {k: np.asarray(v) for k, v in
           inference.frame_outputs(template, template.initial_params, audio, mask, model_state=state).items()}
    assert sorted(out) == sorted(keys + ("pooled", "mask"))  # no "attention": DAVEnets mean-pool
    np.testing.assert_array_equal(out["mask"], mask)
    for k in keys:
        assert out[k].shape[:2] == (2, 100) and out[k].dtype == np.float32
        assert np.all(out[k][~mask] == 0) and np.abs(out[k][mask]).sum() > 0, k
    model = template.merge(template.initial_params, state)
    np.testing.assert_allclose(out["pooled"], np.asarray(model.embed_speech(audio, mask)), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["pooled"], axis=1), 1.0, rtol=1e-5)
    train_mode = template.merge(template.initial_params, state, train=True).speech_encoder
    with pytest.raises(ValueError, match="eval"):
        train_mode.frame_outputs(audio, mask)


@pytest.mark.parametrize("spec, keys", CONV_SPECS)
def test_conv_frame_outputs_repeat_each_stage_slow(spec, keys):
    _, template, state, audio, mask, lengths = _conv_setup(spec)
    out = inference.frame_outputs(template, template.initial_params, audio, mask, model_state=state)
    encoder = template.merge(template.initial_params, state).speech_encoder
    with jax.default_matmul_precision("highest"):
        for b, length in enumerate(lengths):
            stages = _slow_stages(encoder, audio[b:b + 1, :length])
            for k, (key, stage) in enumerate(zip(keys, stages)):
                stride = 2 ** k
                assert stage.shape[0] == -(-length // stride)  # ceil(L / stride) stage frames
                got = np.asarray(out[key][b])
                for t in range(100):
                    want = stage[t // stride] if t < length else np.zeros(stage.shape[1])
                    np.testing.assert_allclose(got[t], want, atol=2e-4, err_msg=f"{key} b={b} t={t}")


def test_repeat_to_input_hand_values_and_bad_input():
    h = np.arange(6, dtype=np.float32).reshape(1, 3, 2)  # frames [0,1], [2,3], [4,5] at stride 2
    mask = np.array([[True] * 5 + [False]])
    got = np.asarray(conv_map_layers.repeat_to_input(h, 2, mask))
    np.testing.assert_array_equal(got[0, :, 0], [0, 0, 2, 2, 4, 0])
    with pytest.raises(ValueError, match="cover fewer"):
        conv_map_layers.repeat_to_input(h, 1, mask)
