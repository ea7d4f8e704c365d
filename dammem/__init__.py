"""dammem: differentiable associative memory in JAX.

Pure-functional separations and energies, jitted retrieval dynamics, and experiments that reproduce the source
papers. Subpackages: :mod:`dammem.energies`, :mod:`dammem.drdam`, :mod:`dammem.uhop`, :mod:`dammem.vsa`,
:mod:`dammem.nn` (Flax NNX layers), :mod:`dammem.experiments`; modules :mod:`dammem.attention`,
:mod:`dammem.sharding` (retrieval over a device mesh),
:mod:`dammem.separations`, :mod:`dammem.similarities`, :mod:`dammem.dynamics`, :mod:`dammem.datasets`,
:mod:`dammem.corruptions`. Shapes in
every docstring use one legend (``K`` memories, ``D`` pattern dimension, ...; see :mod:`dammem._types`).
``dammem.nn``, ``dammem.uhop`` and ``dammem.sharding`` load on first use, so ``import dammem`` loads neither flax,
optax nor orbax.

Example:
  >>> import jax.numpy as jnp
  >>> import dammem
  >>> memories = jnp.array([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0]])
  >>> x0 = jnp.array([1.0, 0.2, -0.4, -1.0])  # a corrupted first memory
  >>> out = dammem.retrieve(dammem.energies.rbf_energy, x0, (memories, 4.0), update=dammem.energies.rbf_update)
  >>> [round(v, 2) for v in out.x.tolist()], bool(out.converged)
  ([1.0, 1.0, -1.0, -1.0], True)
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"

from dammem import drdam as drdam
from dammem import energies as energies
from dammem import vsa as vsa
from dammem.attention import hopfield_attention as hopfield_attention
from dammem.dynamics import Retrieval as Retrieval
from dammem.dynamics import retrieve as retrieve
from dammem.separations import SEPARATIONS as SEPARATIONS
from dammem.separations import conjugate as conjugate
from dammem.separations import entmax as entmax
from dammem.separations import entmax15 as entmax15
from dammem.separations import get_separation as get_separation
from dammem.separations import softmax as softmax
from dammem.separations import sparsemax as sparsemax
from dammem.separations import tsallis_separation as tsallis_separation
from dammem.similarities import SIMILARITIES as SIMILARITIES
from dammem.similarities import Kernelized as Kernelized
from dammem.similarities import Similarity as Similarity
from dammem.similarities import cosine as cosine
from dammem.similarities import dot as dot
from dammem.similarities import get_similarity as get_similarity
from dammem.similarities import kernelize as kernelize
from dammem.similarities import neg_l1 as neg_l1
from dammem.similarities import neg_sq_l2 as neg_sq_l2

# Loaded on first use, so that ``import dammem`` needs neither flax, optax nor orbax: the Flax layers and their
# checkpoints (flax, orbax), U-Hop's Stage I fit (optax) and retrieval over a device mesh.
_LAZY_SUBMODULES = ("nn", "sharding", "uhop")


def __getattr__(name: str) -> ModuleType:
    """``dammem.nn``, ``dammem.sharding`` and ``dammem.uhop``: imported on first access (then a plain attribute)."""
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"dammem.{name}")  # the import binds it on this package: no second call
    raise AttributeError(f"module 'dammem' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
