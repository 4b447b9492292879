"""What the binaries share: flag parsing, quiet library logs, and errors as one clear line.

`run(main)` is `absl.app.run(main)`, except that a failure (a bad flag or config override, missing
data, a damaged checkpoint, a busy workdir, a stop by SIGTERM/SIGINT, ...) prints
`error: <what is wrong and what to do>` on stderr instead of a traceback, and exits with status 2
for bad flags or config values, 128 + N for a run stopped by signal N, and 1 otherwise. `--debug`
(or VGS_JAX_DEBUG=1) shows the traceback and every library log line.
"""

import logging
import os
import re
import shlex
import sys
from typing import Callable

from absl import app
from absl import flags
from absl import logging as absl_logging

from vgs_jax import config_checks
from vgs_jax import preemption

FLAGS = flags.FLAGS
flags.DEFINE_bool("debug", False, "On an error, show the Python traceback (and library log lines).")

# Libraries whose log lines repeat what our errors already say (Orbax logs each failed save
# thread with a traceback): shown only with --debug or -v.
_QUIET_LOGGERS = ("/orbax/", "/tensorstore/")
# Errors that say what to do themselves; anything else is reported as unexpected.
_EXPECTED = (ValueError, OSError, LookupError, RuntimeError, FloatingPointError, app.UsageError)


def run(main: Callable[[list[str]], None]) -> None:
    """Runs `main(argv)` as a binary (see module docstring), with the compilation cache on."""
    enable_compilation_cache()
    app.run(_guarded(main), flags_parser=_parse_flags)


CACHE_ENV = "VGS_JAX_COMPILATION_CACHE"


def enable_compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache so a second run of a binary skips XLA compiles.

    The folder is $VGS_JAX_COMPILATION_CACHE, else $XDG_CACHE_HOME/vgs_jax/jax_compilation_cache
    (default ~/.cache/...); VGS_JAX_COMPILATION_CACHE=off disables it, and a cache folder already
    set for JAX (JAX_COMPILATION_CACHE_DIR) is left alone. Every compile is cached, however short:
    the tiny configs' many small programs are what a second run would otherwise pay again.
    Returns the folder in use, or None when disabled.
    """
    import jax  # here, not at import time: the binaries' --help need not load JAX

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    folder = os.environ.get(CACHE_ENV, "")
    if folder.lower() in ("off", "0", "false", "none"):
        return None
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "vgs_jax", "jax_compilation_cache")
    jax.config.update("jax_compilation_cache_dir", os.path.abspath(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


def _debug(argv: list[str] | None = None) -> bool:
    if os.environ.get("VGS_JAX_DEBUG", "") not in ("", "0"):
        return True
    if argv is not None:
        return any(a in ("--debug", "--debug=true", "--debug=True") for a in argv)
    return FLAGS.is_parsed() and FLAGS.debug


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return FLAGS(argv)
    except Exception as e:  # absl flag errors, and config files/overrides (ml_collections raises many kinds)
        if _debug(argv):
            raise
        _exit(_flag_error_message(e, argv), 2)


def _flag_error_message(e: Exception, argv: list[str]) -> str:
    text = _message(e)
    if isinstance(e, AttributeError):  # ml_collections: a locked config has no such field
        field = re.match(r"'?(\w+)'?", text)
        name = field.group(1) if field else ""
        overrides = [a.split("=")[0] for a in argv if a.startswith("--config.") and a.split("=")[0].endswith(
            "." + name)]
        hint = text[text.find("Did you mean"):] if "Did you mean" in text else ""
        where = overrides[0] if overrides else f"config field {name!r}"
        return f"{where}: no such config field. {hint}".strip()
    if isinstance(e, flags.Error):
        return f"{text} (see --help)"
    return text


def _guarded(main):
    def wrapper(argv):
        if not _debug():
            _quiet_library_logs()
        try:
            return main(argv)
        except (SystemExit, app.UsageError):
            raise
        except preemption.TrainingInterrupted as e:
            args = " ".join(shlex.quote(a) for a in sys.argv[1:])
            _exit(f"{e} Resume: python -m vgs_jax.main {args}", 128 + e.signum)
        except KeyboardInterrupt as e:
            if _debug():
                raise
            _exit(f"interrupted ({_message(e) or 'Ctrl-C'}).", 130)
        except Exception as e:
            if _debug():
                raise
            code = 2 if isinstance(e, config_checks.ConfigValueError) else 1
            message = _message(e)
            if not isinstance(e, _EXPECTED):
                message = f"{type(e).__name__}: {message} (unexpected: run with --debug for the traceback)"
            _exit(message, code)

    return wrapper


def _message(e: BaseException) -> str:
    """The exception's message as plain text (KeyError/AttributeError quote theirs)."""
    text = e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text.replace("\\n", " ").replace("\\'", "'").replace("\n", " ").strip()


def _exit(message: str, code: int) -> None:
    sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr, flush=True)
    # Skip interpreter teardown: background threads of Orbax/TensorStore/grain otherwise race it
    # ("ImportError: sys.meta_path is None"). Files are closed by now (context managers).
    logging.shutdown()
    os._exit(code)


class _DropLibraryRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(part in record.pathname for part in _QUIET_LOGGERS)


def _quiet_library_logs() -> None:
    if FLAGS["verbosity"].present:
        return
    absl_logging.set_verbosity(absl_logging.WARNING)
    absl_logging.get_absl_handler().addFilter(_DropLibraryRecords())
    default_hook = sys.unraisablehook

    def hook(unraisable):
        # After a failed Orbax save, TensorStore completions reach Orbax's closed event loop, one
        # "RuntimeError: Event loop is closed" traceback per pending write; the save error says it all.
        if not (isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(unraisable.exc_value)):
            default_hook(unraisable)

    sys.unraisablehook = hook
