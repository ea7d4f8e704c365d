"""Save and restore any Flax NNX module (the dammem layers and models built from them) with orbax.

A checkpoint holds the module's whole state, ``nnx.state(module)``: its ``nnx.Param`` weights and every other
variable (stored memories, random-feature draws and their PRNG keys, fixed signs, RNG streams), in orbax's
standard format (``orbax.checkpoint.StandardCheckpointHandler``). The configuration (sizes, kinds, fixed hyperparameters)
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


def _checkpointer() -> ocp.Checkpointer:
    """A synchronous orbax checkpointer of PyTrees of arrays (the standard handler): save returns when written."""
    return ocp.Checkpointer(ocp.StandardCheckpointHandler())


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
    with _checkpointer() as checkpointer:
        checkpointer.save(directory, args=ocp.args.StandardSave(nnx.state(module)), force=overwrite)


def _abstract(leaf):
    if isinstance(leaf, jax.Array):
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding)
    return leaf


def _shapes(tree) -> dict[str, tuple[int, ...]]:
    """``{"a/b/value": shape}`` of every array leaf; typed PRNG keys count as their key data (as orbax stores them)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            leaf = jax.eval_shape(jax.random.key_data, leaf)
        out[name] = tuple(leaf.shape)
    return out


def _check_match(saved_tree, target_state, directory: str, target_name: str, where: str) -> None:
    saved, wanted = _shapes(saved_tree), _shapes(target_state)
    problems = [f"{name} is not in the checkpoint" for name in wanted if name not in saved]
    problems += [f"{name} is in the checkpoint but not in the target" for name in saved if name not in wanted]
    problems += [
        f"{name} has shape {saved[name]} in the checkpoint but {shape} in the target"
        for name, shape in wanted.items()
        if name in saved and saved[name] != shape
    ]
    if problems:
        raise ValueError(
            f"{where}: the checkpoint at {directory!r} does not match the target {target_name} (build the target "
            f"with the arguments of the saved module): " + "; ".join(problems[:4])
        )


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
    with _checkpointer() as checkpointer:
        item = checkpointer.metadata(directory).item_metadata
        _check_match(getattr(item, "tree", item), abstract_state, directory, type(target).__name__, where)
        restored = checkpointer.restore(directory, args=ocp.args.StandardRestore(abstract_state))
    return nnx.merge(graphdef, restored)
