"""Array aliases and the one dimension legend of dammem.

Every module docstring opens with a shape legend that uses these letters with these meanings:

- ``K``: stored memories (patterns)                - ``D``: pattern (vector) dimension
- ``Y``: random features                           - ``F``: feature width of a kernel or feature map
- ``B``: queries (batch; rows when leading axes are flattened)
- ``N``: codebook size, i.e. codewords and scores of a clean-up or separation; for the square HRR and KROP
  codebooks also the vector dimension (``N = D``)
- ``L``: 2x2 factors of a Kronecker product (KROP angles), ``N = 2^L``
- ``M``: stored items (key-value pairs) of a key-value memory
- ``T``: steps                                     - ``H``: attention heads
- ``S``: keys (sequence length) attended over
- ``...``: any leading batch axes

A module may add letters of its own (say, ``D_out`` for a value dimension, or the rows of a compute chunk) in its
legend, but never gives one of the letters above another meaning. Shapes are written as jaxtyping strings
(``Float[Array, "K D"]``); they are checked at run time in the tests only.
"""

from __future__ import annotations

import jax
import jax.typing

Array = jax.Array
"""A JAX array (outputs, and inputs that must already be on device)."""

ArrayLike = jax.typing.ArrayLike
"""Anything ``jnp.asarray`` accepts as an array input: JAX and NumPy arrays, NumPy scalars, Python numbers."""

PRNGKey = jax.Array
"""A ``jax.random`` key (new-style ``jax.random.key`` or raw ``uint32[2]``)."""

__all__ = ["Array", "ArrayLike", "PRNGKey"]
