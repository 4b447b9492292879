"""The README's commands, run as written, in a fresh copy of the repository.

Commands are parsed from README.md (the first code block, and every command block of the sections
"Using it" and "Analysing a trained model"), so this test breaks when the README changes. Each runs
through bash with cwd = the copy's root and the same relative paths. The only changes: `:tiny,v1` is
added to every `--config=configs/X.py`, and TFDS_DATA_DIR points at the session's tiny dataset (1.0.0).

The copy's `.venv` is prepared beforehand so that the README's `python3 -m venv .venv &&
.venv/bin/pip install -q -e .` runs offline and in seconds: it sees this test's installed
dependencies through a .pth line, and pip runs without an index (PIP_NO_INDEX) and without build
isolation, so it installs only vgs_jax itself, from the copy.
"""

import os
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ("Using it", "Analysing a trained model")


def readme_sections() -> dict[str, str]:
    """{"": text before the first "## " heading, heading: text of that section}."""
    text = open(os.path.join(REPO, "README.md")).read()
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {"": parts[0], **{parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}}


def code_blocks(section: str) -> list[list[str]]:
    """Each ``` block of `section` as a list of commands (continuation lines joined, comments cut)."""
    blocks = []
    for body in re.findall(r"^```[^\n]*\n(.*?)^```", section, flags=re.M | re.S):
        commands, current = [], ""
        for line in body.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).rstrip()
            current += line[:-1] + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                if current.strip():
                    commands.append(" ".join(current.split()))
                current = ""
        blocks.append(commands)
    return blocks


def is_command(command: str) -> bool:
    return command.startswith(("python ", "python3 ", ".venv/bin/"))


def readme_commands() -> list[str]:
    sections = readme_sections()
    commands = [c for c in code_blocks(sections[""])[0]]
    for name in SECTIONS:
        assert name in sections, f"README has no section {name!r}"
        commands += [c for block in code_blocks(sections[name]) for c in block if is_command(c)]
    return commands


def tiny(command: str) -> str:
    """`--config=configs/X.py[:args]` -> the same config with `tiny` among its arguments, and `v1` (the
    session's spoken_shapes 1.0.0 data) unless the command pins a version."""
    def add(match):
        path, args = match.group(1), (match.group(2) or "").split(",")
        extra = [a for a in ("tiny", "v1") if a not in args and not (a == "v1" and "v2" in args)]
        return f"--config={path}:" + ",".join(extra + [a for a in args if a])
    return re.sub(r"--config=(configs/\w+\.py)(?::(\S+))?", add, command)


def test_commands_are_parsed():
    commands = readme_commands()
    assert commands[0].startswith("python3 -m venv .venv && .venv/bin/pip install -q -e . && ")
    assert any("vgs_jax.evaluate" in c for c in commands) and any("vgs_jax.analyze" in c for c in commands)
    assert tiny("--config=configs/a.py --x") == "--config=configs/a.py:tiny,v1 --x"
    assert tiny("--config=configs/a.py:vq=23") == "--config=configs/a.py:tiny,v1,vq=23"
    assert tiny("--config=configs/a.py:v1,tiny") == "--config=configs/a.py:v1,tiny"
    assert tiny("--config=configs/a.py:v2") == "--config=configs/a.py:tiny,v2"


def _fresh_copy(dest: str) -> None:
    """The repository as a fresh clone would have it (tracked and untracked-but-not-ignored files)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = os.path.join(REPO, name)
        if os.path.isfile(source):
            os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
            shutil.copy2(source, os.path.join(dest, name))


def _prepare_venv(root: str) -> None:
    subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", os.path.join(root, ".venv")],
                   check=True)
    purelib = sysconfig.get_paths()["purelib"]
    site = subprocess.run([os.path.join(root, ".venv", "bin", "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site, "_test_dependencies.pth"), "w") as f:
        f.write(purelib + "\n")


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="needs to run inside a virtual environment")
def test_readme_commands_run_as_written(shapes_data_dir, tmp_path):
    root = str(tmp_path / "repo")
    _fresh_copy(root)
    _prepare_venv(root)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(TFDS_DATA_DIR=shapes_data_dir, PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
               PATH=os.path.join(root, ".venv", "bin") + os.pathsep + env["PATH"])
    for command in readme_commands():
        command = tiny(command)
        result = subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True,
                                timeout=900)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr, f"{command}\n{result.stderr[-3000:]}"
        if "vgs_jax.evaluate" in command:
            written = result.stdout.strip().splitlines()[-1].removeprefix("Wrote ")
            assert not os.path.isabs(written) and os.path.exists(os.path.join(root, written))
            assert "speech_to_image" in result.stdout
        if "vgs_jax.analyze" in command:
            assert os.path.exists(os.path.join(root, "runs", "shapes_gru", "analysis", "report.json"))
    # The copy's vgs_jax is the one that ran (not this checkout's).
    python = os.path.join(root, ".venv", "bin", "python")
    probe = subprocess.run([python, "-c", "import vgs_jax; print(vgs_jax.__file__)"], cwd="/", env=env,
                           capture_output=True, text=True)
    assert probe.stdout.strip() == os.path.join(root, "vgs_jax", "__init__.py"), probe.stdout + probe.stderr
