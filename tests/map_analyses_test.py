"""The matchmap/VQ/semantic analyses wired to checkpoints (`map_analyses`) and the analyze binary."""

import json
import os
from collections import Counter

from flax import nnx
import numpy as np
import pytest

from vgs_jax import audio_features
from vgs_jax import config_lib
from vgs_jax import inference
from vgs_jax import train
from vgs_jax.analysis import localization
from vgs_jax.analysis import map_analyses
from vgs_jax.analysis import vq_units
from vgs_jax.models import dual_encoder
from vgs_jax.models.capabilities import FrameClock

MAP_ONLY = ",".join(map_analyses.MAP_ANALYSES)


def test_frame_clock_hand_values_and_slow_centres():
    assert map_analyses.frame_clock("davenet_logmel", FrameClock(16)) == pytest.approx((0.16, -0.08))
    assert map_analyses.frame_clock("davenet_logmel", FrameClock(1)) == pytest.approx((0.01, -0.005))
    assert map_analyses.frame_clock("platalea_mfcc", FrameClock(4)) == pytest.approx((0.04, 0.005 - 0.02))
    # a VALID conv front end (kernel 6, stride 2): frame j centred on input frame 2 j + 2.5
    shift, offset = map_analyses.frame_clock("davenet_logmel", FrameClock(2, 6))
    assert (3 + 0.5) * shift + offset == pytest.approx(0.01 * (2 * 3 + 2.5))
    for recipe in ("davenet_logmel", "platalea_mfcc"):
        o = 0.005 if recipe == "platalea_mfcc" else 0.0
        for k in range(1, 6):
            shift, offset = map_analyses.frame_clock(recipe, FrameClock(2 ** (k - 1)))
            for j in range(5):
                centre = j  # input frame at the centre of frame j: doubled per halving
                for _ in range(k - 1):
                    centre *= 2
                # part C's convention: frame j spans [j, j + 1) * shift + offset, centre at + shift / 2
                assert (j + 0.5) * shift + offset == pytest.approx(0.01 * centre + o)
    with pytest.raises(ValueError, match="stride"):
        FrameClock(0)


def test_vq_alignment_shift_equals_negative_offset_slow():
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, 4, 30), rng.integers(0, 4, 22)]
    # Boundaries off the frame-centre grid (multiples of 5 ms), so float rounding cannot decide a frame.
    phones = [[("a", 0.0, 0.213), ("b", 0.213, 0.507), ("c", 0.553, 1.103)], [("b", 0.023, 0.407), ("a", 0.407, 0.903)]]
    for k in (1, 2, 3):
        shift, offset = map_analyses.frame_clock("davenet_logmel", FrameClock(2 ** (k - 1)))
        shifted = []
        for ph in phones:
            field = {"phone": [p for p, _, _ in ph], "start": [s for _, s, _ in ph], "end": [e for _, _, e in ph]}
            shifted.append(localization.intervals(map_analyses._shifted(field, "phone", -offset), "phone"))
        got = vq_units.code_phone_scores(codes, shifted, frame_shift=shift, frame_offset=0.0)
        # Slow: frame i is centred at i * shift (the davenet_logmel feature offset is 0).
        pairs = []
        for c, ph in zip(codes, phones):
            for i, code in enumerate(c):
                label = next((p for p, s, e in ph if s <= i * shift < e), None)
                if label is not None:
                    pairs.append((int(code), label))
        by_code = Counter(c for c, _ in pairs)
        slow = sum(max(n for (c2, _), n in Counter(pairs).items() if c2 == c) for c in by_code) / len(pairs)
        assert got["num_frames"] == len(pairs) and got["purity"] == pytest.approx(slow)


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="lexicon_clusters"):
        map_analyses.MapSettings(lexicon_clusters=0)
    with pytest.raises(ValueError, match="sick_data_dir"):
        map_analyses.MapSettings(sick_data_dir=str(tmp_path / "nope"))


@pytest.fixture(scope="module")
def vq_workdir(shapes_data_dir, tmp_path_factory):
    config = config_lib.load_config("configs/shapes_resdavenet.py:tiny,vq=23,v1")
    config.num_train_steps = 2
    config.dataset.data_dir = shapes_data_dir
    workdir = str(tmp_path_factory.mktemp("map_analyses") / "run")
    train.train_and_evaluate(config, workdir)
    return workdir


def test_model_fns_match_the_model_run_directly(vq_workdir):
    from vgs_jax import evaluation
    from vgs_jax.models.conv_map_layers import downsampled_lengths

    _, config, template, params = evaluation.restore_model(vq_workdir, "best")
    settings = map_analyses.MapSettings(batch_size=4, pad_frames=64)
    fns = map_analyses.model_fns(template, params, config, settings)
    examples = map_analyses.load_examples(config, "validation", 3)
    batch = next(inference.feature_batches(examples, audio_features.Featurizer.from_recipe(config.features.recipe)))
    lengths = batch["mask"].sum(axis=1)
    assert lengths.min() < lengths.max()  # so the shortest caption is padded in the batch
    maps, mask = fns["trained"].audio_maps(batch["features"], batch["mask"])
    imaps, imask = fns["trained"].image_maps(np.stack([ex["image"] for ex in examples]))
    codes, cmask = fns["trained"].codes_fn("quant2")(batch["features"], batch["mask"])
    emb = fns["trained"].embed(batch["features"], batch["mask"])
    model = template.merge(params)
    images = model.encode_image(np.stack([ex["image"] for ex in examples]))
    np.testing.assert_allclose(imaps, np.asarray(images["map"]), atol=1e-4)
    assert imask.all()
    for r in [int(np.argmin(lengths))]:  # the most padded caption alone, unpadded, eagerly (slow: once)
        x = batch["features"][r:r + 1, :lengths[r]]
        direct = model.encode_speech(x, np.ones(x.shape[:2], bool))
        n = int(direct["map_mask"].sum())
        assert n == -(-lengths[r] // 16) == mask[r].sum()
        np.testing.assert_allclose(maps[r, :n], np.asarray(direct["map"][0, :n]), atol=1e-4)
        np.testing.assert_allclose(emb[r], np.asarray(direct["embedding"][0]), atol=1e-5)
        slow = (lengths[r] + 1) // 2  # quant2 follows layer1: one halving, a frame per valid centre
        assert cmask[r].sum() == slow == int(downsampled_lengths(np.array([lengths[r]]), 1)[0])
        np.testing.assert_array_equal(codes[r, :slow], np.asarray(direct["vq_stats"]["quant2"]["codes"][0, :slow]))
    rand, _ = fns["random"].audio_maps(batch["features"], batch["mask"])
    assert not np.allclose(rand[0, :2], maps[0, :2])
    random = fns["random"].runner
    assert random.params is template.initial_params and random.state is template.initial_model_state
    assert fns["trained"].runner.params is params and fns["trained"].runner.state is template.model_state


def test_analyze_binary_runs_every_map_analysis(vq_workdir, tmp_path, capsys):
    from vgs_jax import analyze

    out = str(tmp_path / "out")
    analyze.FLAGS([ "analyze", f"--workdir={vq_workdir}", "--max_utterances=16", f"--output_dir={out}",
                   "--heatmap_examples=2", "--lexicon_clusters=5", f"--analyses={MAP_ONLY},probes,attention"])
    try:
        analyze.main(["analyze"])
    finally:
        analyze.FLAGS.unparse_flags()
    printed = capsys.readouterr().out
    print(printed)  # the per-layer table, visible with pytest -rP
    report = json.load(open(os.path.join(out, "report.json")))
    # per-layer analyses now run on ResDAVEnet too: every stage repeated back to the 10 ms input rate
    layers = ["conv1", "layer1", "layer2", "layer3", "layer4", "pooled"]
    assert report["num_utterances"] == 16 and report["layers"] == layers and "layer_analyses" not in report
    assert "no attention pooling" in report["attention_words"]["not_applicable"]  # ResDAVEnet mean-pools
    for which in ("trained", "random"):
        for layer in layers:
            row = report[which][layer]
            assert 0 <= row["global_probe"]["accuracy"] <= 1
            if layer != "pooled":
                local = row["local_probe"]
                assert 0 <= local["accuracy"] <= 1 and 0 < local["baseline_accuracy"] <= 1
                assert local["train_frames"] > 100 and local["test_frames"] > 10
    for which in ("trained", "random"):
        loc = report["localization"][which]
        assert loc["n"] > 5 and 0 <= loc["accuracy"] <= 1 and 0 < loc["chance"] < 1
        assert set(loc["per_kind"]) == {"color", "shape"}
        lex = report["lexicon"][which]
        assert len(lex["clusters"]) == 5 and lex["num_groundings"] >= 5
        assert all(0 <= lex[k] <= 1 for k in ("word_purity", "word_nmi", "object_purity", "object_nmi"))
        assert set(report["vq_units"][which]) == {"quant2", "quant3"}
        for q, shift in (("quant2", 0.02), ("quant3", 0.04)):
            unit = report["vq_units"][which][q]
            assert unit["frame_shift"] == pytest.approx(shift)
            assert 0 < unit["phones"]["purity"] <= 1 and 0 <= unit["phones"]["nmi"] <= 1
            assert 1 <= unit["phones"]["num_codes_used"] <= 16 and unit["phones"]["num_frames"] > 100
            assert unit["words"]["num_words"] > 3 and 0 <= unit["words"]["mean_f1"] <= 1
            assert all(0 < b < 16 * 4 / shift for b in unit["bitrate"].values())  # <= log2(16) bits per frame
        sem = report["semantics"][which]["retrieval"]
        assert sem["k"] == 5 and sem["num_queries"] == 16
        assert all(-1 <= sem[k] <= 1 for k in ("top_k", "bottom_k", "random_k"))
        pngs = report["heatmaps"][which]
        assert [os.path.dirname(p) for p in pngs] == [os.path.join(out, f"heatmaps_{which}")] * 2
    assert report["localization"]["frame_shift"] == pytest.approx(0.16)
    assert report["localization"]["frame_offset"] == pytest.approx(-0.08)
    assert "sick_data_dir" in report["semantics"]["sick"]
    pictures = [os.path.join(out, f"{n}.png") for n in ("localization", "lexicon", "vq_units", "semantics")]
    pictures += report["plots"]["heatmaps"]
    assert len(pictures) == 8
    for path in pictures:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 1000
    table = [line.split()[0] for line in printed.splitlines()[1:8]]
    assert table == ["layer"] + layers, printed
    for start in ("attention: not applicable", "localization: accuracy", "lexicon: word purity",
                  "vq_units quant2:", "vq_units quant3:", "heatmaps: 2 + 2 PNGs", "semantics: relatedness top-5"):
        assert any(line.startswith(start) for line in printed.splitlines()), (start, printed)


def test_non_map_model_reports_not_applicable(shapes_data_dir, tmp_path):
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    config.dataset.data_dir = shapes_data_dir
    model = dual_encoder.build_dual_encoder(
        config.model, num_features=audio_features.num_features(config.features.recipe), rngs=nnx.Rngs(0))
    template = dual_encoder.Template(model)
    fns = map_analyses.model_fns(template, template.initial_params, config, map_analyses.MapSettings(batch_size=8))
    examples = map_analyses.load_examples(config, "validation", 8)
    entries = map_analyses.run_map_analyses(fns, config, examples, map_analyses.MAP_ANALYSES, str(tmp_path),
                                            map_analyses.MapSettings(batch_size=8, semantics_k=3))
    for name in ("localization", "lexicon", "heatmaps"):
        reason = entries[name]["not_applicable"]
        assert "frame-map towers" in reason and "platalea_gru" in reason
    assert "no quantisers" in entries["vq_units"]["not_applicable"]
    assert entries["semantics"]["trained"]["retrieval"]["k"] == 3
    assert os.listdir(tmp_path) == []
    text = map_analyses.format_map_analyses(entries)
    assert text.count("not applicable") == 4 and "semantics: relatedness top-3" in text
    davenet = config_lib.load_config("configs/shapes_davenet.py:tiny,v1")
    davenet_model = dual_encoder.Template(train.create_model(davenet))
    assert map_analyses.applicability("localization", davenet_model, davenet, examples) is None
    assert "no quantisers" in map_analyses.applicability("vq_units", davenet_model, davenet, examples)
    assert "objects" in map_analyses.applicability("localization", davenet_model, davenet,
                                                   [{"words": {}, "text": ""}])


def test_semantics_with_spoken_sick(shapes_data_dir, tmp_path):
    import tensorflow_datasets as tfds
    from tfds_builders.spoken_sick import Builder

    sick_dir = str(tmp_path / "sick")
    manual = os.path.join(os.path.dirname(__file__), "..", "tfds_builders", "spoken_sick", "dummy_data")
    Builder(data_dir=sick_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.path.abspath(manual)))
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    config.dataset.data_dir = shapes_data_dir
    model = dual_encoder.build_dual_encoder(
        config.model, num_features=audio_features.num_features(config.features.recipe), rngs=nnx.Rngs(0))
    template = dual_encoder.Template(model)
    settings = map_analyses.MapSettings(batch_size=8, semantics_k=2, sick_data_dir=sick_dir, sick_split="train")
    fns = map_analyses.model_fns(template, template.initial_params, config, settings)
    examples = map_analyses.load_examples(config, "validation", 6)
    entry = map_analyses.run_map_analyses(fns, config, examples, ["semantics"], str(tmp_path), settings)["semantics"]
    assert "sick" not in entry
    for which in ("trained", "random"):
        sick = entry[which]["sick"]  # the dummy SICK's 3 training pairs
        assert sick["n"] == 3 and -1 <= sick["pearson"] <= 1 and -1 <= sick["spearman"] <= 1
    assert "semantics SICK: Pearson" in map_analyses.format_map_analyses({"semantics": entry})
