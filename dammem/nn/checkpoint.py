"""Save and restore any Flax NNX module (the dammem layers and models built from them), its ``nnx.Optimizer`` and
any ``nnx.State`` with orbax.

A checkpoint holds the whole state, ``nnx.state(target)``: a module's ``nnx.Param`` weights and every other variable
(stored memories, random-feature draws and their PRNG keys, fixed signs, RNG streams), an optimizer's step count and
optax state, in orbax's standard format (``orbax.checkpoint.StandardCheckpointHandler``). The configuration (sizes,
kinds, fixed hyperparameters, the optax transformation) is code, as everywhere in Flax: restore into an object built
with the same arguments, either a freshly initialised one (any ``rngs``: its values are replaced) or an abstract one
from ``nnx.eval_shape``, which allocates nothing. To resume training, save the model and its optimizer (two
checkpoints, or ``nnx.state((model, optimizer))`` in one) and restore both; training then continues bit-identically.
The restored object computes bit-identical outputs. A checkpoint with a missing or truncated file is reported as
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

T = TypeVar("T", nnx.Pytree, nnx.State)

_ACCEPTED = "a flax.nnx.Module, an nnx.Optimizer (any nnx.Pytree) or an nnx.State"


def _checkpointer() -> ocp.Checkpointer:
    """A synchronous orbax checkpointer of PyTrees of arrays (the standard handler): save returns when written."""
    return ocp.Checkpointer(ocp.StandardCheckpointHandler())


def _check_target(target, name: str, context: str) -> None:
    if not isinstance(target, (nnx.Pytree, nnx.State)):
        raise TypeError(f"{context}: {name} must be {_ACCEPTED}, got {type(target).__name__}")


def _state(target) -> nnx.State:
    return target if isinstance(target, nnx.State) else nnx.state(target)


def _directory(path, context: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{context}: path must be a str or os.PathLike directory, got {type(path).__name__}")
    return os.path.abspath(os.fspath(path))


def save_checkpoint(path: str | os.PathLike, target: nnx.Pytree | nnx.State, *, overwrite: bool = False) -> None:
    """Write ``nnx.state(target)`` (every variable type) to the directory ``path`` with orbax.

    Blocks until the checkpoint is on disk.

    Args:
      path: directory to create (relative paths are taken from the working directory).
      target: a ``flax.nnx.Module``, an ``nnx.Optimizer`` (its step and optax state; any ``nnx.Pytree``) or an
        ``nnx.State`` (saved as it is, e.g. ``nnx.state(model, nnx.Param)`` or ``nnx.state((model, optimizer))``).
      overwrite: replace an existing checkpoint at ``path``; otherwise an existing ``path`` is an error.
    """
    context = "save_checkpoint"
    _check_target(target, "target", context)
    directory = _directory(path, context)
    if not isinstance(overwrite, bool):
        raise TypeError(f"{context}: overwrite must be a bool, got {overwrite!r}")
    if os.path.exists(directory) and not overwrite:
        raise ValueError(f"{context}: path {directory!r} already exists; pass overwrite=True to replace it")
    with _checkpointer() as checkpointer:
        checkpointer.save(directory, args=ocp.args.StandardSave(_state(target)), force=overwrite)


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


def restore_checkpoint(path: str | os.PathLike, target: T) -> T:
    """Read a checkpoint written by :func:`save_checkpoint` into a new object shaped like ``target``.

    Args:
      path: the checkpoint directory.
      target: an object of the saved kind built with the same arguments: a module or an ``nnx.Optimizer``, concrete
        (its values are ignored and left untouched) or abstract (``nnx.eval_shape(lambda: Model(...,
        rngs=nnx.Rngs(0)))``), or an ``nnx.State`` of the same variables (e.g. ``nnx.state(model)`` of such a
        module). Arrays are restored with the target's dtypes and shardings.

    Returns:
      A new object of ``target``'s type and structure holding the saved state: a module, an optimizer (pass the
      restored model to its ``update``, as flax's ``Optimizer`` holds no model), or an ``nnx.State`` (apply it with
      ``nnx.update(model, state)``).

    Raises:
      FileNotFoundError: no checkpoint at ``path``.
      ValueError: the checkpoint's variables or shapes differ from ``target``'s (a different module or
        configuration), or the checkpoint is damaged or incomplete (a file missing or truncated; the storage error
        is chained).
    """
    context = "restore_checkpoint"
    _check_target(target, "target", context)
    directory = _directory(path, context)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{context}: no checkpoint directory at {directory!r}")
    graphdef, state = (None, target) if isinstance(target, nnx.State) else nnx.split(target)
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
    if graphdef is None:
        return restored if isinstance(restored, nnx.State) else nnx.State(restored)
    return nnx.merge(graphdef, restored)
