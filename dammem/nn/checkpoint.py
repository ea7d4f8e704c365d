"""Save and restore any Flax NNX module (the dammem layers and models built from them) with orbax.

A checkpoint holds the module's whole state, ``nnx.state(module)``: its ``nnx.Param`` weights and every other
variable (stored memories, random-feature draws and their PRNG keys, fixed signs, RNG streams), in orbax's
standard format (``orbax.checkpoint.StandardCheckpointHandler``). The configuration (sizes, kinds, fixed
hyperparameters) is code, as everywhere in Flax: restore into a module built with the same arguments, either a
freshly initialised one (any ``rngs``: its values are replaced) or an abstract one from ``nnx.eval_shape``, which
allocates nothing.
The restored module computes bit-identical outputs. A checkpoint with a missing or truncated file is reported as
damaged (``ValueError`` naming its path), with the storage error chained.

Example:
  >>> import tempfile, jax.numpy as jnp
  >>> from flax import nnx
  >>> from dammem.nn.checkpoint import restore_checkpoint, save_checkpoint
  >>> from dammem.nn.vsa import KropCodebookLayer
  >>> book = KropCodebookLayer(16, signed=True, rngs=nnx.Rngs(0))
  >>> path = tempfile.mkdtemp() + "/codebook"
  >>> save_checkpoint(path, book)
  >>> abstract = nnx.eval_shape(lambda: KropCodebookLayer(16, signed=True, rngs=nnx.Rngs(1)))
  >>> restored = restore_checkpoint(path, abstract)
  >>> bool(jnp.array_equal(restored.theta[...], book.theta[...]))
  True
"""

from __future__ import annotations

import os
import re
from typing import TypeVar

import jax
import orbax.checkpoint as ocp
from flax import nnx

__all__ = ["save_checkpoint", "restore_checkpoint"]

M = TypeVar("M", bound=nnx.Module)


def _checkpointer() -> ocp.Checkpointer:
    """A synchronous orbax checkpointer of PyTrees of arrays (the standard handler): save returns when written."""
    return ocp.Checkpointer(ocp.StandardCheckpointHandler())


def _check_module(module, name: str, context: str) -> None:
    if not isinstance(module, nnx.Module):
        raise TypeError(f"{context}: {name} must be a flax.nnx.Module, got {type(module).__name__}")


def _directory(path, context: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{context}: path must be a str or os.PathLike directory, got {type(path).__name__}")
    return os.path.abspath(os.fspath(path))


def save_checkpoint(path: str | os.PathLike, module: nnx.Module, *, overwrite: bool = False) -> None:
    """Write ``nnx.state(module)`` (every variable type) to the directory ``path`` with orbax.

    Blocks until the checkpoint is on disk.

    Args:
      path: directory to create (relative paths are taken from the working directory).
      module: any ``flax.nnx.Module``.
      overwrite: replace an existing checkpoint at ``path``; otherwise an existing ``path`` is an error.
    """
    context = "save_checkpoint"
    _check_module(module, "module", context)
    directory = _directory(path, context)
    if not isinstance(overwrite, bool):
        raise TypeError(f"{context}: overwrite must be a bool, got {overwrite!r}")
    if os.path.exists(directory) and not overwrite:
        raise ValueError(f"{context}: path {directory!r} already exists; pass overwrite=True to replace it")
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


def _check_match(saved_tree, target_state, directory: str, target_name: str, context: str) -> None:
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
            f"{context}: the checkpoint at {directory!r} does not match the target {target_name} (build the target "
            f"with the arguments of the saved module): " + "; ".join(problems[:4])
        )


# A TensorStore status (``OUT_OF_RANGE: Error reading ...``) or orbax's wrapper of one: the files could not be read.
_STATUS = re.compile(r"^[A-Z][A-Z_]+: ")
_WRAPPER = re.compile(r"TensorStore|OCDBT")


def _read_failure(err: BaseException) -> str | None:
    """The storage error in ``err``'s chain (TensorStore's status line, the innermost one), or None when ``err`` is
    not a failed read."""
    chain, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        chain.append(str(err))
        err = err.__cause__ or err.__context__
    statuses = [text for text in chain if _STATUS.match(text)]
    if statuses:
        return statuses[-1].splitlines()[0][:300]
    wrapped = [text for text in chain if _WRAPPER.search(text)]
    return wrapped[0].split(" See full TensorStore details")[0].splitlines()[0][:300] if wrapped else None


def _damaged(directory: str, detail: str, context: str) -> ValueError:
    return ValueError(
        f"{context}: the checkpoint at {directory!r} is damaged or incomplete (a file is missing or truncated; save "
        f"it again): {detail}"
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
        configuration), or the checkpoint is damaged or incomplete (a file missing or truncated; the storage error
        is chained).
    """
    context = "restore_checkpoint"
    _check_module(target, "target", context)
    directory = _directory(path, context)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{context}: no checkpoint directory at {directory!r}")
    graphdef, state = nnx.split(target)
    abstract_state = jax.tree.map(_abstract, state)
    with _checkpointer() as checkpointer:
        item = checkpointer.metadata(directory).item_metadata  # None when orbax cannot read it
        saved_tree = getattr(item, "tree", item)
        if saved_tree is None and jax.tree.leaves(abstract_state):
            raise _damaged(directory, "its metadata (the saved variables and shapes) cannot be read", context)
        _check_match(saved_tree, abstract_state, directory, type(target).__name__, context)
        try:
            restored = checkpointer.restore(directory, args=ocp.args.StandardRestore(abstract_state))
        except Exception as err:  # orbax wraps TensorStore's read errors in a bare Exception
            detail = _read_failure(err)
            if detail is None:
                raise
            raise _damaged(directory, detail, context) from err
    return nnx.merge(graphdef, restored)
