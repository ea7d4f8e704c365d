"""Experiment plumbing: strict configs from YAML, dotted overrides, progress, JSON/markdown output, provenance.

An experiment module defines a frozen dataclass ``Config`` and ``run(config, key, progress) -> dict``; its report
module beside it, ``<experiment>_report``, defines ``report(config, results, out_dir) -> str`` (see ``CONTRACT.md``);
:func:`run_experiment` ties them together.
The configs shipped with the package live in ``dammem/configs`` (:func:`packaged_configs`, :func:`find_config`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.resources
import json
import math
import numbers
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

import jax
import numpy as np
import yaml

from dammem._timing import cpu_model, load_average
from dammem.experiments._registry import ConfigError, get_experiment

try:
    from importlib.resources.abc import Traversable
except ImportError:  # pragma: no cover - Python 3.10
    from importlib.abc import Traversable

__all__ = [
    "ConfigError",
    "Progress",
    "ProgressMode",
    "apply_overrides",
    "config_from_mapping",
    "environment",
    "find_config",
    "geometric_grid",
    "git_commit",
    "load_document",
    "markdown_table",
    "packaged_configs",
    "report_module",
    "load_results",
    "rerun_report",
    "resolve_document",
    "reproduction_verdicts",
    "write_report",
    "pyplot",
    "save_figure",
    "run_experiment",
    "to_jsonable",
]

TOP_LEVEL_KEYS = ("experiment", "seed", "config")
ARRAYS_KEY = "arrays"
"""Key of ``run``'s result whose arrays go to ``results.npz`` instead of ``results.json``."""
ARRAYS_FILE = "results.npz"
PARTIAL_PREFIX = ".dammem-partial-"
"""Name prefix of the scratch folder a run writes into; one left behind by a killed run is removed by the next."""


ProgressMode = Literal["bar", "lines", "off"]


class Progress:
    """Reports an experiment's progress: a tqdm bar, one line per finished stage, or nothing.

    An experiment calls ``total(n)`` once with its number of stages, ``point(text)`` before a stage to name the
    sweep point it runs (e.g. ``"d=256 n=44"``: shown beside the bar, and in that stage's line), and ``update(k)``
    when ``k`` stages are done.

    Args:
      mode: ``"bar"`` (a tqdm bar on stderr), ``"lines"`` (one line per :meth:`update` on ``stream``: the label,
        stages done of the total, the current point and the seconds since the start) or ``"off"``; True and False
        mean ``"bar"`` and ``"off"``.
      desc: the label (the experiment's name).
      stream: where ``"lines"`` go (default ``sys.stderr``).

    Example:
      >>> import io
      >>> out = io.StringIO()
      >>> progress = Progress("lines", desc="sweep", stream=out)
      >>> progress.total(2)
      >>> progress.point("d=256 n=44")
      >>> progress.update(1)
      >>> out.getvalue().split(",")[0]
      'sweep [1/2] d=256 n=44'
    """

    def __init__(self, mode: ProgressMode | bool = "bar", desc: str = "", *, stream: TextIO | None = None):
        if isinstance(mode, bool):
            mode = "bar" if mode else "off"
        if mode not in typing.get_args(ProgressMode):
            raise ValueError(f"Progress: mode must be one of {typing.get_args(ProgressMode)} or a bool, got {mode!r}")
        self._mode = mode
        self._desc = desc
        self._stream = stream
        self._bar = None
        self._total: int | None = None
        self._done = 0
        self._point = ""
        self._start = time.perf_counter()

    def total(self, n: int) -> None:
        """Set the number of stages."""
        self._total = n
        if self._mode == "bar" and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=n, desc=self._desc, unit="step", dynamic_ncols=True)
            if self._point:
                self._bar.set_postfix_str(self._point)
        elif self._bar is not None:
            self._bar.total = n
            self._bar.refresh()

    def point(self, text: str) -> None:
        """Name the sweep point that runs next (e.g. ``"d=256 n=44"``)."""
        self._point = text
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def update(self, n: int = 1) -> None:
        """Mark ``n`` more stages done."""
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._mode == "lines":
            of = f"/{self._total}" if self._total is not None else ""
            label = f"{self._desc} " if self._desc else ""
            point = f" {self._point}" if self._point else ""
            stream = self._stream or sys.stderr
            print(f"{label}[{self._done}{of}]{point}, {time.perf_counter() - self._start:.1f} s", file=stream)
            stream.flush()

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


def config_from_mapping(cls: type, mapping: Mapping[str, Any] | None, context: str = "config") -> Any:
    """Build the dataclass ``cls`` from a mapping, refusing unknown keys and wrongly typed values.

    Args:
      cls: a dataclass whose fields all have defaults (and whose ``__post_init__`` checks value ranges).
      mapping: field name -> value (e.g. from YAML); missing fields keep their defaults.
      context: the key path prefix used in error messages.

    Returns:
      An instance of ``cls``.

    Raises:
      ConfigError: unknown key (the message lists the allowed keys), wrong type, or a rejected value.
    """
    mapping = dict(mapping or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(f"{context}: unknown key(s) {unknown}; allowed keys are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(value, hints[name], f"{context}.{name}") for name, value in mapping.items()}
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{context}: {err}") from err


def packaged_configs() -> dict[str, Traversable]:
    """The configs shipped with the package (``dammem/configs/*.yaml``), by name (the file name without .yaml)."""
    folder = importlib.resources.files("dammem") / "configs"
    if not folder.is_dir():  # pragma: no cover - a broken installation
        return {}
    entries = [e for e in folder.iterdir() if e.is_file() and e.name.endswith(".yaml")]
    return {e.name[: -len(".yaml")]: e for e in sorted(entries, key=lambda e: e.name)}


def find_config(spec: str) -> tuple[str, Path | Traversable]:
    """Resolve the CONFIG argument of ``dammem run``: a packaged config's name, or a path to a YAML file.

    A bare name (no path separator, no ``.yaml`` / ``.yml`` suffix) names a packaged config (:func:`packaged_configs`);
    anything else is a path (write ``./name`` for a file without a suffix in the current directory).

    Returns:
      ``(name, source)``: the run's name (the config's name, or the file's stem) and the file to read.

    Raises:
      ConfigError: an unknown name (the message lists the packaged ones).
    """
    is_name = "/" not in spec and os.sep not in spec and spec not in (".", "..")
    is_name = is_name and not spec.endswith((".yaml", ".yml"))
    if not is_name:
        return Path(spec).stem, Path(spec)
    configs = packaged_configs()
    if spec not in configs:
        raise ConfigError(
            f"config {spec!r} is not a packaged config (those are {sorted(configs)}); give a path to run a YAML file"
        )
    return spec, configs[spec]


def load_document(path: str | Path | Traversable) -> dict:
    """Read an experiment YAML document (``experiment``, ``seed``, ``config``) from a path or a packaged resource."""
    path = Path(path) if isinstance(path, str) else path
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
    """Lay out, write and close a figure; the image is cropped to what is drawn, legends outside the axes included."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.1)
    pyplot().close(fig)


def git_commit(path: str | Path | None = None) -> tuple[str | None, bool | None]:
    """The commit checked out in the git repository that tracks ``path`` (default: the dammem package), and whether
    tracked files differ from it.

    ``(None, None)`` when ``path`` is not tracked by a git repository: an installed copy, including one in a
    virtual environment inside some checkout, or a machine without git.
    """
    folder = Path(path) if path is not None else Path(__file__).resolve().parents[1]

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30)

    try:
        if git("ls-files", "--error-unmatch", "--", ".").returncode != 0:
            return None, None
        head = git("rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            return None, None
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None


def environment() -> dict:
    """Versions, devices, CPU, flags and the git commit that a result depends on."""
    versions = {"python": sys.version.split()[0]}
    for name in ("jax", "jaxlib", "flax", "optax", "numpy", "dammem"):
        try:
            versions[name] = importlib.import_module(name).__version__
        except Exception:  # pragma: no cover - optional packages
            versions[name] = None
    devices = jax.devices()
    commit, dirty = git_commit()
    return {
        "versions": versions,
        "backend": jax.default_backend(),
        "devices": [f"{d.platform}:{d.device_kind}" for d in devices],
        "device_count": len(devices),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "x64": bool(jax.config.jax_enable_x64),
        "platform": platform.platform(),
        "git_commit": commit,
        "git_dirty": dirty,
    }


# ----------------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------------


def resolve_document(doc: Mapping):
    """``(experiment module, seed, Config)`` of a document (``experiment``, ``seed``, ``config``) or of a run's
    ``results.json`` record (its other keys are ignored); ConfigError when it is invalid."""
    return _resolve({k: doc[k] for k in TOP_LEVEL_KEYS if k in doc})


def _resolve(doc: dict):
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


def _split_arrays(metrics: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """Take ``metrics[ARRAYS_KEY]`` (a flat mapping of names to arrays) out of the results, as NumPy arrays."""
    if not isinstance(metrics, Mapping) or ARRAYS_KEY not in metrics:
        return metrics, {}
    arrays = metrics[ARRAYS_KEY]
    if not isinstance(arrays, Mapping) or not all(isinstance(k, str) and k.isidentifier() for k in arrays):
        raise TypeError(f"run_experiment: results[{ARRAYS_KEY!r}] must map identifier names to arrays")
    rest = {k: v for k, v in metrics.items() if k != ARRAYS_KEY}
    return rest, {k: np.asarray(v) for k, v in arrays.items()}


def leftover_partials(out_dir: Path) -> list[Path]:
    """The scratch folders (:data:`PARTIAL_PREFIX`) that runs killed while writing ``out_dir`` left behind."""
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir() if p.name.startswith(PARTIAL_PREFIX) and p.is_dir())


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, outermost first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing[::-1]


def report_module(module: types.ModuleType) -> types.ModuleType:
    """The report of an experiment: the module ``<experiment>_report`` beside it, loaded when a report is written
    (so plotting libraries load only then). It may import ``Config`` and constants from the experiment; the
    experiment never imports it back."""
    return importlib.import_module(f"{module.__name__}_report")


VERDICTS = ("quantitative", "qualitative", "not")
"""What a reproduction verdict may say: the paper's figure is reproduced quantitatively, qualitatively, or not."""


def reproduction_verdicts(module: types.ModuleType, config: Any, results: Mapping) -> list[dict]:
    """The verdicts the report module computes from the results: ``[{"target", "verdict", "evidence"}, ...]``.

    ``target`` names the paper's figure or claim (authors, year, figure), ``verdict`` is one of :data:`VERDICTS` and
    ``evidence`` is one sentence computed from the results that justifies it. A report module without a
    ``reproduces(config, results)`` function gives ``[]``.
    """
    fn = getattr(report_module(module), "reproduces", None)
    if fn is None:
        return []
    verdicts = list(fn(config, results))
    for v in verdicts:
        if set(v) != {"target", "verdict", "evidence"} or v["verdict"] not in VERDICTS:
            raise ValueError(
                f"{module.__name__}_report.reproduces: each verdict needs exactly the keys target, verdict, evidence "
                f"with verdict one of {VERDICTS}, got {v!r}"
            )
    return verdicts


def write_report(
    module: types.ModuleType, config: Any, results: Mapping, out_dir: Path, *, figures: bool = True
) -> str:
    """Call the experiment's ``report`` and add the reproduction verdicts; returns the markdown body.

    ``figures=False`` asks a report that takes a ``figures`` keyword to skip its figures (the body is the same);
    a report without that keyword draws them anyway.
    """
    report = report_module(module).report
    import inspect

    kwargs = {"figures": figures} if "figures" in inspect.signature(report).parameters else {}
    body = report(config, results, out_dir, **kwargs).rstrip()
    verdicts = reproduction_verdicts(module, config, results)
    if verdicts:
        body += "\n\n## What this reproduces\n\n" + "\n".join(
            f"- {v['target']}: **{v['verdict']}**. {v['evidence'][:1].upper()}{v['evidence'][1:]}" for v in verdicts
        )
    return body


def _summary_header(doc: Mapping, module: types.ModuleType, record: Mapping) -> str:
    title = (module.__doc__ or doc["experiment"]).strip().splitlines()[0]
    env = record["environment"]
    load = record.get("load_average") or {}
    loaded = f", load average {load['before']} before" if load.get("before") is not None else ""
    return (
        f"# {doc['experiment']}: {title}\n\nseed {record['seed']}, {record['elapsed_s']:.1f} s on "
        f"{env['devices'][0]} ({env.get('cpu_model')}, {env.get('cpu_count')} CPUs{loaded})\n\n"
    )


def load_results(out_dir: str | Path) -> tuple[dict, dict]:
    """``(record, results)`` of a finished run: ``results.json`` and the results its report receives (the metrics
    and, when the run saved some, ``results["arrays"]`` from ``results.npz``)."""
    out_dir = Path(out_dir)
    record = json.loads((out_dir / "results.json").read_text())
    results = dict(record["metrics"])
    if ARRAYS_KEY in record:
        with np.load(out_dir / record[ARRAYS_KEY]["file"]) as data:
            results[ARRAYS_KEY] = {k: data[k] for k in data.files}
    return record, results


def rerun_report(out_dir: str | Path, *, figures: bool = True) -> str:
    """Write ``summary.md`` (and the figures, unless ``figures=False``) of a finished run again from its
    ``results.json``, with the report code as it is now; returns the summary. The run itself is not repeated."""
    out_dir = Path(out_dir)
    record, results = load_results(out_dir)
    module, _, config = _resolve({k: record[k] for k in TOP_LEVEL_KEYS})
    body = write_report(module, config, results, out_dir, figures=figures)
    text = _summary_header(record, module, record) + body + "\n"
    (out_dir / "summary.md").write_text(text)
    return text


def run_experiment(
    doc: dict, out_dir: str | Path, *, progress: ProgressMode | bool = True, command: Mapping | None = None
) -> dict:
    """Validate ``doc``, run its experiment and write ``results.json``, ``summary.md`` and plots to ``out_dir``.

    ``results.json`` holds the resolved config, the metrics, the environment (versions, devices, CPU model and
    count, git commit) and ``command`` (the CLI passes its argv, config and overrides; None from Python). Arrays
    that ``run`` returns under ``"arrays"`` go to ``results.npz`` beside it instead (``results.json`` lists their
    shapes), and ``report`` receives them as NumPy arrays under the same key.

    Everything is written into a scratch folder inside ``out_dir`` and moved into place once the report is done,
    replacing files of the same names: a failed run leaves ``out_dir`` as it was, and removes it (with any parents it
    created) when it did not exist. Scratch folders left in ``out_dir`` by a run that was killed (SIGKILL) are
    removed before this run writes.

    Args:
      doc: the document (``experiment``, ``seed``, ``config``), as from :func:`load_document` and
        :func:`apply_overrides`.
      out_dir: the output directory (created when missing).
      progress: a :class:`Progress` mode (True / False: a bar / nothing).
      command: how the run was invoked, recorded as given (JSON-serialisable).

    Returns:
      The dictionary written to ``results.json``.

    Raises:
      ConfigError: the document is invalid, or ``out_dir`` cannot be created.
    """
    module, seed, config = _resolve(doc)
    out_dir = Path(out_dir)
    created = _missing_parents(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the output directory {str(out_dir)!r} ({err.strerror or err})") from err
    stage = None
    try:
        bar = Progress(progress, desc=doc["experiment"])
        load_before = load_average()
        start = time.perf_counter()
        try:
            metrics = module.run(config, jax.random.key(seed), bar)
        finally:
            bar.close()
        elapsed = time.perf_counter() - start
        metrics, arrays = _split_arrays(metrics)
        record = {
            "experiment": doc["experiment"],
            "seed": seed,
            "config": to_jsonable(config),
            "metrics": to_jsonable(metrics),
            "command": to_jsonable(command) if command is not None else None,
            "environment": environment(),
            "elapsed_s": elapsed,
            "load_average": {"before": to_jsonable(load_before), "after": to_jsonable(load_average())},
        }
        if arrays:
            record[ARRAYS_KEY] = {
                "file": ARRAYS_FILE,
                "shapes": {k: list(v.shape) for k, v in arrays.items()},
                "dtypes": {k: str(v.dtype) for k, v in arrays.items()},
            }
        for leftover in leftover_partials(out_dir):
            shutil.rmtree(leftover, ignore_errors=True)
        stage = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=out_dir))
        if arrays:
            np.savez_compressed(stage / ARRAYS_FILE, **arrays)
        results = dict(record["metrics"], **({ARRAYS_KEY: arrays} if arrays else {}))
        report_start = time.perf_counter()
        body = write_report(module, config, results, stage)
        record["report_s"] = time.perf_counter() - report_start
        (stage / "results.json").write_text(json.dumps(record, indent=2) + "\n")
        (stage / "summary.md").write_text(_summary_header(doc, module, record) + body.rstrip() + "\n")
        for entry in sorted(stage.iterdir()):
            target = out_dir / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
        stage.rmdir()
        return record
    except BaseException:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        for folder in reversed(created):  # innermost first; only folders this call created, and only when empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
