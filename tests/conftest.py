"""Shared fixtures: one tiny and one quick `spoken_shapes` build per test session (when used), shared by the
xdist workers; one BLAS/OpenMP thread per worker."""

import fcntl
import os
import pathlib

# One BLAS (OpenBLAS) and OpenMP thread per test process, set before NumPy loads and inherited by the
# subprocesses: the workers already fill the cores, and OpenBLAS threads that spin-wait beside them
# multiplied the CPU time of small scikit-learn fits (`vgs_jax.analyze --analyses=probes` on the tiny
# run: 59-69 CPU-s with 2 threads, 7.6-9 with 1, alternating, at load ~25).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import pytest  # pylint: disable=wrong-import-position


@pytest.fixture(scope="session", autouse=True)
def compilation_cache_per_worker(tmp_path_factory):
    """The binaries' persistent compilation cache (vgs_jax.cli) in a folder of this test worker, not
    ~/.cache: subprocess runs of one worker reuse each other's compiles, and two workers never write
    one cache entry at the same time."""
    os.environ.setdefault("VGS_JAX_COMPILATION_CACHE", str(tmp_path_factory.mktemp("jax_compilation_cache")))


# The suite runs on spoken_shapes 1.0.0 (short audio, so CI time stays put): pin it in tests, with
# "spoken_shapes/tiny:1.0.0" names and the `v1` config argument ("configs/shapes_gru.py:tiny,v1").
SHAPES_V1 = "1.0.0"


def _shared_data_dir(tmp_path_factory, folder: str, name: str) -> pathlib.Path:
    """A data_dir holding TFDS dataset `name` ("spoken_shapes/tiny:1.0.0"), built by the first test
    process of this run that asks (under xdist, in the run's base temp folder, which every worker's
    own base temp sits in) while the others wait on a file lock, then reused by them."""
    from vgs_jax import data_sources

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    data_dir = root / folder
    data_dir.mkdir(exist_ok=True)
    with open(root / f"{folder}.lock", "w") as lock:  # closing it releases the lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        data_sources.open_split(name, "train", data_dir=str(data_dir), build_if_missing=True)
    return data_dir


def _v1_data_dir(tmp_path_factory, config: str):
    """Yields a data_dir holding spoken_shapes/<config> 1.0.0 (built once per run); after the session, an
    error if a test built another version (the default, 2.0.0) of it there, i.e. forgot the pin."""
    data_dir = _shared_data_dir(tmp_path_factory, f"tfds_{config}", f"spoken_shapes/{config}:{SHAPES_V1}")
    yield str(data_dir)
    others = sorted(p.name for p in data_dir.glob(f"spoken_shapes/{config}/*") if p.name != SHAPES_V1)
    assert not others, (f"a test built spoken_shapes/{config} {others} into the session's data_dir {data_dir}: pin "
                        f"1.0.0 (name 'spoken_shapes/{config}:1.0.0', config argument ':tiny,v1')")


@pytest.fixture(scope="session")
def shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding spoken_shapes/tiny 1.0.0 (built once per run, in seconds)."""
    yield from _v1_data_dir(tmp_path_factory, "tiny")


@pytest.fixture(scope="session")
def quick_shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding spoken_shapes/quick 1.0.0 (100 test images; built once per run, ~32 s)."""
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
    once per run)."""
    return str(_shared_data_dir(tmp_path_factory, "tfds_multi", "spoken_shapes/tiny_multi:2.0.0"))


@pytest.fixture(scope="session")
def moving_shapes_data_dir(tmp_path_factory):
    """A TFDS data_dir holding moving_shapes/clips_tiny (16/4/4 3-second clips; built once per run, ~5 s)."""
    return str(_shared_data_dir(tmp_path_factory, "tfds_moving_shapes", "moving_shapes/clips_tiny"))
