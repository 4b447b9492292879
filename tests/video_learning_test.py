"""The AVLNet-style model learns clip retrieval on moving_shapes/clips_tiny; its checkpoint scores the
same through `vgs_jax.video.evaluation.evaluate_checkpoint` (what `python -m vgs_jax.evaluate` calls)."""
import numpy as np
import pytest

from vgs_jax import config_lib
from vgs_jax.video import evaluation as video_evaluation
from vgs_jax.video import train


def _r5(results) -> float:
    return float(np.mean([results[d]["r5"] for d in ("speech_to_image", "image_to_speech")]))


def test_avlnet_learns_clips_tiny(moving_shapes_data_dir, tmp_path):
    config = config_lib.load_config("configs/moving_shapes_avlnet.py:tiny")
    config.dataset.data_dir = moving_shapes_data_dir
    # 16 training clips (the 4 test clips are too few to rank): retrieval among the training clips.
    config.dataset.eval_split = "train"
    config.num_train_steps, config.lr, config.eval_batch_size = 30, 3e-3, 16
    results = train.train_and_evaluate(config, str(tmp_path))
    chance = results["trained"]["chance"]["r5"]  # 5 / 16
    assert _r5(results["trained"]) >= 2 * chance, results
    assert _r5(results["random_init"]) <= 1.5 * chance, results
    assert video_evaluation.is_video_run(str(tmp_path))
    step, saved, again = video_evaluation.evaluate_checkpoint(str(tmp_path), split="train")
    assert step == 30 and saved.video.model == "avlnet"
    assert again["speech_to_image"]["r5"] == pytest.approx(results["trained"]["speech_to_image"]["r5"])
    with pytest.raises(ValueError, match="already holds a video run"):
        train.train_and_evaluate(config, str(tmp_path))
