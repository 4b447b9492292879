"""Shared fixtures: one tiny and one quick `spoken_shapes` build per test session (when used)."""

import pytest


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding spoken_shapes/tiny (built once per session, in seconds)."""
    from vgs_jax import data_sources

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    data_sources.open_split("spoken_shapes/tiny", "train", data_dir=data_dir, build_if_missing=True)
    return data_dir


@pytest.fixture(scope="session")
def quick_shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding spoken_shapes/quick (100 test images; built once per session, ~32 s)."""
    from vgs_jax import data_sources

    data_dir = str(tmp_path_factory.mktemp("tfds_quick"))
    data_sources.open_split("spoken_shapes/quick", "train", data_dir=data_dir, build_if_missing=True)
    return data_dir


@pytest.fixture
def tiny_config(shapes_data_dir):
    """configs/shapes_gru.py:tiny reading the session's tiny dataset."""
    from vgs_jax import config_lib

    config = config_lib.load_config("configs/shapes_gru.py:tiny")
    config.dataset.data_dir = shapes_data_dir
    return config
