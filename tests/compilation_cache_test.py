"""The binaries' persistent compilation cache (`cli.enable_compilation_cache`), in subprocesses so
the JAX config of the test process is untouched."""
import os
import subprocess
import sys

_PROGRAM = """
from vgs_jax import cli
import jax, jax.numpy as jnp
print(cli.enable_compilation_cache())
jax.jit(lambda x: jnp.sin(x) * 2)(jnp.ones(3)).block_until_ready()
"""


def _run(env_value, tmp_path):
    env = dict(os.environ, VGS_JAX_COMPILATION_CACHE=env_value, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_cache_in_default_folder_and_off(tmp_path):
    folder = tmp_path / "xdg" / "vgs_jax" / "jax_compilation_cache"
    assert _run("", tmp_path) == str(folder)
    assert os.listdir(folder), "the compiled program was not written to the cache"
    assert _run("off", tmp_path) == "None"
