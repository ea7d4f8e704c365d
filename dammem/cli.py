"""The ``dammem`` command line: ``dammem run CONFIG [key=value ...] [--out DIR] [--overwrite]``, ``dammem list`` and
``dammem report DIR`` (write a finished run's summary and figures again from its results.json, with the report code
as it is now).

CONFIG is the name of a config shipped with the package (``dammem run quickstart``; ``dammem list`` shows them) or a
path to a YAML file. The run writes ``results.json``, ``summary.md`` and its figures into ``--out`` (default
``runs/<config name>``), which must be empty or new unless ``--overwrite`` is given; a run that fails leaves no
output behind.

Overrides may stand before or after the options (``dammem run capacity --out DIR config.num_trials=2``).

Ctrl-C (SIGINT) stops a run with exit status 130 and the one line ``dammem: interrupted``; SIGTERM (``kill``, a
job scheduler's time limit) does the same with exit status 143 (128 + 15) and the line ``dammem: terminated``. Either
way the run's output directory is left as it was, as after a failure (one the run created is removed). Scratch
folders that a killed run (SIGKILL) left in ``--out`` do not make it non-empty; the next run removes them.

Problems with the config or its data (unknown keys, bad values, a missing or malformed data file, more memories than
the data holds) and a non-empty or unwritable ``--out`` are reported as one line ``dammem: error: ...`` with exit
status 2, checked before the run starts where the config alone decides them.

Example:
  >>> build_parser().parse_args(["run", "quickstart", "seed=3", "--out", "q"]).overrides
  ['seed=3']
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

INTERRUPTED = 130  # the shell's status for a process stopped by SIGINT (128 + 2)
TERMINATED = 143  # the shell's status for a process stopped by SIGTERM (128 + 15)
_STOPS = {"SIGINT": (INTERRUPTED, "interrupted"), "SIGTERM": (TERMINATED, "terminated")}


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty directory without ``--overwrite``.

    Scratch folders that a killed run left behind do not count (the run removes them).
    """
    from dammem.experiments._base import ConfigError, leftover_partials

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a directory")
    if out.is_dir() and not overwrite:
        leftovers = set(leftover_partials(out))
        entries = sorted(p.name for p in out.iterdir() if p not in leftovers)
        if entries:
            shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
            raise ConfigError(
                f"--out {str(out)!r} is not empty ({shown}); pass --overwrite to write into it (files of the same "
                "names are replaced), or choose another directory"
            )


def _cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    from dammem.experiments._base import apply_overrides, find_config, load_document, run_experiment

    name, source = find_config(args.config)
    doc = apply_overrides(load_document(source), args.overrides)
    out = Path(args.out) if args.out else Path("runs") / name
    _check_out(out, args.overwrite)
    command = {
        "argv": ["dammem", *argv],
        "cwd": os.getcwd(),
        "config": args.config,
        "config_file": str(source),
        "overrides": list(args.overrides),
    }
    record = run_experiment(doc, out, progress="lines" if args.no_progress else "bar", command=command)
    print(f"{record['experiment']}: wrote {out / 'results.json'}, {out / 'summary.md'} ({record['elapsed_s']:.1f} s)")
    return 0


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _cmd_list(args: argparse.Namespace, argv: list[str]) -> int:
    from dammem.experiments import EXPERIMENTS, get_experiment
    from dammem.experiments._base import ConfigError, load_document, packaged_configs

    configs = packaged_configs()
    width = max(map(len, [*EXPERIMENTS, *configs])) + 1
    print("experiments:")
    for name in sorted(EXPERIMENTS):
        print(f"  {name:{width}s} {_first_line(get_experiment(name).__doc__)}")
    print("configs (run one with `dammem run NAME`; a path to a YAML file works too):")
    for name, source in configs.items():
        try:
            experiment = load_document(source).get("experiment", "?")
        except ConfigError as err:
            experiment = f"unreadable ({err})"
        print(f"  {name:{width}s} experiment {experiment}")
    if not configs:
        print("  none found in the installed package")
    return 0


def _cmd_report(args: argparse.Namespace, argv: list[str]) -> int:
    from dammem.experiments._base import ConfigError, rerun_report

    out = Path(args.dir)
    if not (out / "results.json").is_file():
        raise ConfigError(f"{str(out)!r} holds no results.json (give the --out directory of a finished run)")
    rerun_report(out, figures=not args.no_figures)
    print(f"wrote {out / 'summary.md'}" + ("" if args.no_figures else " and the figures"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dammem", description="Differentiable associative memory experiments.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an experiment from a packaged config or a YAML file")
    run.add_argument("config", help="a packaged config's name (see `dammem list`) or a path to a YAML file")
    # default=[] keeps argparse from listing the optional overrides as required when CONFIG is missing
    run.add_argument("overrides", nargs="*", default=[], help="dotted overrides such as config.beta=2.0 or seed=3")
    run.add_argument("--out", help="output directory, empty or new (default: runs/<config name>)")
    run.add_argument("--overwrite", action="store_true", help="write into a non-empty --out, replacing its files")
    run.add_argument("--no-progress", action="store_true", help="print one line per stage instead of a progress bar")
    run.set_defaults(func=_cmd_run)

    rep = sub.add_parser("report", help="write a finished run's summary and figures again from its results.json")
    rep.add_argument("dir", help="the --out directory of a finished run")
    rep.add_argument("--no-figures", action="store_true", help="write summary.md only")
    rep.set_defaults(func=_cmd_report)

    lst = sub.add_parser("list", help="list the experiments and the packaged configs")
    lst.set_defaults(func=_cmd_list)
    return parser


def _interrupted(exit_process: bool, signame: str = "SIGINT") -> int:
    """Report a Ctrl-C or SIGTERM in one line; as the ``dammem`` process, leave at once (no interpreter teardown)."""
    status, word = _STOPS[signame]
    print(f"dammem: {word}", file=sys.stderr)
    if exit_process:
        # tearing JAX down while a compilation or computation thread is still running can crash the interpreter
        # (SIGSEGV): the run has already cleaned up its output, so nothing is lost by skipping the teardown
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; ``run``'s ``key=value`` overrides may also stand after its options (``--out DIR k=v``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "command", None) != "run" or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line; ``argv`` None means the process's own arguments (the ``dammem`` executable)."""
    exit_process = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parse(argv)
    seen: list[str] = []  # the signal that stopped the run, remembered even where a library swallows the exception
    previous = {}
    if threading.current_thread() is threading.main_thread():

        def on_stop(signum, frame):
            seen.append(signal.Signals(signum).name)
            raise KeyboardInterrupt

        for signame in _STOPS:
            previous[signame] = signal.signal(getattr(signal, signame), on_stop)
    unraisable = sys.unraisablehook

    def quiet_interrupts(info):  # a KeyboardInterrupt that a callback swallowed is reported once, below
        if not issubclass(info.exc_type, KeyboardInterrupt):
            unraisable(info)

    sys.unraisablehook = quiet_interrupts
    try:
        from dammem.experiments._base import ConfigError

        try:
            status = args.func(args, argv)
        except ConfigError as err:
            print("dammem: error: " + " ".join(str(err).split()), file=sys.stderr)  # one line, even for YAML errors
            status = 2
        return _interrupted(exit_process, seen[0]) if seen else status
    except BaseException:
        # a Ctrl-C can surface as another error (an extension module that fails to import) or be swallowed (a
        # callback that ignores exceptions): the flag, not the exception, says whether the run was interrupted
        if not seen:
            raise
        return _interrupted(exit_process, seen[0])
    finally:
        sys.unraisablehook = unraisable
        for signame, handler in previous.items():
            signal.signal(getattr(signal, signame), handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
