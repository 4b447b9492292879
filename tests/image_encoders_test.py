"""Tests for vgs_jax.models.image_encoders."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vgs_jax.models import capabilities
from vgs_jax.models.image_encoders import ConvImageEncoder, ConvMapImageEncoder, LinearImageEncoder, coordinate_channels
from vgs_jax.models.registry import IMAGE_ENCODERS


@pytest.fixture(autouse=True)
def _full_precision_matmuls():
    """Exact float32 matmuls (GPUs default to TF32), so the NumPy comparisons hold on any backend."""
    with jax.default_matmul_precision("highest"):
        yield


def _count(tree):
    return sum(int(np.prod(v.shape)) for v in jax.tree.leaves(tree))


def test_linear_param_count_and_formula():
    enc = nnx.eval_shape(lambda: LinearImageEncoder(2048, 2048, rngs=nnx.Rngs(0)))
    assert _count(nnx.state(enc, nnx.Param)) == 2048 * 2048 + 2048 == 4196352


def test_linear_matches_numpy_and_xavier_bound():
    enc = LinearImageEncoder(6, 4, rngs=nnx.Rngs(0))
    x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    w = np.asarray(enc.linear.kernel[...]); b = np.asarray(enc.linear.bias[...])
    np.testing.assert_allclose(np.asarray(enc(jnp.asarray(x))), x @ w + b, rtol=1e-5, atol=1e-6)
    assert np.abs(w).max() <= np.sqrt(6.0 / (6 + 4))
    assert np.abs(b).max() <= 1 / np.sqrt(6) and np.any(b != 0)
    with pytest.raises(ValueError, match="precomputed features"):
        enc(jnp.ones((3, 64, 64, 3)))


def test_coordinate_channels_hand_case():
    c = np.asarray(coordinate_channels(1, 2, 4))
    np.testing.assert_allclose(c[0, :, 0, 0], [-0.5, 0.5])  # y down the rows
    np.testing.assert_allclose(c[0, 0, :, 1], [-0.75, -0.25, 0.25, 0.75])  # x along the columns


def _scene(col0):
    img = np.zeros((64, 64, 3), np.uint8)
    img[20:36, col0:col0 + 16, 0] = 255
    return img


def test_conv_shapes_position_sensitivity_and_errors():
    enc = ConvImageEncoder(24, channels=(8, 16, 16, 16), rngs=nnx.Rngs(0))
    imgs = jnp.asarray(np.stack([_scene(4), _scene(44), _scene(4)]))
    z = np.asarray(enc(imgs))
    assert z.shape == (3, 24) and z.dtype == np.float32
    np.testing.assert_allclose(z[0], z[2], rtol=1e-6)
    # The same red square on the left vs on the right must not collapse to one embedding.
    assert np.linalg.norm(z[0] - z[1]) > 0.1 * np.linalg.norm(z[0])
    with pytest.raises(ValueError, match="uint8"):
        enc(imgs.astype(jnp.float32))
    with pytest.raises(ValueError, match="expected images"):
        enc(jnp.zeros((2, 32, 32, 3), jnp.uint8))
    with pytest.raises(ValueError, match="channels"):
        ConvImageEncoder(8, channels=(), rngs=nnx.Rngs(0))


def test_conv_only_params_and_jitted_grad():
    enc = ConvImageEncoder(16, rngs=nnx.Rngs(0))
    assert _count(nnx.state(enc)) == _count(nnx.state(enc, nnx.Param))
    graphdef, params = nnx.split(enc, nnx.Param)
    imgs = jax.random.randint(jax.random.key(0), (4, 64, 64, 3), 0, 256).astype(jnp.uint8)

    @jax.jit
    def grad(params):
        return jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(imgs) ** 2))(params)

    g = grad(params)
    assert all(np.isfinite(float(jnp.linalg.norm(x))) for x in jax.tree.leaves(g))
    assert float(jnp.linalg.norm(g["convs"][0]["kernel"][...])) > 0


def test_registry():
    assert {k: IMAGE_ENCODERS[k] for k in ("linear", "conv", "conv_map")} == {
        "linear": LinearImageEncoder, "conv": ConvImageEncoder, "conv_map": ConvMapImageEncoder}
    outputs = {name: cls.capabilities.output for name, cls in IMAGE_ENCODERS.items()}
    assert outputs == {"linear": capabilities.POOLED, "conv": capabilities.POOLED, "conv_map": capabilities.FRAME_MAP,
                       "vgg16": capabilities.FRAME_MAP, "resnet50": capabilities.FRAME_MAP,
                       "frame_conv": capabilities.POOLED, "video_3d2d": capabilities.POOLED}


def test_conv_map_encoder_shapes_and_shared_stages():
    enc = ConvMapImageEncoder(24, channels=(8, 16, 16), rngs=nnx.Rngs(0))
    imgs = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3)), jnp.uint8)
    fmap, mask = enc(imgs)
    assert fmap.shape == (2, 8, 8, 24) and fmap.dtype == jnp.float32
    assert mask.shape == (2, 8, 8) and bool(jnp.all(mask))
    # The map is the 1x1 embedder applied to the same stages the pooled encoder uses.
    pooled = ConvImageEncoder(24, channels=(8, 16, 16), rngs=nnx.Rngs(0))
    stages = pooled.convs, pooled.norms
    x = imgs.astype(jnp.float32) / 127.5 - 1.0
    x = jnp.concatenate([x, coordinate_channels(2, 64, 64)], axis=-1)
    for conv, norm in zip(*stages):
        x = jax.nn.relu(norm(conv(x)))
    kernel = enc.embedder.kernel[...][0, 0]
    np.testing.assert_allclose(fmap, x @ kernel + enc.embedder.bias[...], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="uint8"):
        enc(imgs.astype(jnp.float32))
