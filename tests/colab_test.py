"""The notebooks in colab/, executed by a real Jupyter kernel from a folder outside the checkout.

Each notebook runs top to bottom in a python3 kernel of this test's interpreter (so with the vgs_jax this
environment installed, as a user's kernel after the notebook's install cell), in a fresh temporary working
directory, reading the session's tiny spoken_shapes (1.0.0) through VGS_NOTEBOOK_DATA_DIR and VGS_NOTEBOOK_DATASET. A cell error fails the test.
"""

import ast
import base64
import os
import re
import struct

import ipykernel.kernelspec
import nbclient
import nbformat
import numpy as np
import pytest

import vgs_jax

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
COLAB = os.path.join(REPO, "colab")
NOTEBOOKS = sorted(f for f in os.listdir(COLAB) if f.endswith(".ipynb"))


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(os.path.join(COLAB, name), as_version=4)


def _cell(nb, cell_id: str) -> nbformat.NotebookNode:
    return next(c for c in nb.cells if c.get("id") == cell_id)


def _text(cell) -> str:
    return "".join(o["text"] for o in cell.outputs if o["output_type"] == "stream" and o["name"] == "stdout")


def _png_size(output) -> tuple[int, int]:
    """(width, height) of a display_data output's PNG, from its IHDR chunk."""
    data = base64.b64decode(output["data"]["image/png"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("jax_compilation_cache"))


@pytest.fixture
def execute(shapes_data_dir, compilation_cache, tmp_path, monkeypatch):
    """Runs a notebook of colab/ in a python3 kernel of this interpreter, cwd a temp folder; returns it."""
    jupyter = tmp_path / "jupyter"
    ipykernel.kernelspec.write_kernel_spec(jupyter / "kernels" / "python3")  # argv: this interpreter
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))  # searched before the user's kernel specs
    monkeypatch.setenv("VGS_NOTEBOOK_DATA_DIR", shapes_data_dir)
    monkeypatch.setenv("VGS_NOTEBOOK_DATASET", "spoken_shapes/tiny:1.0.0")  # the session's data, short audio
    # One CPU device, as a user's kernel has (not the 8 fake devices of conftest.py); and a JAX compilation
    # cache shared by this module's kernels, so the tiny GRU that both notebooks train is compiled once.
    monkeypatch.setenv("XLA_FLAGS", re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                                           os.environ.get("XLA_FLAGS", "")).strip())
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", compilation_cache)
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    def run(name: str) -> nbformat.NotebookNode:
        nb = _read(name)
        nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,  # a cell error raises
                                resources={"metadata": {"path": str(cwd)}}).execute()
        return nb

    return run


def test_committed_notebooks_are_stripped_and_share_the_install_cell():
    assert NOTEBOOKS == ["analysis.ipynb", "quickstart.ipynb"]
    install = {name: _cell(_read(name), "install").source for name in NOTEBOOKS}
    assert len(set(install.values())) == 1, "the notebooks' install cells differ"
    for name in NOTEBOOKS:
        nb = _read(name)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"strip the outputs of {name}"


def test_install_cell_finds_the_checkout_or_the_url(tmp_path):
    namespace = {}
    exec(_cell(_read("quickstart.ipynb"), "install").source, namespace)  # vgs_jax is importable: no pip
    source = namespace["vgs_jax_source"]
    assert source("", COLAB) == REPO
    clone = tmp_path / "clone"
    (clone / "vgs_jax").mkdir(parents=True)
    (clone / "colab").mkdir()
    (clone / "setup.cfg").write_text("[metadata]\nname = vgs_jax\n")
    (clone / "vgs_jax" / "__init__.py").write_text("")
    assert source("https://example.org/vgs_jax.git", str(clone / "colab")) == str(clone)
    elsewhere = tmp_path / "content"
    elsewhere.mkdir()
    url = "https://example.org/vgs_jax.git@abc123"
    assert source(url, str(elsewhere)) == "git+" + url
    assert source("git+https://example.org/vgs_jax.git", str(elsewhere)) == "git+https://example.org/vgs_jax.git"
    with pytest.raises(RuntimeError, match="set REPOSITORY_URL"):
        source("", str(elsewhere))


def test_quickstart(execute):
    nb = execute("quickstart.ipynb")
    installed = _text(_cell(nb, "install")).strip()
    assert installed == f"vgs_jax installed at {os.path.dirname(vgs_jax.__file__)}"  # nothing reinstalled
    final = ast.literal_eval(_text(_cell(nb, "train")).strip().splitlines()[-1])
    assert np.isfinite(final["train/loss"]) and 0.0 <= final["eval/speech_to_image_r10"] <= 1.0
    text = _text(_cell(nb, "evaluate"))
    assert re.match(r"checkpoint step [36]\n", text)  # tiny: 6 steps, validated at steps 3 and 6
    rows = {}
    for line in text.splitlines()[2:]:
        direction, *numbers = line.split()
        rows[direction] = [float(x) for x in numbers]
    assert set(rows) == {"speech_to_image", "image_to_speech"}
    for r1, r5, r10, medr, meanr, n in rows.values():
        assert 0 <= r1 <= r5 <= r10 <= 100 and 1 <= medr <= n and 1 <= meanr <= n and n > 0


def test_analysis(execute):
    nb = execute("analysis.ipynb")
    table = _text(_cell(nb, "analyze")).splitlines()
    assert re.match(r"spoken_shapes/tiny:1.0.0 validation, first \d+ captions", table[0])
    assert table[1].split()[:3] == ["layer", "phone", "acc"]
    assert [line.split()[0] for line in table[2:5]] == ["conv", "gru_0", "pooled"]
    assert any(line.startswith("gating (") for line in table) and any("attention share" in l for l in table)
    plots = _cell(nb, "plots").outputs
    names = [o["text"].strip() for o in plots if o["output_type"] == "stream"]
    assert names == ["probes", "abx", "rsa", "boundaries", "gating", "attention"]
    images = [o for o in plots if o["output_type"] == "display_data"]
    assert len(images) == len(names)
    for image in images:
        width, height = _png_size(image)
        assert width >= 500 and height >= 300  # the figures, inline
    heatmaps = _cell(nb, "heatmaps")
    assert len(re.findall(r"^heatmap_\d+\.png$", _text(heatmaps), re.M)) == 2
    images = [o for o in heatmaps.outputs if o["output_type"] == "display_data"]
    assert len(images) == 2 and all(min(_png_size(image)) >= 200 for image in images)
