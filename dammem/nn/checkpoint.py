"""Save and restore any Flax NNX module (the dammem layers and models built from them) with orbax.

A checkpoint holds the module's whole state, ``nnx.state(module)``: its ``nnx.Param`` weights and every other
variable (stored memories, random-feature draws and their PRNG keys, fixed signs, RNG streams), in orbax's
standard format (``orbax.checkpoint.StandardCheckpointer``). The configuration (sizes, kinds, fixed hyperparameters)
is code, as everywhere in Flax: restore into a module built with the same arguments, either a freshly initialised
one (any ``rngs``: its values are replaced) or an abstract one from ``nnx.eval_shape``, which allocates nothing.
The restored module computes bit-identical outputs.

Example:
  >>> import tempfile, jax.numpy as jnp
  >>> from flax import nnx
  >>> from dammem.nn.checkpoint import restore_checkpoint, save_checkpoint
  >>> from dammem.nn.vsa import KROPCodebook
  >>> book = KROPCodebook(16, signed=True, rngs=nnx.Rngs(0))
  >>> path = tempfile.mkdtemp() + "/codebook"
  >>> save_checkpoint(path, book)
  >>> abstract = nnx.eval_shape(lambda: KROPCodebook(16, signed=True, rngs=nnx.Rngs(1)))
  >>> restored = restore_checkpoint(path, abstract)
  >>> bool(jnp.array_equal(restored.theta[...], book.theta[...]))
  True
"""

from __future__ import annotations

import os
from typing import TypeVar

import jax
import orbax.checkpoint as ocp
from flax import nnx

__all__ = ["save_checkpoint", "restore_checkpoint"]

M = TypeVar("M", bound=nnx.Module)


def _check_module(module, name: str, where: str) -> None:
    if not isinstance(module, nnx.Module):
        raise TypeError(f"{where}: {name} must be a flax.nnx.Module, got {type(module).__name__}")


def _directory(path, where: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or os.PathLike directory, got {type(path).__name__}")
    return os.path.abspath(os.fspath(path))


def save_checkpoint(path: str | os.PathLike, module: nnx.Module, *, overwrite: bool = False) -> None:
    """Write ``nnx.state(module)`` (every variable type) to the directory ``path`` with orbax.

    Blocks until the checkpoint is on disk.

    Args:
      path: directory to create (relative paths are taken from the working directory).
      module: any ``flax.nnx.Module``.
      overwrite: replace an existing checkpoint at ``path``; otherwise an existing ``path`` is an error.
    """
    where = "save_checkpoint"
    _check_module(module, "module", where)
    directory = _directory(path, where)
    if not isinstance(overwrite, bool):
        raise TypeError(f"{where}: overwrite must be a bool, got {overwrite!r}")
    if os.path.exists(directory) and not overwrite:
        raise ValueError(f"{where}: path {directory!r} already exists; pass overwrite=True to replace it")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory, nnx.state(module), force=overwrite)


def _abstract(leaf):
    if isinstance(leaf, jax.Array):
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding)
    return leaf


def restore_checkpoint(path: str | os.PathLike, target: M) -> M:
    """Read a checkpoint written by :func:`save_checkpoint` into a new module shaped like ``target``.

    Args:
      path: the checkpoint directory.
      target: a module built with the same arguments as the saved one: a concrete one (its values are ignored and
        left untouched) or an abstract one from ``nnx.eval_shape(lambda: Model(..., rngs=nnx.Rngs(0)))``. Arrays
        are restored with the target's dtypes and shardings.

    Returns:
      A new module of ``target``'s structure holding the saved state.

    Raises:
      FileNotFoundError: no checkpoint at ``path``.
      ValueError: the checkpoint's variables or shapes differ from ``target``'s (a different module or
        configuration).
    """
    where = "restore_checkpoint"
    _check_module(target, "target", where)
    directory = _directory(path, where)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{where}: no checkpoint directory at {directory!r}")
    graphdef, state = nnx.split(target)
    abstract_state = jax.tree.map(_abstract, state)
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            restored = checkpointer.restore(directory, abstract_state)
    except ValueError as err:
        raise ValueError(
            f"{where}: the checkpoint at {directory!r} does not match the target {type(target).__name__} (build "
            f"the target with the arguments of the saved module): {err}"
        ) from err
    return nnx.merge(graphdef, restored)
