"""Several processes: each process supplies only its own rows of a sharded array, and gathers results back.

Under ``jax.distributed`` (several hosts, or ``python -m dammem.launch`` on one) a mesh spans the devices of every
process, but a process can only write to and read from its own (addressable) devices. These helpers say which rows
of a split array belong to this process, build the global array from each process's rows without any process
holding the whole array, and bring a result back to every process as a NumPy array. With one process they are
plain placement and ``numpy.asarray``.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding

from dammem._types import Array, ArrayLike
from dammem.sharding._mesh import check_axis, check_divides, check_mesh, split_spec

__all__ = ["process_slice", "distribute_process_local", "gather"]


def _local_blocks(mesh: Mesh, axis: str, context: str) -> tuple[int, int, int]:
    """``(first, stop, size)``: this process's devices sit at positions ``first .. stop - 1`` along ``axis``."""
    size = check_axis(check_mesh(mesh, context), axis, "axis", context)
    dim = mesh.axis_names.index(axis)
    me = jax.process_index()
    positions = sorted(
        {int(idx[dim]) for idx in np.ndindex(mesh.devices.shape) if mesh.devices[idx].process_index == me}
    )
    if not positions:
        raise ValueError(f"{context}: the mesh holds no device of process {me}; allowed: a mesh over jax.devices()")
    first, stop = positions[0], positions[-1] + 1
    if stop - first != len(positions):
        raise ValueError(
            f"{context}: the devices of process {me} sit at positions {positions} along mesh axis {axis!r}, not one "
            f"contiguous block; allowed: a mesh whose {axis!r} axis runs over processes in order (e.g. "
            f"jax.make_mesh over jax.devices(), which lists them by process)"
        )
    return first, stop, size


def process_slice(length: int, mesh: Mesh, axis: str) -> slice:
    """The rows ``[start, stop)`` of an array of ``length`` rows split along ``axis`` that this process holds.

    Load or create exactly these rows in each process and pass them to :func:`distribute_process_local`.

    Args:
      length: the global number of rows (e.g. ``K`` memories); a multiple of the size of ``axis``.
      mesh: a mesh over the devices of every process.
      axis: the mesh axis that splits the rows.

    Returns:
      A ``slice`` (the same on processes that hold replicas of the same rows).

    Example:
      >>> import jax
      >>> from dammem.sharding import process_slice
      >>> process_slice(8, jax.make_mesh((1,), ("memory",)), "memory")  # one process holds every row
      slice(0, 8, None)
    """
    context = "process_slice"
    first, stop, size = _local_blocks(mesh, axis, context)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"{context}: length={length!r}; allowed: a positive int")
    check_divides(length, size, "length", axis, context)
    block = length // size
    return slice(first * block, stop * block)


def distribute_process_local(local: ArrayLike, mesh: Mesh, axis: str, *, dim: int = 0) -> Array:
    """The global array, split along ``dim`` over ``axis``, built from each process's own rows ``local``.

    The counterpart of :func:`dammem.sharding.distribute` for several processes: every process passes only the
    rows :func:`process_slice` names (``local.shape[dim]`` rows of the global ``length``), so no process ever
    holds the whole array. Processes that hold replicas of the same rows (the mesh's other axes) must pass equal
    rows.

    Args:
      local: this process's rows.
      mesh: a mesh over the devices of every process.
      axis: the mesh axis that splits ``dim``.
      dim: the array axis that is split.

    Returns:
      A global :class:`jax.Array` with a ``NamedSharding`` splitting ``dim`` over ``axis``.
    """
    context = "distribute_process_local"
    first, stop, size = _local_blocks(mesh, axis, context)
    local = np.asarray(local)
    dim, spec = split_spec(local.shape, dim, axis, "local", context)
    check_divides(
        local.shape[dim],
        stop - first,
        f"local.shape[{dim}]",
        axis,
        f"{context} (this process holds {stop - first} block(s) of the {size} along the axis)",
        advice="pass the rows process_slice names",
    )
    global_shape = list(local.shape)
    global_shape[dim] = local.shape[dim] // (stop - first) * size
    return jax.make_array_from_process_local_data(NamedSharding(mesh, spec), local, tuple(global_shape))


def gather(tree: Any) -> Any:
    """Every array leaf of ``tree`` as a NumPy array holding its whole global value, on every process.

    Results that the sharded functions return replicated can be read directly (``numpy.asarray``); results that
    stay split over devices of several processes (e.g. a batch split over a ``batch_axis`` that spans processes)
    cannot, and this collects them (an all-gather across processes). With one process it is ``numpy.asarray``.
    """

    def one(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable and not leaf.is_fully_replicated:
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(leaf)

    return jax.tree.map(one, tree)
