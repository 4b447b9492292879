"""Activation extraction, the analysis suite and the `analyze` binary, on a tiny trained run."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from vgs_jax import audio_features
from vgs_jax import checkpointing
from vgs_jax import config_lib
from vgs_jax import data_sources
from vgs_jax import train
from vgs_jax.analysis import activations
from vgs_jax.analysis import attention_words
from vgs_jax.analysis import boundaries
from vgs_jax.analysis import data_fields
from vgs_jax.analysis import layer_metrics
from vgs_jax.analysis import reporting
from vgs_jax.analysis import suite

SMALL = suite.SuiteSettings(max_probe_frames=500, probe_max_iter=100, max_abx_items=150, max_rsa_utterances=20,
                            word_min_count=3, max_gating_trials=12)


def _acts(phones, num_frames, *, start=0.03, step=0.03, speaker=0, dim=3, seed=0):
    frames = np.random.default_rng(seed).normal(size=(num_frames, dim)).astype(np.float32)
    meta = {"caption_id": 0, "speaker_id": speaker, "text": "", "phones": phones, "words": []}
    return activations.Activations(frames={"conv": [frames]}, pooled=frames[:1], frame_step=step,
                                   frame_start=start, meta=[meta], key={})


def test_frame_times_hand_case():
    # Kernel 6, stride 3 over platalea_mfcc frames (centred 0.01 t + 0.005 s): frame j covers
    # features 3j..3j+5 whose centres average to 0.03 j + 0.025 + 0.005.
    offset = activations.feature_frame_offset("platalea_mfcc")
    assert offset == pytest.approx((-120 + 280) / 2 / 16000)  # samples [160t - 120, 160t + 280)
    assert activations.feature_frame_offset("mfcc") == 0.0
    got = activations.layer_frame_times(4, kernel=6, stride=3, feature_offset=offset)
    np.testing.assert_allclose(got, [0.03, 0.06, 0.09, 0.12])
    for kernel, stride in ((6, 2), (4, 3), (1, 1)):
        slow = [np.mean([0.01 * t + offset for t in range(stride * j, stride * j + kernel)]) for j in range(7)]
        np.testing.assert_allclose(activations.layer_frame_times(
            7, kernel=kernel, stride=stride, feature_offset=offset), slow)
    with pytest.raises(ValueError, match="recipe"):
        activations.feature_frame_offset("mel80")
    with pytest.raises(ValueError, match="stride"):
        activations.layer_frame_times(3, kernel=6, stride=0)


def test_labels_items_and_boundaries_hand_case():
    # Frames centred at 0.03, 0.06, ..., 0.21 s.
    acts = _acts([("a", 0.0, 0.1), ("b", 0.1, 0.2), ("a", 0.2, 0.215)], 7)
    labels = layer_metrics.phone_frame_labels(acts)[0]
    centres = acts.frame_times(0)
    slow = [next((p for p, s, e in acts.meta[0]["phones"] if s <= c < e), None) for c in centres]
    assert list(labels) == slow == ["a", "a", "a", "b", "b", "b", "a"]
    items = layer_metrics.abx_items(acts, suite.SuiteSettings())
    spans = [(it[1].start, it[1].stop, it[2], it[3]) for it in items]
    # Each context holds one phone only, so no token can form a triplet: none kept.
    assert spans == []
    acts = _acts([("a", 0.0, 0.1), ("b", 0.1, 0.2)], 7)
    acts.meta.append({**acts.meta[0], "phones": [("c", 0.0, 0.1), ("b", 0.1, 0.2)]})
    acts.frames["conv"].append(acts.frames["conv"][0])
    items = layer_metrics.abx_items(acts, suite.SuiteSettings())
    got = sorted((it[0], it[1].start, it[1].stop, it[2], it[3]) for it in items)
    assert got == [(0, 0, 3, "a", ("#", "b")), (1, 0, 3, "c", ("#", "b"))]
    np.testing.assert_allclose(layer_metrics.reference_boundaries(
        {"phones": [("a", 0.0, 0.1), ("b", 0.1, 0.2), ("c", 0.25, 0.3)]}), [0.1, 0.2, 0.25])


def _boundary_acts(num_utts=8, num_frames=40, seed=0):
    """Random frames at 10 ms (centres 0.005 + 0.01 j), norm in [0.5, 1] except 3 at each phone boundary."""
    rng = np.random.default_rng(seed)
    frames, meta = [], []
    for i in range(num_utts):
        x = rng.normal(size=(num_frames, 4))
        x *= rng.uniform(0.5, 1.0, (num_frames, 1)) / np.linalg.norm(x, axis=1, keepdims=True)
        cuts = np.sort(rng.choice(np.arange(3, num_frames - 3, 5), 5, replace=False))
        x[cuts] *= 3.0 / np.linalg.norm(x[cuts], axis=1, keepdims=True)
        edges = [0.0] + [0.005 + 0.01 * c for c in cuts] + [0.01 * num_frames]
        phones = [(f"p{k % 3}", edges[k], edges[k + 1]) for k in range(len(edges) - 1)]
        frames.append(x.astype(np.float32))
        meta.append({"caption_id": i, "speaker_id": 0, "text": "", "phones": phones, "words": []})
    return activations.Activations(frames={"conv": frames}, pooled=np.stack([f[0] for f in frames]),
                                   frame_step=0.01, frame_start=0.005, meta=meta, key={})


def slow_boundary_scores(acts, method, quantiles, tolerance):
    """layer_metrics.boundary_scores by plain loops: signal, local maxima >= threshold, frame times."""
    def signal(f):
        x = f.astype(np.float64).tolist()
        norm = [math.sqrt(sum(v * v for v in row)) for row in x]
        if method == "activation_norm":
            return norm, 0.0
        return [1 - sum(a * b for a, b in zip(x[t], x[t + 1])) / (norm[t] * norm[t + 1])
                for t in range(len(x) - 1)], 0.5

    def times(f, threshold):
        v, lag = signal(f)
        return [acts.frame_start + (t + lag) * acts.frame_step for t in range(1, len(v) - 1)
                if v[t - 1] < v[t] > v[t + 1] and v[t] >= threshold]

    frames = acts.frames["conv"]
    refs = [layer_metrics.reference_boundaries(m) for m in acts.meta]
    half = len(frames) // 2
    candidates = np.quantile([v for f in frames[:half] for v in signal(f)[0]], quantiles)
    r_values = [boundaries.evaluate_boundaries([times(f, c) for f in frames[:half]], refs[:half],
                                               tolerance)["r_value"] for c in candidates]
    best = candidates[int(np.argmax(r_values))]  # argmax: the first of equal R-values
    return best, boundaries.evaluate_boundaries([times(f, best) for f in frames[half:]], refs[half:], tolerance)


@pytest.mark.parametrize("method", boundaries.METHODS)
def test_boundary_scores_vs_slow_loops(method):
    acts = _boundary_acts()
    settings = suite.SuiteSettings(boundary_method=method)
    got = layer_metrics.boundary_scores(acts, "conv", settings)
    best, want = slow_boundary_scores(acts, method, settings.threshold_quantiles, settings.tolerance)
    assert got["method"] == method and got["threshold"] == pytest.approx(best)
    assert {k: got[k] for k in want} == pytest.approx(want)
    if method == "activation_norm":  # the planted norm peaks are the phone boundaries
        assert got["f1"] == 1.0 and got["num_ref"] == 20


def test_bad_settings():
    with pytest.raises(ValueError, match="train_fraction"):
        suite.SuiteSettings(train_fraction=1.0)
    with pytest.raises(ValueError, match="max_abx_items"):
        suite.SuiteSettings(max_abx_items=0)
    with pytest.raises(ValueError, match="boundary_method must be one of"):
        suite.SuiteSettings(boundary_method="norm")


@pytest.fixture(scope="module")
def trained_workdir(shapes_data_dir, tmp_path_factory):
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    config.dataset.data_dir = shapes_data_dir
    workdir = str(tmp_path_factory.mktemp("analyze") / "run")
    train.train_and_evaluate(config, workdir)
    return workdir


def test_extraction_matches_direct_model(trained_workdir):
    step, config, template, params = activations.load_models(trained_workdir, "best")
    acts = activations.extract(template, params["trained"], config, split="validation", max_utterances=5,
                               key={})
    assert len(acts.meta) == 5 and acts.layers == ["conv", "gru_0"]
    assert acts.frame_step == pytest.approx(0.03) and acts.frame_start == pytest.approx(0.03)
    source = data_sources.open_split(config.dataset.name, "validation", data_dir=config.dataset.data_dir)
    model = template.merge(params["trained"])
    for i in (0, 4):
        ex = source[i]
        feats = audio_features.compute(ex["audio"], config.features.recipe)[None]
        out = model.speech_encoder.frame_outputs(feats, np.ones(feats.shape[:2], bool))
        n = int(out["mask"].sum())
        assert n == (feats.shape[1] - 6) // 3 + 1 == len(acts.frame_times(i))
        for layer in acts.layers:
            np.testing.assert_allclose(acts.frames[layer][i], np.asarray(out[layer][0, :n]), atol=2e-5)
        np.testing.assert_allclose(acts.pooled[i], np.asarray(out["pooled"][0]), atol=2e-5)
        alpha = model.speech_encoder.pool.weights(out["gru_0"], out["mask"])
        np.testing.assert_allclose(acts.attention[i], np.asarray(alpha[0, :n]).mean(axis=1), atol=1e-5)
        assert acts.meta[i]["caption_id"] == int(ex["caption_id"])
        assert all("ˈ" not in p for p, _, _ in acts.meta[i]["phones"])
    random = activations.extract(template, params["random"], config, split="validation", max_utterances=2,
                                 key={})
    assert not np.allclose(random.frames["gru_0"][0], acts.frames["gru_0"][0])
    with pytest.raises(ValueError, match="max_utterances"):
        activations.extract(template, params["trained"], config, split="validation", max_utterances=1, key={})


def _check_report(report, workdir, boundary_method="cosine_change"):
    assert report["layers"] == ["conv", "gru_0", "pooled"]
    assert report["num_utterances"] == 24 and report["split"] == "validation"
    for which in ("trained", "random"):
        for layer in report["layers"]:
            row = report[which][layer]
            probe = row["global_probe"]
            assert 0 <= probe["accuracy"] <= 1 and 0 <= probe["baseline_accuracy"] <= 1
            assert all(-1 <= v <= 1 for v in row["rsa"].values())
            if layer == "pooled":
                assert "local_probe" not in row and "boundaries" not in row
                continue
            local = row["local_probe"]
            assert 0 <= local["accuracy"] <= 1 and local["rer"] <= 1 and local["test_frames"] > 0
            assert 0 <= row["abx_within"] <= 1 and row["abx_items"] > 10
            assert row["abx_across"] is None or 0 <= row["abx_across"] <= 1
            b = row["boundaries"]
            assert 0 <= b["precision"] <= 1 and 0 <= b["recall"] <= 1 and 0 <= b["f1"] <= 1 and b["num_ref"] > 0
            assert b["method"] == boundary_method
    assert report["analyses"] == list(suite.ANALYSES) and report["not_applicable"] == {}
    assert report["settings"]["boundary_method"] == boundary_method
    vocab = report["word_vocabulary"]
    assert vocab and not set(vocab) & attention_words.FUNCTION_WORDS
    for which in ("trained", "random"):
        for layer in report["layers"]:
            words = report[which][layer]["word_presence"]
            assert sorted(words["words"]) == vocab
            assert 0 <= words["macro"]["f1"] <= 1 and 0 <= words["macro"]["baseline_accuracy"] <= 1
        classes = report["attention_words"][which]["classes"]
        assert {"shape", "color", "function"} <= set(classes)
        assert sum(c["share"] * c["utterances"] for c in classes.values()) == pytest.approx(24, abs=1e-3)
        curve = report["gating"][which]
        assert curve["num_trials"] == 12 and curve["num_images"] == 8 and len(curve["mean_rank"]) == 6
        assert all(1 <= r <= 8 for r in curve["mean_rank"]) and all(0 <= r <= 1 for r in curve["r10"])
    for name in ("localization", "lexicon", "vq_units", "heatmaps"):  # a GRU + pooled-image run has no maps
        assert "not_applicable" in report[name]
    for which in ("trained", "random"):
        sem = report["semantics"][which]["retrieval"]
        assert sem["num_queries"] == 24 and -1 <= sem["top_k"] <= 1 and -1 <= sem["random_k"] <= 1
    for name in ("probes", "abx", "boundaries", "rsa", "word_presence", "gating", "attention_words", "semantics"):
        path = os.path.join(workdir, "analysis", f"{name}.png")
        assert os.path.getsize(path) > 1000
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    stored = json.load(open(os.path.join(workdir, "analysis", "report.json")))
    assert stored["trained"]["gru_0"]["local_probe"]["accuracy"] == pytest.approx(
        report["trained"]["gru_0"]["local_probe"]["accuracy"])


def test_analyze_library_then_binary(trained_workdir):
    report = suite.analyze_workdir(trained_workdir, max_utterances=24, settings=SMALL)
    assert report["cache_reused"] == {"trained": False, "random": False}
    _check_report(report, trained_workdir)
    table = reporting.format_table(report)
    assert table.splitlines()[0].startswith("layer") and len(table.splitlines()) == 4
    cache = activations.cache_path(trained_workdir, "trained", "validation")
    mtime = os.path.getmtime(cache)

    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-m", "vgs_jax.analyze", f"--workdir={trained_workdir}",
                           "--max_utterances=24", "--word_min_count=3", "--max_gating_trials=12",
                           "--boundary_method=activation_norm"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert "first 24 captions" in lines[0] and lines[1].startswith("layer")
    assert [line.split()[0] for line in lines[2:5]] == ["conv", "gru_0", "pooled"]
    assert lines[5].startswith("gating (12 words, 8 images") and any(l.startswith("shape ") for l in lines)
    assert any(l.startswith("localization: not applicable") for l in lines)
    assert any(l.startswith("semantics: relatedness top-5") for l in lines)
    assert lines[-1] == f"Wrote {os.path.join(trained_workdir, 'analysis', 'report.json')}"
    stored = json.load(open(os.path.join(trained_workdir, "analysis", "report.json")))
    assert stored["cache_reused"] == {"trained": True, "random": True} and os.path.getmtime(cache) == mtime
    _check_report(stored, trained_workdir, boundary_method="activation_norm")


def test_missing_checkpoint_is_named(trained_workdir):
    with pytest.raises(checkpointing.CheckpointError, match="No checkpoint for step 99"):
        activations.load_models(trained_workdir, 99)


def test_subset_of_analyses_and_bad_names(trained_workdir, tmp_path):
    out = str(tmp_path / "subset")
    report = suite.analyze_workdir(trained_workdir, max_utterances=24, settings=SMALL, output_dir=out,
                                   analyses=["attention", "rsa"])
    assert report["analyses"] == ["rsa", "attention"] and "gating" not in report
    assert set(report["plots"]) == {"rsa", "attention"} and "local_probe" not in report["trained"]["conv"]
    assert sorted(os.listdir(out)) == ["attention_words.png", "report.json", "rsa.png"]
    assert "-/-" in reporting.format_table(report)
    with pytest.raises(ValueError, match="Unknown analyses.*'abxx'"):
        suite.check_analyses(["abxx", "rsa"])


def test_fields_of_each_analysis_on_fake_examples():
    assert list(data_fields.FIELDS) == list(suite.ANALYSES)
    shapes = {"audio": np.zeros(3, np.int16), "caption_id": 0, "image_id": 1, "speaker_id": 2, "text": "a red circle",
              "phones": {}, "words": {}, "objects": {}}
    assert data_fields.split_by_fields(suite.ANALYSES, shapes) == (list(suite.ANALYSES), {})
    words_only = {k: v for k, v in shapes.items() if k not in ("phones", "objects")}  # e.g. speech_coco
    runnable, missing = data_fields.split_by_fields(suite.ANALYSES, words_only)
    assert runnable == ["word_presence", "attention", "heatmaps", "semantics"]
    assert missing == {"probes": ["phones"], "abx": ["phones"], "rsa": ["phones"], "boundaries": ["phones"],
                       "gating": ["objects"], "localization": ["objects"], "lexicon": ["objects"],
                       "vq_units": ["phones"]}
    message = data_fields.missing_fields_message({"abx": ["phones"]}, words_only, "dataset 'x' split 'test'")
    assert message.startswith("dataset 'x' split 'test' has no ['phones'] field(s)")
    assert "abx needs ['phones']" in message and "--analyses=word_presence,attention,heatmaps,semantics" in message


def test_run_suite_on_meta_without_phones():
    acts = _boundary_acts()
    for i, m in enumerate(acts.meta):  # words but no phones (e.g. places_audio)
        del m["phones"]
        m["words"] = [("red" if i % 2 else "blue", 0.0, 0.1), ("circle", 0.1, 0.3)]
    with pytest.raises(data_fields.MissingFieldsError, match=r"has no \['phones'\].*probes needs \['phones'\]"):
        suite.run_suite({"trained": acts}, SMALL, ["probes", "word_presence"])
    report = suite.run_suite({"trained": acts}, SMALL, ["word_presence"])
    assert report["word_vocabulary"] == ["blue", "circle", "red"]
    assert sorted(report["trained"]["conv"]["word_presence"]["words"]) == ["blue", "circle", "red"]


class _WithoutFields:
    """A split whose examples lack some fields (as on a corpus without alignments)."""

    def __init__(self, source, drop):
        self.source, self.drop = source, drop

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        return {k: v for k, v in self.source[i].items() if k not in self.drop}


def test_corpus_without_alignments(trained_workdir, tmp_path, monkeypatch):
    from absl import app
    from vgs_jax import analyze

    real = data_sources.open_config_split
    monkeypatch.setattr(data_sources, "open_config_split",
                        lambda data, split: _WithoutFields(real(data, split), ("phones", "words")))
    out = str(tmp_path / "no_alignments")
    # Asked for by name: a clear error before anything is extracted or written.
    with pytest.raises(data_fields.MissingFieldsError) as error:
        suite.analyze_workdir(trained_workdir, max_utterances=8, settings=SMALL, output_dir=out,
                              analyses=["boundaries", "semantics"])
    message = str(error.value)
    assert message.startswith("dataset 'spoken_shapes/tiny:1.0.0' split 'validation' has no ['phones'] field(s)")
    assert "boundaries needs ['phones']" in message and "--analyses=semantics" in message
    assert "--wav_list" in message and not os.path.exists(out)
    analyze.FLAGS(["analyze", f"--workdir={trained_workdir}", "--analyses=word_presence", f"--output_dir={out}"])
    try:
        with pytest.raises(app.UsageError, match=r"--analyses: .*word_presence needs \['words'\]"):
            analyze.main(["analyze"])
    finally:
        analyze.FLAGS.unparse_flags()
    # The default set: what needs alignments is reported as not applicable, the rest runs.
    report = suite.analyze_workdir(trained_workdir, max_utterances=8, settings=SMALL, output_dir=out)
    assert report["analyses"] == ["semantics"] and report["layers"] == [] and "gating" not in report
    assert list(report["not_applicable"]) == [a for a in suite.ANALYSES if a != "semantics"]
    reasons = report["not_applicable"]
    assert reasons["probes"].startswith("dataset 'spoken_shapes/tiny:1.0.0' split 'validation' has no ['phones']")
    assert "has no ['words'] " in reasons["gating"]  # only what is missing
    assert report["semantics"]["trained"]["retrieval"]["num_queries"] == 8
    stored = json.load(open(os.path.join(out, "report.json")))
    assert stored["not_applicable"] == report["not_applicable"] and set(report["plots"]) == {"semantics"}


def test_wav_list_binary(trained_workdir, tmp_path):
    import soundfile

    rng = np.random.default_rng(0)
    for name, n in (("a.wav", 8000), ("b.wav", 12000)):
        soundfile.write(str(tmp_path / name), rng.integers(-4000, 4000, n).astype(np.int16), 16000, subtype="PCM_16")
    (tmp_path / "list.txt").write_text("a.wav\nb.wav\n")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = str(tmp_path / "acts")
    done = subprocess.run([sys.executable, "-m", "vgs_jax.analyze", f"--workdir={trained_workdir}",
                           f"--wav_list={tmp_path / 'list.txt'}", f"--output_dir={out}"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    trained = activations.load(os.path.join(out, "wav_activations_trained.npz"))
    random = activations.load(os.path.join(out, "wav_activations_random.npz"))
    assert [os.path.basename(m["path"]) for m in trained.meta] == ["a.wav", "b.wav"]
    assert trained.layers == ["conv", "gru_0"] and len(trained.frames["gru_0"]) == 2
    assert not np.allclose(trained.frames["gru_0"][0], random.frames["gru_0"][0])
    (tmp_path / "bad.txt").write_text("a.wav\nmissing.wav\n")
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        activations.extract_wav_list(trained_workdir, str(tmp_path / "bad.txt"), output_dir=out)
