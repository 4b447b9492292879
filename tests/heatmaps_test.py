"""Tests of vgs_jax.analysis.heatmaps: PNGs are written and inputs are validated."""

import numpy as np
import pytest
from PIL import Image

from vgs_jax.analysis import heatmaps
from vgs_jax.audio_features import Featurizer

WORDS = [("a", 0.0, 0.1), ("red", 0.1, 0.4), ("circle", 0.4, 0.9)]


def _inputs():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), rng.normal(size=(4, 4, 6))


def test_writes_a_png_with_one_panel_per_word(tmp_path):
    image, mm = _inputs()
    path = heatmaps.plot_word_heatmaps(image, mm, WORDS, str(tmp_path / "sub" / "x.png"), caption="a red circle")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 3 * 200  # three panels side by side
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 10  # not blank
    two = heatmaps.plot_word_heatmaps(image, mm, WORDS, str(tmp_path / "y.png"), only=["circle", "red"])
    with Image.open(two) as im:
        assert im.size[0] < 3 * 200


def test_validates_inputs(tmp_path):
    image, mm = _inputs()
    out = str(tmp_path / "z.png")
    with pytest.raises(ValueError, match="image must be"):
        heatmaps.plot_word_heatmaps(image[0, 0], mm, WORDS, out)
    with pytest.raises(ValueError, match=r"matchmap must be a non-empty \[H, W, T\]"):
        heatmaps.plot_word_heatmaps(image, mm[0], WORDS, out)
    with pytest.raises(ValueError, match="must name a .png"):
        heatmaps.plot_word_heatmaps(image, mm, WORDS, str(tmp_path / "z.jpg"))
    with pytest.raises(ValueError, match="words is empty"):
        heatmaps.plot_word_heatmaps(image, mm, [], out)
    with pytest.raises(ValueError, match="has frames"):
        heatmaps.plot_word_heatmaps(image, mm, [("late", 5.0, 6.0)], out)


def test_run_heatmaps_with_stub_encoders(tmp_path):
    image, mm = _inputs()
    examples = [{"audio": np.zeros(800, np.int16), "image": image, "words": {
        "word": [w.encode() for w, _, _ in WORDS], "start": [s for _, s, _ in WORDS], "end": [e for _, _, e in WORDS]},
        "text": b"a red circle", "caption_id": 7 + k} for k in range(3)]

    def featurize(wav):
        return np.zeros((len(wav) // 160, 2), np.float32)

    featurizer = Featurizer(featurize, pad_value=0.0, num_features=2)

    def audio_maps_fn(x, mask):
        return np.ones((x.shape[0], 6, 3)), np.ones((x.shape[0], 6), bool)

    def image_maps_fn(images):
        return np.ones((images.shape[0], 4, 4, 3)), np.ones((images.shape[0], 4, 4), bool)

    paths = heatmaps.run_heatmaps(audio_maps_fn, image_maps_fn, examples, str(tmp_path), featurizer=featurizer,
                                  max_examples=2)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["heatmap_7.png", "heatmap_8.png"]
    assert all((tmp_path / p.rsplit("/", 1)[1]).stat().st_size > 1000 for p in paths)
