"""Experiment plumbing: strict configs from YAML, dotted overrides, progress, JSON/markdown output, environment.

An experiment module defines a frozen dataclass ``Config``, ``run(config, key, progress) -> dict`` and
``report(config, results, out_dir) -> str`` (see ``CONTRACT.md``); :func:`run_experiment` ties them together.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import numbers
import platform
import sys
import time
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import yaml

__all__ = [
    "ConfigError",
    "Progress",
    "apply_overrides",
    "config_from_mapping",
    "environment",
    "geometric_grid",
    "load_document",
    "markdown_table",
    "pyplot",
    "save_figure",
    "run_experiment",
    "to_jsonable",
]

TOP_LEVEL_KEYS = ("experiment", "seed", "config")


class ConfigError(ValueError):
    """A configuration problem: the message names the key, the value and what is allowed."""


class Progress:
    """A thin progress reporter around tqdm (or silent). Experiments call ``total(n)`` then ``update(k)``."""

    def __init__(self, enabled: bool = True, desc: str = ""):
        self._bar = None
        self._enabled = enabled
        self._desc = desc

    def total(self, n: int) -> None:
        if self._enabled and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=n, desc=self._desc, unit="step", dynamic_ncols=True)
        elif self._bar is not None:
            self._bar.total = n
            self._bar.refresh()

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# ----------------------------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the annotated field type, or raise ConfigError naming the key."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key}: {value!r} matches none of {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not allowed; choose one of {list(args)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}: {value!r}")
            return tuple(_coerce(v, t, f"{key}[{i}]") for i, (t, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported field type {_type_name(tp)}")


def config_from_mapping(cls: type, mapping: Mapping[str, Any] | None, where: str = "config") -> Any:
    """Build the dataclass ``cls`` from a mapping, refusing unknown keys and wrongly typed values.

    Args:
      cls: a dataclass whose fields all have defaults (and whose ``__post_init__`` checks value ranges).
      mapping: field name -> value (e.g. from YAML); missing fields keep their defaults.
      where: the key path prefix used in error messages.

    Returns:
      An instance of ``cls``.

    Raises:
      ConfigError: unknown key (the message lists the allowed keys), wrong type, or a rejected value.
    """
    mapping = dict(mapping or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in mapping.items()}
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where}: {err}") from err


def load_document(path: str | Path) -> dict:
    """Read an experiment YAML document (``experiment``, ``seed``, ``config``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {list(TOP_LEVEL_KEYS)}, got {type(doc).__name__}")
    return doc


def apply_overrides(doc: dict, overrides: Sequence[str]) -> dict:
    """Apply ``dotted.key=value`` overrides (values parsed as YAML) to a document, returning a new one.

    Only ``seed``, ``experiment`` and ``config.<field>`` (nested for mapping values) may be set; the experiment's
    Config later refuses unknown fields, so a misspelt key is always an error.
    """
    doc = json.loads(json.dumps(doc))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. config.beta=2.0 or seed=3)")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if parts[0] not in TOP_LEVEL_KEYS or (parts[0] != "config" and len(parts) > 1) or not all(parts):
            raise ConfigError(
                f"override key {key!r} is not allowed; use seed=..., experiment=... or config.<field>=..."
            )
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({err})") from err
        node = doc
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r}: {part!r} is not a mapping")
            node = child
        node[parts[-1]] = value
    return doc


# ----------------------------------------------------------------------------------------------------------------
# Output helpers
# ----------------------------------------------------------------------------------------------------------------


def to_jsonable(obj: Any) -> Any:
    """Recursively convert arrays, numpy scalars, tuples and dataclasses to JSON-compatible Python values.

    Non-finite floats become the strings ``"nan"``, ``"inf"``, ``"-inf"`` so the file stays strict JSON.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (jax.Array, np.ndarray)):
        return to_jsonable(np.asarray(obj).tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(obj, (str, type(None))):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"to_jsonable: cannot convert {type(obj).__name__}")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured markdown table; floats formatted with ``floatfmt``."""

    def cell(value):
        if isinstance(value, (float, np.floating)):
            return format(float(value), floatfmt)
        return str(value)

    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def geometric_grid(start: int, stop: int, ratio: float) -> tuple[int, ...]:
    """Distinct integers ``round(start * ratio^i)`` up to ``stop``, increasing (a log-spaced sweep of counts)."""
    values, n = [], float(start)
    while round(n) <= stop:
        if not values or round(n) > values[-1]:
            values.append(int(round(n)))
        n *= ratio
    return tuple(values)


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (experiments only write image files)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> None:
    """Lay out, write and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def environment(seed: int | None = None) -> dict:
    """Versions, devices and flags that a result depends on."""
    versions = {"python": sys.version.split()[0]}
    for name in ("jax", "jaxlib", "flax", "optax", "numpy", "dammem"):
        try:
            versions[name] = importlib.import_module(name).__version__
        except Exception:  # pragma: no cover - optional packages
            versions[name] = None
    devices = jax.devices()
    return {
        "versions": versions,
        "backend": jax.default_backend(),
        "devices": [f"{d.platform}:{d.device_kind}" for d in devices],
        "device_count": len(devices),
        "x64": bool(jax.config.jax_enable_x64),
        "platform": platform.platform(),
        "seed": seed,
    }


# ----------------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------------


def _resolve(doc: dict):
    from dammem.experiments import get_experiment

    unknown = sorted(set(doc) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown}; allowed keys are {list(TOP_LEVEL_KEYS)}")
    if "experiment" not in doc:
        raise ConfigError("the config must name its experiment (experiment: <name>)")
    module = get_experiment(doc["experiment"])
    seed = doc.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer, got {seed!r}")
    config_map = doc.get("config") or {}
    if not isinstance(config_map, dict):
        raise ConfigError(f"config: expected a mapping of Config fields, got {config_map!r}")
    config = config_from_mapping(module.Config, config_map)
    return module, seed, config


def run_experiment(doc: dict, out_dir: str | Path, *, progress: bool = True) -> dict:
    """Validate ``doc``, run its experiment and write ``results.json``, ``summary.md`` and plots to ``out_dir``.

    Returns:
      The dictionary written to ``results.json``.
    """
    module, seed, config = _resolve(doc)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bar = Progress(progress, desc=doc["experiment"])
    start = time.perf_counter()
    try:
        metrics = module.run(config, jax.random.key(seed), bar)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    record = {
        "experiment": doc["experiment"],
        "seed": seed,
        "config": to_jsonable(config),
        "metrics": to_jsonable(metrics),
        "environment": environment(seed),
        "elapsed_s": elapsed,
    }
    (out_dir / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    body = module.report(config, record["metrics"], out_dir)
    title = (module.__doc__ or doc["experiment"]).strip().splitlines()[0]
    header = (
        f"# {doc['experiment']}: {title}\n\nseed {seed}, {elapsed:.1f} s on {record['environment']['devices'][0]}\n\n"
    )
    (out_dir / "summary.md").write_text(header + body.rstrip() + "\n")
    return record
