"""Runs every notebook in colab/ (code cells in order, in one namespace) on the tiny dataset."""

import json
import os

import pytest

NOTEBOOKS = sorted(f for f in os.listdir("colab") if f.endswith(".ipynb"))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, shapes_data_dir, monkeypatch):
    monkeypatch.setenv("VGS_NOTEBOOK_DATA_DIR", shapes_data_dir)
    notebook = json.load(open(os.path.join("colab", name)))
    namespace = {}
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert cells
    for cell in cells:
        assert not cell.get("outputs"), "strip notebook outputs before committing"
        exec(compile("".join(cell["source"]), f"{name}", "exec"), namespace)
    assert namespace["results"]["speech_to_image"]["n"] > 0
