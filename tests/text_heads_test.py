"""The text-task model (CTC head, text encoder, retrieval from recognised text) and the multi-task loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgs_jax import config_lib
from vgs_jax import text_units
from vgs_jax import train
from vgs_jax.models import dual_encoder
from vgs_jax.objectives import ctc
from vgs_jax.objectives import multitask
from vgs_jax.objectives.registry import make_loss_fn
from vgs_jax.objectives.similarity import l2_normalize


def _gru_params(inputs: int, hidden: int) -> int:
    """One direction of a PyTorch GRU layer: W_ih, W_hh and both biases for 3 gates."""
    return 3 * hidden * (inputs + hidden) + 6 * hidden


def _batch(b=4, t=40, f=39, length=6, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.array([t, t - 7, t - 15, t])
    return {"audio": jnp.asarray(rng.normal(size=(b, t, f)), jnp.float32),
            "audio_mask": jnp.asarray(np.arange(t)[None, :] < lengths[:, None]),
            "image": jnp.asarray(rng.integers(0, 255, size=(b, 64, 64, 3)), jnp.uint8),
            "image_id": jnp.arange(b, dtype=jnp.int32), "example_mask": jnp.array([True, True, True, False]),
            text_units.IDS_KEY: jnp.asarray(rng.integers(1, 29, size=(b, 8)), jnp.int32),
            text_units.LEN_KEY: jnp.full((b,), length, jnp.int32),
            text_units.AVAILABLE_KEY: jnp.array([True, False, True, True])}


@pytest.fixture(scope="module")
def mtl_config():
    return config_lib.load_config("configs/shapes_mtl_asr.py:tiny,text_image=0.5")


def test_parameter_counts(mtl_config):
    params = dual_encoder.Template(train.create_model(mtl_config)).initial_params
    count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
    v, width, emb, att = 28, 32, 16, 8  # chars; 2 x 16 GRU units; tiny text encoder
    head = width * (v + 1) + (v + 1)
    text_encoder = (v + 1) * emb + 2 * _gru_params(emb, width // 2) + (width * att + att) + (att * width + width)
    assert count(params["ctc_head"]) == head
    assert count(params["text_encoder"]) == text_encoder
    assert sorted(params) == ["ctc_head", "image_encoder", "log_temperature", "speech_encoder", "text_encoder"]


def test_outputs_and_recognised_text_path(mtl_config):
    model = train.create_model(mtl_config)
    batch = _batch()
    out = model.encode_speech(batch["audio"], batch["audio_mask"])
    frames = model.speech_encoder.frame_outputs(batch["audio"], batch["audio_mask"])
    np.testing.assert_allclose(out["embedding"], l2_normalize(frames["pooled"]), atol=1e-6)
    assert out["ctc_logits"].shape == frames["gru_0"].shape[:2] + (29,)
    np.testing.assert_array_equal(out["ctc_mask"], frames["mask"])
    model.retrieval_from = "recognised_text"
    piped = model.encode_speech(batch["audio"], batch["audio_mask"])
    ids, lengths = ctc.greedy_decode(out["ctc_logits"], out["ctc_mask"])
    np.testing.assert_allclose(piped["embedding"], model.encode_text(ids, lengths)["embedding"], atol=1e-6)


def test_multitask_loss_is_the_weighted_sum(mtl_config):
    template = dual_encoder.Template(train.create_model(mtl_config))
    base = make_loss_fn(mtl_config.loss, mtl_config.model)
    fn = multitask.make_multitask_loss_fn(base, mtl_config)
    available = jnp.array([True, False, True, False])  # transcribed and not a padding row

    @jax.jit
    def losses(params, batch, key):
        model = template.merge(params)
        speech = model.encode_speech(batch["audio"], batch["audio_mask"])
        image = model.encode_image(batch["image"], batch["example_mask"])
        total, metrics = fn(model, speech, image, batch, key)
        si, _ = base(model, speech, image, batch, key)
        asr, count = ctc.ctc_loss(speech["ctc_logits"], speech["ctc_mask"], batch[text_units.IDS_KEY],
                                  batch[text_units.LEN_KEY], available)
        text = model.encode_text(batch[text_units.IDS_KEY], batch[text_units.LEN_KEY])
        ti, _ = base(model, text, image, {**batch, "example_mask": available}, key)
        return total, metrics, si, asr, ti, count

    total, metrics, si, asr, ti, count = losses(template.initial_params, _batch(), jax.random.key(0))
    np.testing.assert_allclose(float(total), float(si + asr + 0.5 * ti), rtol=1e-6)
    assert float(metrics["transcribed"]) == float(count) == 2.0


def test_pipeline_retrieval_loss_does_not_train_the_recogniser():
    config = config_lib.load_config("configs/shapes_pipeline.py:tiny,pip=seq")
    template = dual_encoder.Template(train.create_model(config))
    fn = multitask.make_multitask_loss_fn(make_loss_fn(config.loss, config.model), config)
    batch = _batch()

    def loss(params):
        model = template.merge(params, train=True)
        speech = model.encode_speech(batch["audio"], batch["audio_mask"])
        return fn(model, speech, model.encode_image(batch["image"], batch["example_mask"]), batch, jax.random.key(0))[0]

    grads = jax.jit(jax.grad(loss))(template.initial_params)
    norm = lambda tree: float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(tree)))
    assert norm(grads["speech_encoder"]) == 0.0 and norm(grads["ctc_head"]) == 0.0
    assert norm(grads["text_encoder"]) > 0.0


def test_bad_text_configs_are_named(mtl_config):
    config = mtl_config.copy_and_resolve_references()
    config.model.text.layer = "gru_7"
    with pytest.raises(ValueError, match="gru_0"):
        train.create_model(config)
    config = mtl_config.copy_and_resolve_references()
    config.text.weights.asr = -1.0
    with pytest.raises(ValueError, match="weights"):
        multitask.make_multitask_loss_fn(None, config)
    with pytest.raises(ValueError, match="pip"):
        config_lib.load_config("configs/shapes_pipeline.py:pip=both")
