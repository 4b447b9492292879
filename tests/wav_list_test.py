"""Activation extraction from a list of WAV files: reading, resampling, errors and the extracted frames."""

from flax import nnx
import jax
import numpy as np
import pytest
import scipy.signal
import soundfile

from vgs_jax import audio_features
from vgs_jax import config_lib
from vgs_jax.analysis import activations
from vgs_jax.models import dual_encoder


def _write(path, samples, rate=16000):
    soundfile.write(str(path), samples, rate, subtype="PCM_16")
    return str(path)


def test_read_wav_mono_resampled_and_errors(tmp_path):
    x = (np.sin(np.arange(8000) * 0.05) * 12000).astype(np.int16)
    np.testing.assert_array_equal(activations.read_wav(_write(tmp_path / "a.wav", x)), x)
    stereo = np.stack([x, x // 3], axis=1)
    got = activations.read_wav(_write(tmp_path / "s.wav", stereo, rate=8000))
    want = scipy.signal.resample_poly((x.astype(np.float64) + (x // 3)) / 2 / 32768.0, 2, 1)
    assert got.dtype == np.int16 and len(got) == 16000
    np.testing.assert_allclose(got, np.round(want * 32768), atol=1)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        activations.read_wav(str(tmp_path / "missing.wav"))
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(ValueError, match="bad.wav"):
        activations.read_wav(str(tmp_path / "bad.wav"))
    with pytest.raises(ValueError, match="empty.wav.*no samples"):
        activations.read_wav(_write(tmp_path / "empty.wav", np.zeros(0, np.int16)))


def test_read_wav_list(tmp_path):
    (tmp_path / "sub").mkdir()
    listing = tmp_path / "sub" / "list.txt"
    listing.write_text("# comment\none.wav\n\n/abs/two.wav\n")
    assert activations.read_wav_list(str(listing)) == [str(tmp_path / "sub" / "one.wav"), "/abs/two.wav"]
    (tmp_path / "blank.txt").write_text("\n# nothing\n")
    with pytest.raises(ValueError, match="blank.txt"):
        activations.read_wav_list(str(tmp_path / "blank.txt"))
    with pytest.raises(FileNotFoundError, match="nolist"):
        activations.read_wav_list(str(tmp_path / "nolist.txt"))


def test_extract_wavs_matches_the_model(tmp_path):
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    recipe = config.features.recipe
    model = dual_encoder.build_dual_encoder(config.model, num_features=audio_features.num_features(recipe),
                                            rngs=nnx.Rngs(0))
    template = dual_encoder.Template(model)
    rng = np.random.default_rng(0)
    waves = [rng.integers(-5000, 5000, n).astype(np.int16) for n in (9000, 14000)]
    paths = [_write(tmp_path / f"w{k}.wav", w) for k, w in enumerate(waves)]
    acts = activations.extract_wavs(template, template.initial_params, config, paths, key={"k": 1}, batch_size=2)
    assert acts.layers == ["conv", "gru_0"] and [m["num_samples"] for m in acts.meta] == [9000, 14000]

    @jax.jit
    def reference(params, feats, mask):  # one utterance, no padding
        encoder = template.merge(params).speech_encoder
        out = encoder.frame_outputs(feats, mask)
        return out, encoder.pool.weights(out["gru_0"], out["mask"])

    for i, w in enumerate(waves):
        feats = audio_features.compute(w, recipe)[None]
        out, alpha = reference(template.initial_params, feats, np.ones(feats.shape[:2], bool))
        n = int(out["mask"].sum())
        assert len(acts.frame_times(i)) == n == len(acts.attention[i])
        for layer in acts.layers:
            np.testing.assert_allclose(acts.frames[layer][i], np.asarray(out[layer][0, :n]), atol=2e-5)
        np.testing.assert_allclose(acts.pooled[i], np.asarray(out["pooled"][0]), atol=2e-5)
        # The frame-level attention is the mean over dimensions of the pooling weights; it sums to 1.
        np.testing.assert_allclose(acts.attention[i], np.asarray(alpha[0]).mean(axis=1), atol=1e-5)
        assert acts.attention[i].sum() == pytest.approx(1.0, abs=1e-5)
    path = str(tmp_path / "out" / "acts.npz")
    activations.save(path, acts)
    back = activations.load(path)
    assert back.meta == acts.meta and back.key == {"k": 1}
    np.testing.assert_allclose(back.attention[1], acts.attention[1])
    with np.load(path) as z:
        np.testing.assert_allclose(z["frame_times"], np.concatenate([acts.frame_times(i) for i in range(2)]))
    short = _write(tmp_path / "short.wav", np.ones(300, np.int16))
    with pytest.raises(ValueError, match="short.wav"):
        activations.extract_wavs(template, template.initial_params, config, [paths[0], short], key={})
