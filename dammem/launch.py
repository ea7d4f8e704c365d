"""Run one program as several local JAX processes: ``python -m dammem.launch``, and :func:`initialize` for the program.

``python -m dammem.launch --num-processes N --devices-per-process M [--timeout S] SCRIPT [ARGS ...]`` (or
``... -m MODULE [ARGS ...]``) starts ``N`` copies of the program on this machine, each a JAX process with ``M`` CPU
devices (``--xla_force_host_platform_device_count``), the coordinator on the loopback address. Each rank's stdout
and stderr are forwarded line by line to the launcher's with a ``[rank i]`` prefix. The run fails as a whole: when a
rank exits with a non-zero status or is killed, or when the run passes ``--timeout`` seconds, the launcher names the
rank (or the ranks still running), stops every other rank (``SIGTERM`` to each rank's process group, ``SIGKILL``
after a grace period) and exits non-zero (the rank's status, 128 + the signal for a killed rank, 124 for the
timeout). Stopping the launcher (``SIGINT`` / ``SIGTERM``) stops every rank the same way (status 128 + the
signal). No rank outlives it.

The program calls :func:`initialize` (or ``jax.distributed.initialize`` itself) before anything else touches JAX.
Under this launcher it reads the launcher's settings; elsewhere it is ``jax.distributed.initialize()``, which
detects SLURM, Open MPI, Kubernetes and Cloud TPU pods from their environment, so the same program runs unchanged
under ``srun`` or on a pod slice.

This is a tool for one machine: testing multi-process programs on CPU devices and debugging them before a cluster.
On GPU or TPU machines use the cluster's own launcher (``srun``, ``mpirun``, the TPU pod runtime) with the program
unchanged.

Example (a program ``psum.py``)::

    import dammem.launch
    dammem.launch.initialize()
    import jax, jax.numpy as jnp
    from jax.experimental import multihost_utils
    print(multihost_utils.process_allgather(jnp.float32(jax.process_index())).sum())

run as ``python -m dammem.launch --num-processes 2 --devices-per-process 2 psum.py`` prints ``[rank 0] 1.0`` and
``[rank 1] 1.0``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

__all__ = ["initialize", "launch", "main", "ENV_PROCESS_ID", "ENV_NUM_PROCESSES", "ENV_COORDINATOR"]

ENV_PROCESS_ID = "DAMMEM_PROCESS_ID"
ENV_NUM_PROCESSES = "DAMMEM_NUM_PROCESSES"
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"  # read by jax.distributed.initialize itself
GRACE_SECONDS = 5.0  # between SIGTERM and SIGKILL when ranks are stopped
TIMEOUT_STATUS = 124  # as coreutils' timeout
_DEVICE_FLAG = re.compile(r"--xla_force_host_platform_device_count=\S*")


def initialize(**kwargs) -> None:
    """``jax.distributed.initialize`` for a program started by ``python -m dammem.launch`` or by a cluster.

    Under the launcher (its environment names the rank), the coordinator address, the number of processes and this
    process's id come from it; otherwise every setting is left to ``jax.distributed.initialize`` (its arguments
    or its detection of SLURM, Open MPI, Kubernetes and Cloud TPU environments). Call it once, before the first
    JAX computation.

    Args:
      **kwargs: passed to :func:`jax.distributed.initialize` (e.g. ``initialization_timeout``); under the launcher
        ``coordinator_address``, ``num_processes`` and ``process_id`` are the launcher's and may not be given.
    """
    import jax

    if ENV_PROCESS_ID in os.environ:
        given = sorted({"coordinator_address", "num_processes", "process_id"} & set(kwargs))
        if given:
            raise ValueError(
                f"dammem.launch.initialize: {', '.join(given)} come from the launcher under python -m dammem.launch; "
                f"allowed: the other arguments of jax.distributed.initialize"
            )
        kwargs.update(
            coordinator_address=os.environ[ENV_COORDINATOR],
            num_processes=int(os.environ[ENV_NUM_PROCESSES]),
            process_id=int(os.environ[ENV_PROCESS_ID]),
        )
    jax.distributed.initialize(**kwargs)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rank_env(rank: int, num_processes: int, devices: int, port: int) -> dict[str, str]:
    env = dict(os.environ)
    flags = _DEVICE_FLAG.sub("", env.get("XLA_FLAGS", "")).split()
    env.update(
        {
            ENV_PROCESS_ID: str(rank),
            ENV_NUM_PROCESSES: str(num_processes),
            ENV_COORDINATOR: f"127.0.0.1:{port}",
            "XLA_FLAGS": " ".join([*flags, f"--xla_force_host_platform_device_count={devices}"]),
            "JAX_PLATFORMS": "cpu",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _forward(rank: int, stream, out, lock: threading.Lock) -> None:
    """Copy ``stream`` to ``out`` line by line with the rank's prefix."""
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        with lock:
            out.write(f"[rank {rank}] {line}\n")
            out.flush()
    stream.close()


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    """Stop every rank still running with its whole process group: SIGTERM, then SIGKILL after the grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            if proc.poll() is None or sig == signal.SIGKILL:
                try:
                    os.killpg(proc.pid, sig)  # the rank and anything it started (start_new_session below)
                except (ProcessLookupError, PermissionError):
                    pass
        deadline = time.monotonic() + GRACE_SECONDS
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.05)
    for proc in procs:
        proc.wait()


def _describe(status: int) -> str:
    if status < 0:
        return f"was killed by signal {signal.Signals(-status).name}"
    return f"exited with status {status}"


def launch(
    command: Sequence[str],
    num_processes: int,
    devices_per_process: int = 1,
    *,
    timeout: float | None = None,
    port: int | None = None,
    out=None,
    err=None,
) -> int:
    """Run ``command`` (an argument list, e.g. ``[sys.executable, "train.py"]``) as ``num_processes`` local ranks.

    Returns 0 when every rank exits with status 0; otherwise stops the remaining ranks, writes the reason (naming
    the rank) to ``err`` and returns the failing rank's status (``128 + signal`` for a killed rank; 124 when
    ``timeout`` seconds pass first). See the module docstring for the environment each rank gets.
    """
    context = "dammem.launch"
    for name, value in (("num_processes", num_processes), ("devices_per_process", devices_per_process)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{context}: {name}={value!r}; allowed: an integer >= 1")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"{context}: timeout={timeout!r}; allowed: a positive number of seconds or None")
    if not command:
        raise ValueError(f"{context}: command is empty; allowed: a program and its arguments")
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    port = _free_port() if port is None else port
    lock = threading.Lock()
    procs: list[subprocess.Popen] = []
    threads = []
    stopped: list[int] = []  # the signal that stopped the launcher

    def on_signal(signum, frame):
        stopped.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for rank in range(num_processes):
            proc = subprocess.Popen(
                list(command),
                env=_rank_env(rank, num_processes, devices_per_process, port),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            procs.append(proc)
            for stream, sink in ((proc.stdout, out), (proc.stderr, err)):
                thread = threading.Thread(target=_forward, args=(rank, stream, sink, lock), daemon=True)
                thread.start()
                threads.append(thread)
        start = time.monotonic()
        status, reason = 0, None
        while True:
            finished = [(rank, p.returncode) for rank, p in enumerate(procs) if p.poll() is not None]
            failed = [(rank, code) for rank, code in finished if code != 0]
            if failed:
                rank, code = failed[0]
                status = code if code > 0 else 128 - code
                reason = f"rank {rank} {_describe(code)}"
                break
            if len(finished) == num_processes:
                break
            if stopped:
                status, reason = 128 + stopped[0], f"the launcher got {signal.Signals(stopped[0]).name}"
                break
            if timeout is not None and time.monotonic() - start > timeout:
                running = [rank for rank, p in enumerate(procs) if p.poll() is None]
                status = TIMEOUT_STATUS
                reason = f"timeout after {timeout:g} s with rank(s) {running} still running"
                break
            time.sleep(0.05)
        if reason is not None:
            others = sum(p.poll() is None for p in procs)
            with lock:
                err.write(f"{context}: {reason}; stopping {others} other rank(s)\n")
                err.flush()
    finally:
        _stop(procs)
        for thread in threads:
            thread.join(timeout=GRACE_SECONDS)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


_VALUED = ("--num-processes", "-n", "--devices-per-process", "--timeout", "--port")


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """The launcher's own arguments and the program's: the program starts at ``-m MODULE``, after ``--``, or at
    the first argument that is neither an option of the launcher nor its value."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[:i], argv[i + 1 :]
        if arg == "-m":
            return argv[:i], argv[i:]
        if arg in _VALUED:
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            break
    return argv[:i], argv[i:]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python -m dammem.launch [options] SCRIPT [ARGS ...]`` or ``... -m MODULE [ARGS ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m dammem.launch",
        usage="%(prog)s --num-processes N [--devices-per-process M] [--timeout S] [--port P] "
        "(SCRIPT | -m MODULE) [ARGS ...]",
        description="Run a program as several local JAX processes (CPU devices, coordinator on 127.0.0.1).",
    )
    parser.add_argument("--num-processes", "-n", type=int, required=True, help="number of processes (ranks)")
    parser.add_argument("--devices-per-process", type=int, default=1, help="CPU devices each process sees")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before every rank is stopped")
    parser.add_argument("--port", type=int, default=None, help="coordinator port (default: a free one)")
    own, program = _split(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(own)
    if not program or program == ["-m"]:
        parser.error("give a SCRIPT to run (or -m MODULE)")
    try:
        return launch(
            [sys.executable, *program],
            args.num_processes,
            args.devices_per_process,
            timeout=args.timeout,
            port=args.port,
        )
    except ValueError as error:
        parser.error(str(error))


if __name__ == "__main__":
    sys.exit(main())
