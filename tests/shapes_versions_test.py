"""spoken_shapes versions: 2.0.0 is the default, 1.0.0 stays loadable with a pin (builder, configs, errors)."""

import glob
import os

import pytest
import tensorflow_datasets as tfds

import tfds_builders.spoken_shapes  # pylint: disable=unused-import  (registers the builder)
from vgs_jax import config_lib
from vgs_jax import data_sources

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES_CONFIGS = sorted(os.path.basename(f) for f in glob.glob(os.path.join(REPO, "configs", "shapes_*.py")))
# Configs whose data exist only at 2.0.0 (other languages, TTS speech, parallel captions): no `v1`.
V2_ONLY = ("shapes_gru_tts.py", "shapes_kws_crosslingual.py", "shapes_multilingual_bi.py",
           "shapes_multilingual_mono.py", "shapes_multilingual_tri.py")
V2_SPLITS = ["test", "test_compositional", "test_unseen_speakers", "train", "validation"]


def test_the_default_version_is_2_with_its_splits(tmp_path):
    default = tfds.builder("spoken_shapes/tiny", data_dir=str(tmp_path))
    assert str(default.version) == "2.0.0" and sorted(map(str, default.versions)) == ["1.0.0", "2.0.0"]
    # The splits a build writes (the split generators are lazy: nothing is generated here).
    assert sorted(default._split_generators(None)) == V2_SPLITS  # pylint: disable=protected-access
    v1 = tfds.builder("spoken_shapes/tiny:1.0.0", data_dir=str(tmp_path))
    assert sorted(v1._split_generators(None)) == ["test", "train", "validation"]  # pylint: disable=protected-access


@pytest.mark.parametrize("name", SHAPES_CONFIGS)
def test_shapes_configs_pin_a_version(name):
    """Every configs/shapes_*.py names its data with a version: 2.0.0 by default (and `v2`), 1.0.0 with `v1`."""
    path = os.path.join(REPO, "configs", name)
    if name in V2_ONLY:
        assert config_lib.load_config(path).dataset.name.endswith(":2.0.0")
        with pytest.raises(ValueError, match="Unknown config argument 'v1'"):
            config_lib.load_config(f"{path}:v1")
        return
    assert config_lib.load_config(path).dataset.name == "spoken_shapes/small:2.0.0"
    assert config_lib.load_config(f"{path}:v2").dataset.name == "spoken_shapes/small:2.0.0"
    assert config_lib.load_config(f"{path}:tiny,v1").dataset.name == "spoken_shapes/tiny:1.0.0"
    with pytest.raises(ValueError, match="v1 and v2 both given"):
        config_lib.load_config(f"{path}:v1,v2")


def test_an_old_data_dir_loads_with_the_pin_and_errors_name_the_fix(shapes_data_dir):
    # shapes_data_dir holds only spoken_shapes/tiny 1.0.0, as a data_dir made before 2.0.0 was the default.
    source = data_sources.open_split("spoken_shapes/tiny:1.0.0", "test", data_dir=shapes_data_dir)
    assert len(source) == 8 * 5 and "consistent_image_ids" not in source[0]
    with pytest.raises(FileNotFoundError, match=r"'spoken_shapes/tiny' is version 2\.0\.0; .*pin one as "
                                                r"'spoken_shapes/tiny:1\.0\.0' \(.* holds \['1\.0\.0'\]\)"):
        data_sources.open_split("spoken_shapes/tiny", "test", data_dir=shapes_data_dir)
    with pytest.raises(ValueError, match=r"Unknown split 'test_compositional' .*'spoken_shapes/tiny:1\.0\.0' is "
                                         r"version 1\.0\.0; .*pin one as 'spoken_shapes/tiny:2\.0\.0'"):
        data_sources.open_split("spoken_shapes/tiny:1.0.0", "test_compositional", data_dir=shapes_data_dir)
    with pytest.raises(ValueError, match=r"'tiny_hi' .*only at version 2\.0\.0 \(the default\); load "
                                         r"'spoken_shapes/tiny_hi'"):
        data_sources.open_split("spoken_shapes/tiny_hi:1.0.0", "test", data_dir=shapes_data_dir)
