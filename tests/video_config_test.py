"""configs/moving_shapes_*.py load with every argument, and bad choices are named."""
import pytest

from vgs_jax import config_lib
from vgs_jax.models import dual_encoder
from vgs_jax.video import train


@pytest.mark.parametrize("name", ["moving_shapes_boggust", "moving_shapes_avlnet"])
def test_video_configs_load(name):
    for arg in ("", ":tiny", ":tiny,strategy=center", ":episodes,strategy=mention"):
        config = config_lib.load_config(f"configs/{name}.py{arg}")
        assert config.video.model == name.split("_")[-1] and config.loss.name == "mms"
        assert config.model.image.image_size == config.video.image_size
    episodes = config_lib.load_config(f"configs/{name}.py:episodes,strategy=mention")
    assert episodes.dataset.name == "moving_shapes/episodes_small" and episodes.video.fragment_seconds == 3.0
    with pytest.raises(ValueError, match="choose one of"):
        config_lib.load_config(f"configs/{name}.py:strategy=random")


def test_unknown_model_or_loss_is_named(tmp_path):
    config = config_lib.load_config("configs/moving_shapes_avlnet.py:tiny")
    config.loss.name = "triplet"
    with pytest.raises(ValueError, match="config.loss.name must be one of"):
        train.train_and_evaluate(config, str(tmp_path))
    config.video.model = "clip"
    with pytest.raises(ValueError, match="config.video.model must be one of"):
        train.train_and_evaluate(config, str(tmp_path))
    assert dual_encoder.registry.IMAGE_ENCODERS["video_3d2d"].__name__ == "VideoEncoder"
