"""Shared fixtures: one tiny `spoken_shapes` build per test session."""

import pytest


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding spoken_shapes/tiny (built once per session, in seconds)."""
    from vgs_jax import input_pipeline

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    input_pipeline.open_split("spoken_shapes/tiny", "train", data_dir=data_dir, build_if_missing=True)
    return data_dir


@pytest.fixture
def tiny_config(shapes_data_dir):
    """configs/shapes_gru.py:tiny reading the session's tiny dataset."""
    from vgs_jax import config_lib

    config = config_lib.load_config("configs/shapes_gru.py:tiny")
    config.dataset.data_dir = shapes_data_dir
    return config
