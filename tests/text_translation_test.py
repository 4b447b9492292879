"""Translations as the text side (`config.text.language`, configs/shapes_mtl_asr.py:language=...): each utterance's
text is its parallel caption in another language, the text tasks train on it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgs_jax import config_lib
from vgs_jax import data_sources
from vgs_jax import text_units
from vgs_jax import train
from vgs_jax.kws import pivot
from vgs_jax.models import dual_encoder
from vgs_jax.objectives import ctc
from vgs_jax.objectives import multitask
from vgs_jax.objectives.registry import make_loss_fn


def _hindi_config(data_dir: str, **weights):
    spec = "configs/shapes_mtl_asr.py:tiny,language=hi" + "".join(f",{k}={v}" for k, v in weights.items())
    config = config_lib.load_config(spec)
    config.dataset.name = "spoken_shapes/tiny_multi:2.0.0"  # every language of the same images (session fixture)
    config.dataset.data_dir = data_dir
    return config


def _texts(source, language: str) -> dict[int, str]:
    """meaning_id -> text of `language`'s caption, by reading every example (the slow obvious version)."""
    out = {}
    for i in range(len(source)):
        ex = source[i]
        if ex["language"].decode() == language:
            out[int(ex["meaning_id"])] = ex["text"].decode()
    return out


def test_text_fed_is_the_parallel_caption_in_the_other_language(multi_shapes_data_dir):
    config = _hindi_config(multi_shapes_data_dir, text_image=1)
    assert config.model.text.vocab_size == len(text_units.TRANSLATION_CHARACTERS["hi"])
    fields = text_units.example_fields(config)
    vocab = text_units.config_vocabulary(config)
    for split in ("train", "test"):
        source = data_sources.open_config_split(config.dataset, split)
        hindi = _texts(source, "hi")
        english = [i for i in range(len(source)) if source[i]["language"].decode() == "en"]
        assert len(english) == len(hindi) > 0
        for i in english:
            ex = source[i]
            got = fields(ex)
            assert "".join(text_units.decode(got[text_units.IDS_KEY], got[text_units.LEN_KEY], vocab)) == \
                hindi[int(ex["meaning_id"])] != ex["text"].decode()
    # Every caption of the fixture is spelled in its language's characters.
    for language, chars in text_units.TRANSLATION_CHARACTERS.items():
        for text in _texts(source, language).values():
            text_units.encode(list(text), chars)


def test_loss_on_a_translated_batch_by_hand(multi_shapes_data_dir):
    """The multi-task loss of two English utterances whose text side is Hindi: speech->image + CTC on the Hindi
    characters + text->image from the Hindi text, each computed directly."""
    config = _hindi_config(multi_shapes_data_dir, text_image=0.5, asr=0.25)
    source = data_sources.open_config_split(config.dataset, "validation")
    exs = [source[i] for i in range(len(source)) if source[i]["language"].decode() == "en"][:2]
    fields = text_units.example_fields(config, training=False)
    ids = np.stack([fields(ex)[text_units.IDS_KEY] for ex in exs])
    lengths = np.array([fields(ex)[text_units.LEN_KEY] for ex in exs])
    hindi = _texts(source, "hi")
    by_hand = [text_units.encode(list(hindi[int(ex["meaning_id"])]), text_units.TRANSLATION_CHARACTERS["hi"])
               for ex in exs]
    hand_ids = jnp.asarray(np.stack([np.pad(x, (0, ids.shape[1] - len(x))) for x in by_hand]))
    hand_len = jnp.asarray([len(x) for x in by_hand], jnp.int32)
    rng = np.random.default_rng(0)
    batch = {"audio": jnp.asarray(rng.normal(size=(2, 60, 39)), jnp.float32), "audio_mask": jnp.ones((2, 60), bool),
             "image": jnp.stack([jnp.asarray(ex["image"]) for ex in exs]),
             "image_id": jnp.asarray([ex["image_id"] for ex in exs], jnp.int32),
             "example_mask": jnp.ones((2,), bool), text_units.IDS_KEY: jnp.asarray(ids),
             text_units.LEN_KEY: jnp.asarray(lengths), text_units.AVAILABLE_KEY: jnp.ones((2,), bool)}
    template = dual_encoder.Template(train.create_model(config))
    base = make_loss_fn(config.loss, config.model)
    fn = multitask.make_multitask_loss_fn(base, config)

    @jax.jit
    def losses(params, batch, hand_ids, hand_len):
        model, key = template.merge(params), jax.random.key(0)
        speech = model.encode_speech(batch["audio"], batch["audio_mask"])
        image = model.encode_image(batch["image"], batch["example_mask"])
        total, metrics = fn(model, speech, image, batch, key)
        si, _ = base(model, speech, image, batch, key)
        ti, _ = base(model, model.encode_text(hand_ids, hand_len), image, batch, key)
        asr, _ = ctc.ctc_loss(speech["ctc_logits"], speech["ctc_mask"], hand_ids, hand_len, jnp.ones((2,), bool))
        return total, metrics, si, ti, asr, speech["ctc_logits"].shape[-1]

    total, metrics, si, ti, asr, classes = losses(template.initial_params, batch, hand_ids, hand_len)
    np.testing.assert_allclose(float(metrics["asr_loss"]), float(asr), rtol=1e-6)
    np.testing.assert_allclose(float(metrics["text_image_loss"]), float(ti), rtol=1e-6)
    np.testing.assert_allclose(float(total), float(si) + 0.25 * float(asr) + 0.5 * float(ti), rtol=1e-6)
    assert classes == len(text_units.TRANSLATION_CHARACTERS["hi"]) + 1


def test_translation_errors_name_the_fix():
    with pytest.raises(ValueError, match="spoken_shapes 1.0.0"):
        config_lib.load_config("configs/shapes_mtl_asr.py:tiny,v1,language=hi")
    with pytest.raises(ValueError, match="units='chars'"):
        config_lib.load_config("configs/shapes_mtl_asr.py:tiny,units=phones,language=hi")
    with pytest.raises(ValueError, match="config.text.language='de'"):
        config_lib.load_config("configs/shapes_mtl_asr.py:tiny,language=de")
    with pytest.raises(ValueError, match="config.text.language needs parallel captions"):
        pivot.parallel_dataset_name("spoken_shapes/tiny:1.0.0", "hi", field="config.text.language")
    assert pivot.parallel_dataset_name("spoken_shapes/quick:2.0.0", "ja", field="x") == "spoken_shapes/quick_ja:2.0.0"
