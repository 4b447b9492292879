"""bench/shapes_leaderboard.py: the table from finished workdirs (no training here)."""

import importlib.util
import json
import os
import sys

import pytest

from tfds_builders.spoken_shapes import baselines, builder_v2
from tfds_builders.spoken_shapes.spoken_shapes_dataset_builder import Builder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _leaderboard():
    spec = importlib.util.spec_from_file_location(
        "shapes_leaderboard", os.path.join(REPO, "bench", "shapes_leaderboard.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_has_finished_configs_beside_the_references_and_lists_the_rest(tmp_path):
    lb = _leaderboard()
    assert lb.all_configs()[0] == "gru" and "davenet" in lb.all_configs()
    metrics = {"r1": 0.125, "r5": 0.5, "r10": 0.75, "medr": 3.0}
    for split in lb.SPLITS:
        path = lb.result_path(tmp_path, "gru", split)
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"speech_to_image": metrics, "image_to_speech": metrics}))
    lb.result_path(tmp_path, "rhn", "test").parent.mkdir()
    lb.result_path(tmp_path, "rhn", "test").write_text("{}")  # Unfinished: one split only.
    lines = lb.table(tmp_path, ["gru", "rhn"], size="tiny").splitlines()
    assert lines[0].count("|") == 2 + 2 * len(lb.SPLITS)
    assert lines[4] == "| shapes_gru |" + " 12.5 / 75.0 / 3 |" * 6
    assert lines[-1] == "Not finished yet: shapes_rhn."
    # The reference rows are baselines.evaluate on the same planned splits.
    reference = baselines.evaluate(builder_v2.plan_config(Builder.builder_configs["tiny"]),
                                   lb.SPLITS, ("en",))
    oracle = reference["test_compositional"]["oracle"]
    assert lines[2].split(" | ")[3] == (f"{100 * oracle['r1']:.1f} / {100 * oracle['r10']:.1f} / "
                                        f"{oracle['medr']:g}")
    assert lines[3].startswith("| transcript TF-IDF (en) |")


def test_a_failed_command_names_itself_and_its_log(tmp_path):
    lb = _leaderboard()
    log = tmp_path / "leaderboard.log"
    with pytest.raises(lb.RunFailed, match=r"no_such_module failed with exit code 1 .*leaderboard\.log"):
        lb._run([sys.executable, "-m", "no_such_module"], log)
    assert "No module named no_such_module" in log.read_text()
