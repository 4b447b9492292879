"""Edit distance and error rates by hand; text units (vocabularies, encoding, the transcribed fraction)."""

import ml_collections
import numpy as np
import pytest

from vgs_jax import text_metrics
from vgs_jax import text_units


@pytest.mark.parametrize("ref, hyp, distance", [
    ("kitten", "sitting", 3),  # k->s, e->i, +g
    ("", "abc", 3),
    ("abc", "", 3),
    ("abc", "abc", 0),
    ("abcd", "acbd", 2),  # a transposition is two edits
    (["ɹ", "ɛ", "d"], ["ɹ", "d"], 1),  # phones as units
])
def test_edit_distance_by_hand(ref, hyp, distance):
    assert text_metrics.edit_distance(ref, hyp) == distance


def test_error_rate_sums_edits_over_reference_units():
    result = text_metrics.error_rate(["abcd", "xy"], ["abd", "xyzz"])  # 1 deletion + 2 insertions over 6
    assert result == {"error_rate": 0.5, "errors": 3, "reference_units": 6, "utterances": 2}
    with pytest.raises(ValueError, match="references"):
        text_metrics.error_rate(["a"], [])


def test_units_encode_decode_round_trip():
    example = {"text": b"A red Circle", "phones": {"phone": [b"\xcb\x88\xc9\xb9", b"\xc9\x9b", b"d"]}}
    vocab = text_units.vocabulary("chars")
    ids = text_units.encode(text_units.units_of(example, "chars"), vocab)
    assert ids.min() >= 1 and "".join(text_units.decode(ids, len(ids), vocab)) == "a red circle"
    phones = text_units.units_of(example, "phones")
    assert phones == ["ɹ", "ɛ", "d"]  # stress mark removed
    assert text_units.decode(text_units.encode(phones, text_units.PHONES), 3, text_units.PHONES) == phones
    with pytest.raises(ValueError, match=r"\['!'\]"):
        text_units.encode(list("hi!"), vocab)
    with pytest.raises(ValueError, match="units"):
        text_units.vocabulary("words")


def test_transcribed_fraction_is_a_fixed_draw_per_caption():
    drawn = [text_units.has_transcription(c, 0.3, seed=7) for c in range(2000)]
    assert 0.26 < np.mean(drawn) < 0.34
    assert drawn == [text_units.has_transcription(c, 0.3, seed=7) for c in range(2000)]
    assert all(text_units.has_transcription(c, 1.0, seed=7) for c in range(10))
    assert not any(text_units.has_transcription(c, 0.0, seed=7) for c in range(10))


def _config(**text):
    return ml_collections.ConfigDict(dict(
        seed=0, loss=dict(name="platalea_hinge"), train=dict(embedding_cache_chunks=1),
        text={"units": "chars", "max_len": 8, "fraction": 1.0, **text}, model=dict(text=dict(vocab_size=28))))


def test_example_fields_pad_and_check():
    fields = text_units.example_fields(_config())
    out = fields({"text": b"a cat", "caption_id": 3})
    assert out[text_units.IDS_KEY].shape == (8,) and int(out[text_units.LEN_KEY]) == 5 and out[text_units.AVAILABLE_KEY]
    with pytest.raises(ValueError, match="max_len"):
        fields({"text": b"a long caption", "caption_id": 4})
    with pytest.raises(ValueError, match="fraction"):
        text_units.check_config(_config(fraction=1.5))
    bad = _config()
    bad.model.text.vocab_size = 30
    with pytest.raises(ValueError, match="vocab_size=28"):
        text_units.check_config(bad)
