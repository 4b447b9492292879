"""Installing vgs_jax: every package and the configs go into the install; configs load from any folder."""

import os
import shutil
import subprocess
import sys

import pytest
from setuptools.config import setupcfg

from vgs_jax import config_lib

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CONFIGS = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "configs")) if f.endswith(".py") and f != "__init__.py")


def _packages_on_disk() -> set[str]:
    """Dotted names of the folders with an __init__.py under vgs_jax/ and tfds_builders/."""
    found = set()
    for top in ("vgs_jax", "tfds_builders"):
        for folder, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            if "__init__.py" in files:
                found.add(os.path.relpath(folder, REPO).replace(os.sep, "."))
    return found


def _run(code: str, cwd, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_setup_cfg_lists_every_package_and_installs_configs_as_vgs_jax_configs():
    options = setupcfg.read_configuration(os.path.join(REPO, "setup.cfg"))["options"]
    listed = set(options["packages"])
    missing, extra = _packages_on_disk() - listed, listed - _packages_on_disk() - {"vgs_jax.configs"}
    assert not missing and not extra, f"setup.cfg [options] packages: add {sorted(missing)}, drop {sorted(extra)}"
    assert "vgs_jax.configs" in listed and options["package_dir"] == {"vgs_jax.configs": "configs"}


def test_built_package_holds_the_configs_and_loads_them_from_any_folder(tmp_path):
    # What a wheel (`pip install .`, `pip install git+URL`) holds: setuptools' build_py output, offline.
    source, build = tmp_path / "source", tmp_path / "build"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), source)
    for name in ("vgs_jax", "configs", "tfds_builders"):  # a copy: the build writes an egg-info beside setup.cfg
        shutil.copytree(os.path.join(REPO, name), source / name, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                           f"--build-lib={build}"], cwd=source, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(build)) == ["tfds_builders", "vgs_jax"]  # no top-level "configs" package
    shipped = sorted(f[:-3] for f in os.listdir(build / "vgs_jax" / "configs") if f.endswith(".py"))
    assert shipped == sorted(CONFIGS + ["__init__"])
    assert (build / "tfds_builders" / "spoken_shapes" / "README.md").is_file()
    # That copy, first on sys.path as site-packages is after a regular install, serves the configs.
    code = ("from vgs_jax import config_lib; import tfds_builders.spoken_shapes; "
            "c = config_lib.load_config('configs/shapes_gru.py:tiny'); "
            "print(config_lib.packaged_configs_dir(), c.dataset.name, "
            "config_lib.load_config('shapes_rhn').model.speech_encoder)")
    done = _run(code, tmp_path, PYTHONPATH=str(build))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(build / "vgs_jax" / "configs"), "spoken_shapes/tiny:2.0.0", "rhn"]


def test_editable_install_serves_the_checkouts_configs(tmp_path):
    done = _run("from vgs_jax import config_lib; print(config_lib.packaged_configs_dir())", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == os.path.join(REPO, "configs"), (
        "vgs_jax.configs is not installed: reinstall with `pip install -e .`")


@pytest.mark.parametrize("spec", ["configs/shapes_gru.py:tiny", "shapes_gru:tiny", "shapes_gru.py:tiny",
                                  "./configs/shapes_gru.py:tiny"])
def test_load_config_from_another_folder(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = config_lib.load_config(spec)
    assert config.dataset.name == "spoken_shapes/tiny:2.0.0" and config.model.speech_encoder == "platalea_gru"


def test_a_file_in_the_working_directory_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "shapes_gru.py").write_text(
        "from vgs_jax import config_lib\n\ndef get_config(arg=None):\n"
        "    c = config_lib.base_config()\n    c.seed = 7\n    return c\n")
    assert config_lib.load_config("configs/shapes_gru.py").seed == 7
    assert config_lib.load_config("shapes_gru").seed == 123  # a bare name is the installed config


@pytest.mark.parametrize("path", ["configs/shapes_gruu.py", "other/shapes_gru.py", "/elsewhere/configs/shapes_gru.py",
                                  ""])
def test_unknown_config_names_the_file_and_the_installed_ones(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        config_lib.load_config(path + ":tiny")
    message = str(error.value)
    assert repr(path) in message and repr(str(tmp_path)) in message and "shapes_gru, " in message and "shapes_resdavenet" in message


def test_main_config_flag_from_another_folder(tmp_path):
    # main.py's --config flag: an installed config by its checkout path, with an override; then a typo.
    code = ("import sys; from absl import flags; from vgs_jax import main; flags.FLAGS(sys.argv); "
            "print(flags.FLAGS.config.batch_size, flags.FLAGS.config.dataset.name)\n"
            "try: flags.FLAGS['config'].parse('configs/shapes_gruu.py:tiny')\n"
            "except flags.IllegalFlagValueError as e: print(e)")
    done = _run(code, tmp_path, "--config=configs/shapes_gru.py:tiny", "--config.batch_size=4", "--workdir=w")
    assert done.returncode == 0, done.stderr
    parsed, error = done.stdout.split("\n", 1)
    assert parsed.split() == ["4", "spoken_shapes/tiny:2.0.0"]
    assert error.startswith("flag --config=configs/shapes_gruu.py:tiny: Config file 'configs/shapes_gruu.py' does "
                            f"not exist (working directory {str(tmp_path)!r}); installed configs (give "
                            "configs/NAME.py or NAME): coco_gru, ")
