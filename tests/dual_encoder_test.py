"""Tests for vgs_jax.models.dual_encoder: config wiring, normalisation, temperature, errors."""
import math
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from vgs_jax.models.capabilities import FrameClock
from vgs_jax.models.dual_encoder import DualEncoder, Template, build_dual_encoder, l2_normalize
from vgs_jax.models.image_encoders import LinearImageEncoder
from vgs_jax.models.conv_rnn_encoders import PlataleaSpeechEncoder


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    """Exact float32 matmuls (GPUs default to TF32), so the NumPy comparisons hold on any backend."""
    with jax.default_matmul_precision("highest"):
        yield


def _config(image_encoder="linear", **overrides):
    cfg = ml_collections.ConfigDict(dict(
        speech_encoder="platalea_gru",
        image_encoder=image_encoder,
        speech=dict(conv_channels=8, conv_kernel=6, conv_stride=2, conv_bias=False, hidden=8, num_layers=1,
                    attention_hidden=4, mask_padding=True),
        image=dict(input_dim=12, channels=(4, 8, 8, 8)),
        temperature_init=0.07,
    ))
    cfg.update(overrides)
    return cfg


def _batch(b=3, t=30, f=5):
    x = jax.random.normal(jax.random.key(0), (b, t, f))
    mask = jnp.arange(t)[None, :] < jnp.array([t, 20, 9][:b])[:, None]
    return x, mask


def test_l2_normalize_hand_case_and_zero_row():
    got = np.asarray(l2_normalize(jnp.array([[3.0, 4.0], [0.0, 0.0]])))
    np.testing.assert_allclose(got, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


@pytest.mark.parametrize("image_encoder", ["linear", "conv"])
def test_build_and_unit_norm_embeddings(image_encoder):
    model = build_dual_encoder(_config(image_encoder), num_features=5, rngs=nnx.Rngs(0))
    x, mask = _batch()
    if image_encoder == "linear":
        image = jax.random.normal(jax.random.key(1), (3, 12))
    else:
        image = jax.random.randint(jax.random.key(1), (3, 64, 64, 3), 0, 256).astype(jnp.uint8)
    z_s, z_i = model(x, mask, image)
    assert z_s.shape == z_i.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(z_s), axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(z_i), axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(float(model.temperature), 0.07, rtol=1e-6)
    np.testing.assert_allclose(float(model.log_temperature[...]), math.log(0.07), rtol=1e-6)
    assert isinstance(model.speech_encoder, PlataleaSpeechEncoder)
    assert model.speech_encoder.pool.mask_padding is True
    caps = model.speech_encoder.capabilities
    assert caps.output == "pooled" and caps.attention == "vectorial" and not model.speech_has_map
    assert caps.frame_clock == FrameClock(stride=2, kernel=6) and caps.frame_outputs[0] == "conv"
    assert model.similarity == "cosine" and Template(model).similarity == "cosine"
    assert Template(model).image_capabilities == model.image_encoder.capabilities


def test_unknown_names_and_fields_raise():
    with pytest.raises(ValueError, match=r"speech_encoder 'lstm'.*platalea_gru"):
        build_dual_encoder(_config(speech_encoder="lstm"), num_features=5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"image_encoder 'resnet'.*\['conv', 'conv_map', 'frame_conv', 'linear', 'resnet50', 'vgg16', 'video_3d2d'\]"):
        build_dual_encoder(_config(image_encoder="resnet"), num_features=5, rngs=nnx.Rngs(0))
    cfg = _config()
    cfg.speech.dropout = 0.1
    with pytest.raises(ValueError, match="dropout"):
        build_dual_encoder(cfg, num_features=5, rngs=nnx.Rngs(0))
    cfg = _config()
    del cfg["image"]["input_dim"]
    with pytest.raises(ValueError, match="input_dim"):
        build_dual_encoder(cfg, num_features=5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="dtype 'float8'"):
        build_dual_encoder(_config(dtype="float8"), num_features=5, rngs=nnx.Rngs(0))
    speech = PlataleaSpeechEncoder(5, hidden=4, num_layers=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="out_features"):
        DualEncoder(speech, LinearImageEncoder(12, 7, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="frame maps from both towers"):
        DualEncoder(speech, LinearImageEncoder(12, 8, rngs=nnx.Rngs(0)), similarity="MISA")


def _matmul_operand_dtypes(fn, *args) -> list[tuple[str, str, str]]:
    """(op, lhs dtype, rhs dtype) of every dot_general / convolution in jit(fn)'s StableHLO."""
    text = jax.jit(fn).lower(*args).as_text()
    return re.findall(r"stablehlo\.(dot_general|convolution)\b.*: "
                      r"\(tensor<(?:\d+x)*([a-z]\w*)>, tensor<(?:\d+x)*([a-z]\w*)>\)", text)


@pytest.mark.parametrize("image_encoder", ["linear", "conv"])
def test_bfloat16_compute_close_to_float32(image_encoder):
    x, mask = _batch()
    if image_encoder == "linear":
        image = jax.random.normal(jax.random.key(1), (3, 12))
    else:
        image = jax.random.randint(jax.random.key(1), (3, 64, 64, 3), 0, 256).astype(jnp.uint8)
    outputs = {}
    for dtype in ("float32", "bfloat16"):
        model = build_dual_encoder(_config(image_encoder, dtype=dtype), num_features=5, rngs=nnx.Rngs(0))
        assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
        graphdef, state = nnx.split(model)
        # The compiled encoders multiply in the compute dtype: every matmul and convolution.
        speech_ops = _matmul_operand_dtypes(
            lambda s, x, m: nnx.merge(graphdef, s).encode_speech(x, m)["embedding"], state, x, mask)
        image_ops = _matmul_operand_dtypes(
            lambda s, i: nnx.merge(graphdef, s).encode_image(i)["embedding"], state, image)
        short = {"float32": "f32", "bfloat16": "bf16"}[dtype]
        assert len(speech_ops) >= 5 and len(image_ops) >= (1 if image_encoder == "linear" else 5)
        assert {t for _, a, b in speech_ops + image_ops for t in (a, b)} == {short}, (speech_ops, image_ops)
        outputs[dtype] = model(x, mask, image)
    for a, b in zip(outputs["float32"], outputs["bfloat16"]):
        assert b.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=0.05)
        assert np.abs(np.asarray(a) - np.asarray(b)).max() > 1e-4  # bfloat16 rounding shows


def test_jitted_train_step_updates_all_params():
    model = build_dual_encoder(_config(), num_features=5, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    x, mask = _batch()
    image = jax.random.normal(jax.random.key(1), (3, 12))

    @jax.jit
    def step(params):
        def loss(p):
            z_s, z_i = nnx.merge(graphdef, p)(x, mask, image)
            return jnp.mean(1.0 - jnp.diag(z_s @ z_i.T))
        value, grads = jax.value_and_grad(loss)(params)
        return value, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads), grads

    value, new_params, grads = step(params)
    assert np.isfinite(float(value))
    paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_leaves_with_path(params)]
    changed = {path: not np.array_equal(a, b)
               for path, a, b in zip(paths, jax.tree.leaves(params), jax.tree.leaves(new_params))}
    # Unused by this stand-in loss: the temperature. Without effect on any output: the attention's
    # output bias (a per-dimension constant added to every frame's logit cancels in the softmax over
    # time, in the reference too). Every other parameter must move.
    frozen = {p for p in paths if "log_temperature" in p or "['pool']['out_layer']['bias']" in p}
    assert len(frozen) == 2
    assert {p for p, c in changed.items() if not c} <= frozen
    assert all(changed[p] for p in paths if p not in frozen)
    assert float(grads["log_temperature"][...]) == 0.0
    assert float(jnp.max(jnp.abs(grads["speech_encoder"]["pool"]["out_layer"]["bias"][...]))) < 1e-6
