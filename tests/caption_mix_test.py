"""Tests of vgs_jax.caption_mix: kept fraction, synthetic pool, ratio, lengths, errors."""
import numpy as np
import pytest

from vgs_jax import audio_features
from vgs_jax import caption_mix
from vgs_jax import data_sources
from vgs_jax import input_pipeline

SYNTHETIC_ID = 1000  # Synthetic caption ids are the real ones + 1000.


def sources(n=20):
    """(real, synthetic): n captions (image i // 5, text "c<i>"), the synthetic ones spoken
    shorter, with caption_id + SYNTHETIC_ID."""
    def ex(i, synthetic):
        length = 160 * (3 + i % 7) + (0 if synthetic else 80)
        return {"audio": np.full(length, i, np.int16), "image": np.full((4, 4, 3), i, np.uint8),
                "image_id": i // 5, "caption_id": i + SYNTHETIC_ID * synthetic,
                "text": f"c{i}".encode()}
    return [ex(i, False) for i in range(n)], [ex(i, True) for i in range(n)]


def test_kept_indices_and_slot_counts_by_hand():
    kept = caption_mix.kept_indices(100, 0.25)
    assert kept.size == 25 and len(set(kept)) == 25 and np.all(np.diff(kept) > 0)
    assert kept.min() >= 0 and kept.max() < 100
    np.testing.assert_array_equal(kept, caption_mix.kept_indices(100, 0.25))  # No run seed.
    assert caption_mix.kept_indices(3, 0.01).size == 1
    assert caption_mix.slot_counts(5, 15, 0.75) == (5, 15)  # Each caption once.
    assert caption_mix.slot_counts(10, 15, 0.5) == (15, 15)  # Real upsampled x1.5.
    assert caption_mix.slot_counts(10, 3, 0.5) == (10, 10)  # Synthetic repeated.
    assert caption_mix.slot_counts(10, 3, 0.0) == (10, 0)
    with pytest.raises(ValueError, match=r"synthetic_ratio=1\.0 must be in \[0, 1\)"):
        caption_mix.slot_counts(10, 3, 1.0)
    with pytest.raises(ValueError, match=r"spoken_fraction=0 must be in \(0, 1\]"):
        caption_mix.kept_indices(10, 0)


def test_rest_adds_the_synthetic_speech_of_exactly_the_dropped_captions():
    real, synthetic = sources(20)
    mixed = caption_mix.mix(real, synthetic, spoken_fraction=0.25, synthetic_ratio=0.75)
    exs = [mixed[i] for i in range(len(mixed))]
    assert len(exs) == 20 and mixed.synthetic.sum() == 15
    spoken = {e["text"] for e in exs if e["caption_id"] < SYNTHETIC_ID}
    tts = {e["text"] for e in exs if e["caption_id"] >= SYNTHETIC_ID}
    assert len(spoken) == 5 and len(tts) == 15 and not spoken & tts
    assert spoken | tts == {e["text"] for e in real}
    np.testing.assert_array_equal(mixed.synthetic, [e["caption_id"] >= SYNTHETIC_ID for e in exs])
    # Without augmentation: only the kept real captions, the same ones.
    alone = caption_mix.mix(real, None, spoken_fraction=0.25)
    assert {alone[i]["text"] for i in range(len(alone))} == spoken


def test_observed_mix_in_training_batches_matches_the_ratio():
    real, synthetic = sources(40)
    ratio = 0.3
    mixed = caption_mix.mix(real, synthetic, synthetic_ratio=ratio, synthetic_for="all")
    assert caption_mix.slot_counts(40, 40, ratio) == (93, 40)  # 40 / 0.3 = 133.3 slots.
    featurizer = audio_features.Featurizer(lambda w: np.ones((w.shape[0] // 160, 2), np.float32),
                                           pad_value=0.0, num_features=2)
    it = input_pipeline.make_train_iterator(mixed, global_batch_size=8, featurizer=featurizer,
                                            seed=0, max_frames=None, bucket_boundaries=(8, 16),
                                            num_epochs=4)
    ids = np.concatenate([b["caption_id"][b["example_mask"]] for b in it])
    assert ids.size == 4 * (133 // 8) * 8
    assert abs(np.mean(ids >= SYNTHETIC_ID) - ratio) < 0.02
    assert set(ids[ids >= SYNTHETIC_ID] - SYNTHETIC_ID) == set(range(40))  # Every one is used.
    # Lengths for bucketing come from the underlying sources.
    lengths = data_sources.example_lengths(mixed)
    np.testing.assert_array_equal(lengths, [mixed[i]["audio"].shape[0] for i in range(len(mixed))])


def test_bad_mix_settings_name_the_field():
    real, synthetic = sources(10)
    with pytest.raises(ValueError, match=r"synthetic_ratio=0\.5 needs a dataset\.tts\.synthetic_split"):
        caption_mix.mix(real, None, synthetic_ratio=0.5)
    with pytest.raises(ValueError, match=r"every synthetic caption's real speech is kept"):
        caption_mix.mix(real, synthetic, spoken_fraction=1.0, synthetic_ratio=0.5)
    with pytest.raises(ValueError, match=r"synthetic_for='some'; choose one of \['rest', 'all'\]"):
        caption_mix.mix(real, synthetic, synthetic_for="some")
