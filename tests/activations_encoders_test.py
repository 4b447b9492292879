"""Frame-level activations and pooling attention for every encoder with `frame_outputs`."""

import numpy as np
import pytest

from vgs_jax import config_lib
from vgs_jax import train
from vgs_jax.analysis import activations
from vgs_jax.models import dual_encoder


@pytest.mark.parametrize("spec, top", [("configs/shapes_rhn.py:tiny", "rhn_0"),
                                       ("configs/shapes_speech2image.py:tiny", "rnn_0"),
                                       ("configs/shapes_transformer.py:tiny", "layer_0")])
def test_frame_outputs_and_attention(spec, top):
    config = config_lib.load_config(spec)
    assert config.model.speech_encoder in activations.FRAME_OUTPUT_ENCODERS
    template = dual_encoder.Template(train.create_model(config))
    rng = np.random.default_rng(0)
    lengths = np.array([80, 120])
    mask = np.arange(120)[None, :] < lengths[:, None]
    audio = (rng.normal(size=(2, 120, 39)) * mask[..., None]).astype(np.float32)
    out = activations._frame_fn(template)(template.initial_params, audio, mask)
    assert top in out and "conv" in out
    attention = np.asarray(out["attention"])
    assert attention.shape == np.asarray(out["mask"]).shape
    np.testing.assert_allclose(attention.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(attention[~np.asarray(out["mask"])] == 0)
