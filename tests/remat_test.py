"""`model.remat=True`: every speech encoder's train step gives the same loss, gradients and model
state (BatchNorm statistics, codebooks) as without it, and the step really rematerialises."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.extend import core

from vgs_jax import audio_features
from vgs_jax import config_lib
from vgs_jax import train
from vgs_jax.models import capabilities
from vgs_jax.models import dual_encoder
from vgs_jax.models import image_encoders
from vgs_jax.models import image_trunks
from vgs_jax.models import registry
from vgs_jax.objectives import registry as objectives
from tests import model_test_helpers as helpers

# One encoder per way remat is applied: `remat.call` on layers with dropout RNG state (Transformer; the
# GRU/LSTM/RHN stacks call it the same way), `remat.apply` on a stage function with BatchNorm
# statistics (DAVEnet), `remat.call` on residual blocks before EMA codebooks (ResDAVEnet-VQ).
SPECS = ["configs/shapes_transformer.py:tiny,v1", "configs/shapes_davenet.py:tiny,v1",
         "configs/shapes_resdavenet.py:tiny,vq=23,v1"]


def _loss_grads_state(config, batch):
    """(loss, gradients, new model state, jaxpr primitive names) of one train-mode forward/backward."""
    template = dual_encoder.Template(train.create_model(config))
    loss_fn = objectives.make_loss_fn(config.loss, config.model, None)

    def loss(params):
        model = template.merge(params, template.initial_model_state, train=True)
        speech = model.encode_speech(batch["audio"], batch["audio_mask"], key=jax.random.key(1))
        image = model.encode_image(batch["image"], batch["example_mask"])
        value, _ = loss_fn(model, speech, image, batch, jax.random.key(2))
        model.update_codebooks(speech)
        return value, template.model_state_of(model)

    grad_fn = jax.value_and_grad(loss, has_aux=True)
    (value, state), grads = jax.jit(grad_fn)(template.initial_params)
    names = set()
    _collect(jax.make_jaxpr(grad_fn)(template.initial_params).jaxpr, names)
    return value, grads, state, names


def _collect(jaxpr, names):
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in core.jaxprs_in_params(eqn.params):
            _collect(getattr(sub, "jaxpr", sub), names)


@pytest.mark.parametrize("spec", SPECS)
def test_remat_changes_memory_not_results(spec):
    config = config_lib.load_config(spec)
    config.unlock()
    batch = helpers.train_batch(audio_features.num_features(config.features.recipe), batch=6, frames=80)
    plain = _loss_grads_state(config, batch)
    config.model.remat = True
    remat = _loss_grads_state(config, batch)
    assert "remat2" not in plain[3] and "remat2" in remat[3]
    np.testing.assert_allclose(float(remat[0]), float(plain[0]), rtol=1e-6)
    for tree_a, tree_b in ((remat[1], plain[1]), (remat[2], plain[2])):
        for a, b in zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_remat_on_an_encoder_without_the_switch_names_the_field(monkeypatch):
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    config.unlock()
    config.model.remat = True
    config.model.speech_encoder = "transformer"
    config.model.speech = {"conv_channels": 8, "d_model": 8, "num_heads": 2, "num_layers": 1, "ff_dim": 8,
                           "attention_hidden": 4}
    assert train.create_model(config).speech_encoder.remat  # a built-in encoder takes it

    class NoSwitch:
        @classmethod
        def from_config(cls, speech_config, in_features, *, dtype, rngs):
            return capabilities.speech_from_config(cls, speech_config, in_features, dtype=dtype, rngs=rngs)

        def __init__(self, in_features, *, dtype, rngs):
            pass

    monkeypatch.setitem(registry.SPEECH_ENCODERS, "no_switch", NoSwitch)
    with pytest.raises(ValueError, match=r"fields \['remat'\].*NoSwitch"):
        registry.build_speech_encoder("no_switch", {}, 13, rngs=None, remat=True)


# Every image tower with inner layers, smallest shapes: the pixel CNNs with two narrow stages, VGG16 and
# ResNet-50 with their stage tables cut down (same code: five VGG blocks with four max-pools, a ResNet
# stem and bottlenecks with and without a downsample shortcut), the ResNet in train mode (BatchNorm
# statistics from the unmasked rows, running averages updated).
IMAGE_TOWERS = {"conv": {"channels": (4, 8)}, "conv_map": {"channels": (4, 8)}, "vgg16": {}, "resnet50": {}}
SMALL_TABLES = {"VGG16_WIDTHS": ((4,), (4,), (4,), (4,), (512,)), "RESNET_BLOCKS": {50: (2, 1, 1, 1)}}


def _image_grads_state(name, remat):
    """(output, gradients w.r.t. parameters, new non-parameter state, jaxpr primitive names) of one
    train-mode forward/backward of image tower `name` on 3 images of 64 x 64 (the last one masked out;
    ResNet's layer4 BatchNorms see 2 x 2 x 2 values)."""
    tower = registry.build_image_encoder(name, IMAGE_TOWERS[name], 4, rngs=nnx.Rngs(0), remat=remat)
    graphdef, params, rest = nnx.split(tower, nnx.Param, ...)
    params, rest = nnx.to_pure_dict(params), nnx.to_pure_dict(rest)
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3)).astype(np.uint8)
    mask = np.array([True, True, False])

    def loss(params, rest):
        model = nnx.merge(graphdef, params, rest)
        out = model(images, mask)
        out = out[0] if isinstance(out, tuple) else out
        return jnp.sum(jnp.sin(out)), (out, nnx.to_pure_dict(nnx.state(model, nnx.Not(nnx.Param))))

    traced = jax.jit(jax.grad(loss, has_aux=True)).trace(params, rest)
    grads, (out, state) = traced.lower().compile()(params, rest)
    names = set()
    _collect(traced.jaxpr.jaxpr, names)
    return out, grads, state, names


@pytest.mark.parametrize("name", sorted(IMAGE_TOWERS))
def test_image_tower_remat_changes_memory_not_results(name, monkeypatch):
    for table, value in SMALL_TABLES.items():
        monkeypatch.setattr(image_trunks, table, value)
    plain = _image_grads_state(name, remat=False)
    remat = _image_grads_state(name, remat=True)
    assert "remat2" not in plain[3] and "remat2" in remat[3]
    if name == "resnet50":  # BatchNorm statistics moved, and are compared below
        assert jax.tree.leaves(plain[2])
    for tree_a, tree_b in zip(remat[:3], plain[:3]):
        for a, b in zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_b), strict=True):
            # float32 rounding only: XLA orders the recomputed sums differently (ResNet's stem kernel
            # gradient: 6e-5 on entries up to 50)
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5 * np.abs(b).max())


def test_linear_image_tower_ignores_the_switch():
    tower = registry.build_image_encoder("linear", {"input_dim": 6}, 4, rngs=nnx.Rngs(0), remat=True)
    assert isinstance(tower, image_encoders.LinearImageEncoder)
