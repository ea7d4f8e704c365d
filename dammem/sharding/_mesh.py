"""Mesh checks and placement: the mesh and its axes, divisibility, and laying arrays out on the devices.

Shape legend: ``K`` memories, ``B`` queries; ``n`` devices along a mesh axis.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from dammem._types import Array, ArrayLike

__all__ = [
    "check_mesh", "check_axis", "check_divides", "check_batch_axis", "put", "place", "onto", "distribute", "split_spec"
]  # fmt: skip


def check_mesh(mesh: Any, context: str) -> Mesh:
    """``mesh`` if it is a :class:`jax.sharding.Mesh`; anything else is refused (``TypeError``)."""
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"{context}: mesh must be a jax.sharding.Mesh (e.g. jax.make_mesh((8,), ('memory',))), got "
            f"{type(mesh).__name__}"
        )
    return mesh


def check_axis(mesh: Mesh, axis: Any, name: str, context: str) -> int:
    """The size of the mesh axis ``axis`` (argument ``name``); a name not in the mesh is refused."""
    if not isinstance(axis, str) or axis not in mesh.axis_names:
        raise ValueError(
            f"{context}: {name}={axis!r} is not an axis of the mesh; allowed: one of its axis names {mesh.axis_names}"
        )
    return int(mesh.shape[axis])


def check_divides(length: int, size: int, what: str, axis: str, context: str, *, advice: str | None = None) -> None:
    """``length`` (described by ``what``) must be a multiple of the size of the mesh axis ``axis``."""
    advice = "pad with masked entries, or use another mesh" if advice is None else advice
    if length % size:
        raise ValueError(
            f"{context}: {what} = {length} is not divisible by the size {size} of mesh axis {axis!r}; allowed: a "
            f"multiple of {size} ({advice})"
        )


def check_batch_axis(mesh: Mesh, batch_axis: Any, axis: str, batch: int, context: str) -> None:
    """An optional second mesh axis that splits ``batch`` queries; it must differ from the memories' ``axis``."""
    if batch_axis is None:
        return
    size = check_axis(mesh, batch_axis, "batch_axis", context)
    if batch_axis == axis:
        raise ValueError(f"{context}: batch_axis={batch_axis!r} must differ from axis={axis!r} (the memories' axis)")
    check_divides(batch, size, "the number of queries B", batch_axis, context)


def put(x: ArrayLike, sharding: NamedSharding) -> Array:
    """``x`` laid out as ``sharding``, outside ``jit``. Over the devices of several processes (``jax.distributed``)
    every process passes the same whole value and fills only its own devices from it (``device_put`` accepts
    only devices of this process)."""
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    value = np.asarray(x)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def place(x: Array, mesh: Mesh, spec: P) -> Array:
    """``x`` laid out as ``spec`` on ``mesh`` (inside ``jit``: a sharding constraint; a no-op when it already is)."""
    return jax.device_put(x, NamedSharding(mesh, spec))


def onto(mesh: Mesh, value: Any, spec: P) -> Any:
    """Arrays committed to other devices (e.g. ``jax.device_put(x, jax.devices()[0])``) move onto ``mesh`` as
    ``spec`` before a compiled program runs (``jit`` refuses arguments committed to different device sets); arrays
    already there, uncommitted arrays and tracers are left alone."""
    devices = set(mesh.devices.flat)

    def move(leaf):
        if isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer) and leaf.committed:
            if leaf.sharding.device_set != devices:
                return put(leaf, NamedSharding(mesh, spec))
        return leaf

    return jax.tree.map(move, value)


def distribute(array: ArrayLike, mesh: Mesh, axis: str, *, dim: int = 0) -> Array:
    """Lay ``array`` out on ``mesh`` split along ``dim`` over the mesh axis ``axis`` (replicated over the others).

    Placing the memories once before repeated calls keeps every call free of transfers (each call would otherwise
    split the array anew). On a mesh over several processes every process passes the same whole ``array`` and
    keeps only its own devices' rows; to give each process only its own rows, use
    :func:`dammem.sharding.distribute_process_local`.

    Args:
      array: any array; ``array.shape[dim]`` must be a multiple of the size of ``axis``.
      mesh: the device mesh.
      axis: the mesh axis name to split over.
      dim: the array axis to split.

    Returns:
      The array with a :class:`~jax.sharding.NamedSharding`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.sharding import distribute
      >>> mesh = jax.make_mesh((1,), ("memory",))
      >>> distribute(jnp.ones((4, 2)), mesh, "memory").sharding.spec
      P('memory', None)
    """
    context = "distribute"
    mesh = check_mesh(mesh, context)
    size = check_axis(mesh, axis, "axis", context)
    array = jnp.asarray(array)
    dim, spec = split_spec(array.shape, dim, axis, "array", context)
    check_divides(array.shape[dim], size, f"array.shape[{dim}]", axis, context)
    return put(array, NamedSharding(mesh, spec))


def split_spec(shape: tuple[int, ...], dim: Any, axis: str, name: str, context: str) -> tuple[int, P]:
    """``(dim, spec)``: the array axis ``dim`` of argument ``name`` (of ``shape``; negative counts from the end) made
    non-negative, and the ``PartitionSpec`` splitting it over the mesh axis ``axis``. A scalar or a ``dim`` that is
    not an axis is refused."""
    ndim = len(shape)
    if ndim == 0:
        raise ValueError(f"{context}: {name} must have at least one axis to split, got a scalar")
    if isinstance(dim, bool) or not isinstance(dim, int) or not -ndim <= dim < ndim:
        raise ValueError(f"{context}: dim={dim!r} is not an axis of {name}, of shape {tuple(shape)}")
    dim %= ndim
    spec = [None] * ndim
    spec[dim] = axis
    return dim, P(*spec)
