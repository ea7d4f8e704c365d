"""The ``dammem`` command line: ``dammem run CONFIG.yaml [key=value ...] [--out DIR]`` and ``dammem list``.

Problems with the config or its data (unknown keys, bad values, a missing or malformed data file, more memories than
the data holds) are reported as one line ``dammem: error: ...`` with exit status 2, checked before the run starts
where the config alone decides them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_run(args: argparse.Namespace) -> int:
    from dammem.experiments._base import ConfigError, apply_overrides, load_document, run_experiment

    doc = apply_overrides(load_document(args.config), args.overrides)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {str(out)!r}: cannot create the output directory ({err.strerror or err})") from err
    record = run_experiment(doc, out, progress=not args.no_progress)
    print(f"{record['experiment']}: wrote {out / 'results.json'}, {out / 'summary.md'} ({record['elapsed_s']:.1f} s)")
    return 0


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _cmd_list(args: argparse.Namespace) -> int:
    from dammem.experiments import EXPERIMENTS, get_experiment

    print("experiments:")
    for name in sorted(EXPERIMENTS):
        print(f"  {name:18s} {_first_line(get_experiment(name).__doc__)}")
    config_dir = Path(args.configs)
    configs = sorted(config_dir.glob("*.yaml")) if config_dir.is_dir() else []
    print(f"configs in {config_dir}/:" if configs else f"configs: none found in {config_dir}/")
    for path in configs:
        print(f"  {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dammem", description="Differentiable associative memory experiments.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an experiment from a YAML config")
    run.add_argument("config", help="path to an experiment YAML (see `dammem list`)")
    run.add_argument("overrides", nargs="*", help="dotted overrides such as config.beta=2.0 or seed=3")
    run.add_argument("--out", help="output directory (default: runs/<config name>)")
    run.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    run.set_defaults(func=_cmd_run)

    lst = sub.add_parser("list", help="list experiments and configs")
    lst.add_argument("--configs", default="configs", help="directory holding the YAML configs")
    lst.set_defaults(func=_cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    from dammem.experiments._base import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print("dammem: error: " + " ".join(str(err).split()), file=sys.stderr)  # one line, even for YAML errors
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
