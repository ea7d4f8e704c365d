"""Batch parallel work over a mesh axis, and a check on compiled programs (which all-gathers they hold).

Shape legend: ``B`` examples in a batch, split over the devices of one mesh axis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from dammem.sharding._mesh import check_axis, check_divides, check_mesh, onto, place

__all__ = ["shard_batch", "all_gather_shapes"]


def shard_batch(
    fn: Callable[..., Any], mesh: Mesh, axis: str, *, in_axes: int | None | tuple[int | None, ...] = 0
) -> Callable[..., Any]:
    """``jax.vmap(fn, in_axes)`` with the batch split over the mesh axis ``axis``: each device maps its share.

    For work whose examples are independent: queries of a VSA or KROP clean-up, independent trials of an experiment
    (``fn`` of one PRNG key, mapped over ``jax.random.split(key, trials)``). The result equals
    ``jax.vmap(fn, in_axes)(*args)``; its leading axis stays split over ``axis`` (``jax.device_get`` or
    ``np.asarray`` collects it in one process, :func:`dammem.sharding.gather` across processes). Arguments with
    ``in_axes`` None are replicated.

    Args:
      fn: a function of one example; pytrees of arrays in and out.
      mesh: the device mesh.
      axis: the mesh axis that splits the batch.
      in_axes: 0 (mapped over the leading axis) or None (replicated), one for all arguments or one per argument.

    Returns:
      A jitted function of the same arguments as ``fn``, mapped over the batch.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.sharding import shard_batch
      >>> mesh = jax.make_mesh((1,), ("batch",))
      >>> scale = shard_batch(lambda x, c: c * x, mesh, "batch", in_axes=(0, None))
      >>> scale(jnp.arange(4.0), 2.0).tolist()
      [0.0, 2.0, 4.0, 6.0]
    """
    context = "shard_batch"
    if not callable(fn):
        raise TypeError(f"{context}: fn must be a callable of one example, got {type(fn).__name__}")
    mesh = check_mesh(mesh, context)
    size = check_axis(mesh, axis, "axis", context)
    leaves = in_axes if isinstance(in_axes, tuple) else (in_axes,)
    if not all(a is None or (a == 0 and not isinstance(a, bool)) for a in leaves):
        raise ValueError(f"{context}: in_axes must be 0 (mapped) or None (replicated), per argument; got {in_axes!r}")

    def call(*args):
        axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
        if len(axes) != len(args):
            raise ValueError(f"{context}: in_axes has {len(axes)} entries but the function got {len(args)} arguments")
        sizes = {
            jnp.shape(leaf)[0] if jnp.ndim(leaf) else None
            for arg, ax in zip(args, axes)
            if ax == 0
            for leaf in jax.tree.leaves(arg)
        }
        if not sizes:
            raise ValueError(f"{context}: no argument is mapped (in_axes={in_axes!r}); at least one must be 0")
        if None in sizes or len(sizes) != 1:
            raise ValueError(
                f"{context}: every mapped argument needs one common leading (batch) axis; got sizes "
                f"{sorted(sizes, key=str)}"
            )
        check_divides(sizes.pop(), size, "the batch size", axis, context)
        args = tuple(onto(mesh, arg, P(axis) if ax == 0 else P()) for arg, ax in zip(args, axes))
        return _shard_batch_jit(fn, mesh, axis, axes, *args)

    return call


@partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _shard_batch_jit(fn, mesh, axis, axes, *args):
    specs = tuple(P(axis) if ax == 0 else P() for ax in axes)
    args = tuple(jax.tree.map(lambda leaf, s=s: place(leaf, mesh, s), arg) for arg, s in zip(args, specs))
    mapped = jax.vmap(fn, in_axes=axes)
    # check_vma=False: ``fn`` is any single-device code (its loops may start from constants)
    return jax.shard_map(mapped, mesh=mesh, in_specs=specs, out_specs=P(axis), check_vma=False)(*args)


_SHAPE = re.compile(r"\b[a-z]+\d*\[([\d,]*)\]")


def all_gather_shapes(compiled: Any) -> list[tuple[int, ...]]:
    """The shapes that every all-gather of a compiled program produces (its result shapes, tuples unpacked).

    Use it to check that a sharded program never gathers a large operand, e.g. that no all-gather produces the
    memory set's ``(K, D)`` elements.

    Args:
      compiled: ``jax.jit(f).lower(...).compile()`` or its ``as_text()``.

    Returns:
      One shape per all-gather result (``all-gather`` and ``all-gather-start`` ops), in program order.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from dammem.sharding import all_gather_shapes
      >>> all_gather_shapes(jax.jit(jnp.sin).lower(jnp.ones(3)).compile())
      []
    """
    text = compiled if isinstance(compiled, str) else compiled.as_text()
    shapes = []
    for line in text.splitlines():
        match = re.search(r"=\s*(.*?)\s+all-gather(?:-start)?\(", line)
        if match is None:
            continue
        for dims in _SHAPE.findall(match.group(1)):
            shapes.append(tuple(int(d) for d in dims.split(",") if d))
    return shapes
