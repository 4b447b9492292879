"""Tests for vgs_jax.objectives.registry: each trainable objective declares exactly what it reads."""

import inspect

import pytest

from vgs_jax import config_lib
from vgs_jax.objectives import registry


def _loss_config(name):
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    config.loss.name = name
    return config


@pytest.mark.parametrize("name", sorted(registry.OBJECTIVES))
def test_declared_inputs_match_the_loss_signature_and_the_config(name):
    objective = registry.OBJECTIVES[name]
    params = inspect.signature(objective.fn).parameters
    assert ("rng" in params) == objective.takes_key
    assert ("temperature" in params) == (objective.temperature is not None)
    assert ("bias" in params) == objective.logit_bias
    assert ("image_ids" in params) == objective.image_ids
    assert "mask" in params
    assert set(objective.config_fields) <= set(params)
    loss_config = _loss_config(name).loss
    assert set(objective.loss_fields) <= set(loss_config)
    if objective.chunked_fn is not None:
        assert "mesh" in inspect.signature(objective.chunked_fn).parameters


def test_views_and_unknown_names():
    assert (set(registry.LOSSES) | set(registry.SIMILARITY_LOSSES) | {"sigmoid", "visual_tags"}
            == set(registry.OBJECTIVES))
    config = _loss_config("triplet")
    with pytest.raises(ValueError, match=r"Unknown loss.name 'triplet'; choose one of \['hardest_negative_hinge', "
                                         r"'infonce', 'platalea_hinge', 'sampled_impostor_hinge', 'semihard_hinge', "
                                         r"'sigmoid', 'visual_tags'\]"):
        registry.make_loss_fn(config.loss, config.model)
    with pytest.raises(ValueError, match="inputs"):
        registry.Objective(registry.LOSSES["infonce"], "pixels")
