"""Sweep points: lists of config overrides, from a config's `get_sweep()` or a sweep file.

A point is a dict of dotted config fields to values, e.g. ``{"optimizer.lr_max": 1e-3,
"loss.margin": 0.1}``; it trains as ``python -m vgs_jax.main --config=SPEC --config.optimizer.lr_max=0.001
--config.loss.margin=0.1`` in a workdir named from its overrides (`point_name`). A config file
defines its sweep next to `get_config`::

    def get_sweep(arg=None):
        return [{"optimizer.lr_max": lr} for lr in (1e-3, 3e-4)]

A sweep file is a JSON list of such dicts (``.json``) or a Python file with a `get_sweep()`.
"""

import ast
import hashlib
import importlib.util
import json
import re
from typing import Any

import ml_collections

from vgs_jax import config_lib

MAX_NAME = 120  # characters of a point's folder name before it is shortened with a hash


def load_points(config_spec: str, sweep_file: str | None = None) -> list[dict[str, Any]]:
    """The sweep's points: `sweep_file`'s, else `get_sweep(arg)` of the config file of `config_spec`
    ("path.py[:arg]"). ValueError naming the file when there is none or it is malformed."""
    path, _, arg = config_spec.partition(":")
    if sweep_file:
        if sweep_file.endswith(".json"):
            with open(sweep_file) as f:
                try:
                    points = json.load(f)
                except ValueError as e:
                    raise ValueError(f"Sweep file {sweep_file} is not valid JSON: {e}.") from None
            return check_points(points, sweep_file)
        return check_points(_call_get_sweep(sweep_file, None), sweep_file)
    return check_points(_call_get_sweep(config_lib.resolve_config_path(path), arg or None), path)


def _call_get_sweep(path: str, arg: str | None):
    spec = importlib.util.spec_from_file_location("_vgs_jax_sweep", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_sweep"):
        raise ValueError(f"{path} defines no get_sweep(); add `def get_sweep(arg=None): return [{{...}}, ...]` "
                         "(a list of override dicts), or pass --sweep_file=FILE.json.")
    return module.get_sweep(arg)


def check_points(points: Any, where: str) -> list[dict[str, Any]]:
    """`points` if it is a non-empty list of dicts with string keys and distinct names."""
    if not isinstance(points, (list, tuple)) or not points:
        raise ValueError(f"The sweep of {where} must be a non-empty list of override dicts, got {points!r:.200}.")
    names = {}
    for i, point in enumerate(points):
        if not isinstance(point, dict) or not all(isinstance(k, str) and k for k in point):
            raise ValueError(f"Point {i} of the sweep of {where} must be a dict of config fields "
                             f"(e.g. {{'optimizer.lr_max': 1e-3}}), got {point!r:.200}.")
        name = point_name(point)
        if name in names:
            raise ValueError(f"Points {names[name]} and {i} of the sweep of {where} are the same ({name}).")
        names[name] = i
    return [dict(p) for p in points]


def apply(config: ml_collections.ConfigDict, overrides: dict[str, Any], where: str) -> ml_collections.ConfigDict:
    """A copy of (locked) `config` with `overrides` set; ValueError naming a field it lacks."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.lock()
    for key, value in overrides.items():
        parent, _, leaf = key.rpartition(".")
        try:
            node = config
            for part in filter(None, parent.split(".")):
                node = node[part]
            old = node[leaf]
            node[leaf] = tuple(value) if isinstance(old, tuple) and isinstance(value, list) else value
        except (KeyError, AttributeError, TypeError) as e:
            raise ValueError(f"{where}: cannot set config field {key!r} to {value!r}: "
                             f"{str(e).strip(chr(39))}") from None
    return config


def flag_value(value: Any) -> str:
    """`value` as `--config.FIELD=` writes it (ml_collections' flag syntax)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(repr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def override_flags(overrides: dict[str, Any]) -> list[str]:
    return [f"--config.{key}={flag_value(value)}" for key, value in overrides.items()]


def point_name(point: dict[str, Any]) -> str:
    """Folder name of a point: "optimizer.lr_max=0.001,loss.margin=0.1" (file-name safe; "base"
    for no overrides; long names end in a hash of the full one)."""
    if not point:
        return "base"
    def text(value):
        if isinstance(value, (list, tuple)):
            return "-".join(text(v) for v in value)
        return re.sub(r"[^A-Za-z0-9._+-]", "_", flag_value(value))

    name = ",".join(f"{re.sub(r'[^A-Za-z0-9._-]', '_', k)}={text(v)}" for k, v in point.items())
    if len(name) > MAX_NAME:
        name = name[:MAX_NAME - 9] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return name


def check_against_config(config_spec: str, points: list[dict], base: dict[str, Any]) -> None:
    """Raises ValueError (naming point and field) unless every point, on top of `base`, sets only
    fields the config of `config_spec` has; nothing is run before this passes."""
    config = config_lib.load_config(config_spec)
    config = apply(config, base, "--set")
    for i, point in enumerate(points):
        apply(config, point, f"Sweep point {i} ({point_name(point)})")


def parse_set(items: list[str]) -> dict[str, Any]:
    """["dataset.data_dir=/data", "batch_size=64"] -> {"dataset.data_dir": "/data", "batch_size": 64}
    (values read as Python literals where they are one, else as strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set={item!r} must be FIELD=VALUE, e.g. --set=dataset.data_dir=/data.")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out
