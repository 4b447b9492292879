"""Shared fixtures: one tiny and one quick `spoken_shapes` build per test session (when used)."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def compilation_cache_per_worker(tmp_path_factory):
    """The binaries' persistent compilation cache (vgs_jax.cli) in a folder of this test worker, not
    ~/.cache: subprocess runs of one worker reuse each other's compiles, and two workers never write
    one cache entry at the same time."""
    os.environ.setdefault("VGS_JAX_COMPILATION_CACHE", str(tmp_path_factory.mktemp("jax_compilation_cache")))


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


@pytest.fixture(scope="session")
def multi_shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding spoken_shapes/tiny_multi:2.0.0 (en, hi and ja captions of 24/8/8 images; built
    once per session)."""
    from vgs_jax import data_sources

    data_dir = str(tmp_path_factory.mktemp("tfds_multi"))
    data_sources.open_split("spoken_shapes/tiny_multi:2.0.0", "train", data_dir=data_dir, build_if_missing=True)
    return data_dir
