"""Shared fixtures: one tiny and one quick `spoken_shapes` build per test session (when used)."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def compilation_cache_per_worker(tmp_path_factory):
    """The binaries' persistent compilation cache (vgs_jax.cli) in a folder of this test worker, not
    ~/.cache: subprocess runs of one worker reuse each other's compiles, and two workers never write
    one cache entry at the same time."""
    os.environ.setdefault("VGS_JAX_COMPILATION_CACHE", str(tmp_path_factory.mktemp("jax_compilation_cache")))


# The suite runs on spoken_shapes 1.0.0 (short audio, so CI time stays put): pin it in tests, with
# "spoken_shapes/tiny:1.0.0" names and the `v1` config argument ("configs/shapes_gru.py:tiny,v1").
SHAPES_V1 = "1.0.0"


def _v1_data_dir(tmp_path_factory, config: str):
    """Yields a data_dir holding spoken_shapes/<config> 1.0.0 (built here); after the session, an error
    if a test built another version (the default, 2.0.0) of it there, i.e. forgot the pin."""
    from vgs_jax import data_sources

    data_dir = tmp_path_factory.mktemp(f"tfds_{config}")
    data_sources.open_split(f"spoken_shapes/{config}:{SHAPES_V1}", "train", data_dir=str(data_dir), build_if_missing=True)
    yield str(data_dir)
    others = sorted(p.name for p in data_dir.glob(f"spoken_shapes/{config}/*") if p.name != SHAPES_V1)
    assert not others, (f"a test built spoken_shapes/{config} {others} into the session's data_dir {data_dir}: pin "
                        f"1.0.0 (name 'spoken_shapes/{config}:1.0.0', config argument ':tiny,v1')")


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding spoken_shapes/tiny 1.0.0 (built once per session, in seconds)."""
    yield from _v1_data_dir(tmp_path_factory, "tiny")


@pytest.fixture(scope="session")
def quick_shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding spoken_shapes/quick 1.0.0 (100 test images; built once per session, ~32 s)."""
    yield from _v1_data_dir(tmp_path_factory, "quick")


@pytest.fixture
def tiny_config(shapes_data_dir):
    """configs/shapes_gru.py:tiny,v1 reading the session's tiny dataset."""
    from vgs_jax import config_lib

    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
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


@pytest.fixture(scope="session")
def moving_shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding moving_shapes/clips_tiny (16/4/4 3-second clips; built once per session, ~5 s)."""
    from vgs_jax import data_sources

    data_dir = str(tmp_path_factory.mktemp("tfds_moving_shapes"))
    data_sources.open_split("moving_shapes/clips_tiny", "train", data_dir=data_dir, build_if_missing=True)
    return data_dir
