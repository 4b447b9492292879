"""configs/coco_gru.py: one training step on the SpokenCOCO dummy corpus; clear no-data error."""

import os
import subprocess
import sys

import tensorflow_datasets as tfds

from tfds_builders import spoken_coco
from vgs_jax import config_lib
from vgs_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DUMMY = os.path.join(REPO, "tfds_builders", "spoken_coco", "dummy_data")


def test_tiny_trains_one_step_on_the_built_dummy_corpus(tmp_path):
    data_dir = str(tmp_path / "data")
    builder = tfds.builder("spoken_coco/tiny", data_dir=data_dir)
    assert isinstance(builder, spoken_coco.Builder)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=DUMMY))
    config = config_lib.load_config(os.path.join(REPO, "configs/coco_gru.py:tiny"))
    with config.unlocked():
        config.dataset.data_dir = data_dir
        config.num_train_steps = 1
        config.eval_every_steps = 1
        config.checkpoint_every_steps = 1
    metrics = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert metrics, "train_and_evaluate returned no metrics"
    finite = [v for v in metrics.values() if isinstance(v, float)]
    assert finite and all(v == v for v in finite), metrics  # no NaN
    assert os.path.isdir(tmp_path / "run" / "checkpoints")


def test_full_config_without_data_names_files_dir_and_readme(tmp_path):
    env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "data"), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "vgs_jax.main", "--config=configs/coco_gru.py",
         f"--workdir={tmp_path / 'run'}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    err = proc.stderr
    assert err.startswith("error: spoken_coco: 5 required file(s) missing") and "Traceback" not in err, err[-3000:]
    for name in ("SpokenCOCO/SpokenCOCO_train.json", "SpokenCOCO/SpokenCOCO_val.json",
                 "train2014", "val2014", "dataset_coco.json",
                 str(tmp_path / "data" / "downloads" / "manual" / "spoken_coco"),
                 "tfds_builders/spoken_coco/README.md, section 'Getting the data'"):
        assert name in err, (name, err[-3000:])
